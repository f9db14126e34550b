"""energyarb/wsgi.py: the web process's app, and the end-of-request work it leaves out."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import caches, close_caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import request_finished
from django.test import override_settings

BASE_DIR = Path(__file__).resolve().parent.parent


class ClosingCache(LocMemCache):
    """A backend with a close of its own (as memcached's), counting its calls."""

    closed = 0

    def close(self, **kwargs):
        type(self).closed += 1


@pytest.fixture
def wsgi():
    """energyarb/wsgi.py (its import disconnects the receiver here too); Django's receiver connected again after."""
    from energyarb import wsgi

    request_finished.connect(close_caches)  # as Django connects it (a second connect adds nothing)
    yield wsgi
    request_finished.connect(close_caches)


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:6379/15", ""], ids=["Redis cache", "file cache"])
def test_the_entry_point_leaves_out_closing_caches_that_close_nothing(redis_url):
    """In the web process, with either cache settings.CACHES chooses (core.cache.ResilientRedisCache or
    FileBasedCache, both keeping BaseCache's close that does nothing): Django's receiver is gone."""
    code = (
        "from energyarb import wsgi\n"
        "from django.core.cache import close_caches\n"
        "from django.core.signals import request_finished\n"
        "print(request_finished.disconnect(close_caches))"
    )
    env = {**os.environ, "DEBUG": "1", "REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "energyarb.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # no longer connected


@override_settings(
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "closing": {"BACKEND": "tests.test_wsgi_entry.ClosingCache"},
    }
)
def test_a_backend_that_closes_something_keeps_djangos_receiver(wsgi):
    assert wsgi.keep_cache_closing_only_where_it_closes_something() is False
    caches["closing"].get("x")
    ClosingCache.closed = 0
    close_caches()  # what the receiver does at the end of a request: closes it
    assert ClosingCache.closed == 1
    assert request_finished.disconnect(close_caches) is True  # still connected (the fixture connects it again)


def test_with_only_backends_that_close_nothing_the_receiver_goes(wsgi):
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        assert wsgi.keep_cache_closing_only_where_it_closes_something() is True
        assert wsgi.keep_cache_closing_only_where_it_closes_something() is False  # already gone
