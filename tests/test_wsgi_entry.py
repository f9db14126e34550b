"""energyarb/wsgi.py: the web process's app, and the end-of-request work it leaves out."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import caches, close_caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import override_settings

BASE_DIR = Path(__file__).resolve().parent.parent


class ClosingCache(LocMemCache):
    """A backend with a close of its own (as memcached's), counting its calls."""

    closed = 0

    def close(self, **kwargs):
        type(self).closed += 1


def end_of_request():
    """What ends a request (`request_finished`) but the database's receiver, as Django's test client sends it."""
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)


@pytest.fixture
def wsgi():
    """energyarb/wsgi.py, its decision taken under this test's settings (as its import takes it); Django's receiver
    connected again after."""
    from energyarb import wsgi

    wsgi.connect_close_caches_where_needed()
    yield wsgi
    request_finished.connect(close_caches)  # as Django connects it (a second connect adds nothing)


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


def test_a_web_process_given_a_backend_that_closes_something_closes_it_at_the_end_of_a_request():
    """A process that imported energyarb/wsgi.py (which disconnected the receiver: its settings' cache closes
    nothing), then given a backend with a close of its own (override_settings): a request through the entry point
    closes it at its end, and the receiver goes again once the override ends."""
    code = (
        "from energyarb import wsgi\n"
        "from wsgiref.util import setup_testing_defaults\n"
        "from django.core.cache import caches, close_caches\n"
        "from django.core.signals import request_finished\n"
        "from django.test import override_settings\n"
        "from tests.test_wsgi_entry import ClosingCache\n"
        "closing = {'default': {'BACKEND': 'tests.test_wsgi_entry.ClosingCache'}}\n"
        "with override_settings(CACHES=closing):\n"
        "    caches['default'].get('x')\n"
        "    environ = {'PATH_INFO': '/no-such-page/'}\n"
        "    setup_testing_defaults(environ)\n"
        "    response = wsgi.application(environ, lambda status, headers: None)\n"
        "    response.close()  # the end of the request (request_finished)\n"
        "    print(response.status_code, ClosingCache.closed)\n"
        "print(request_finished.disconnect(close_caches))"
    )
    env = {**os.environ, "DEBUG": "1", "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "energyarb.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["404", "1", "False"]  # closed once at the request's end; then disconnected


@override_settings(
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "closing": {"BACKEND": "tests.test_wsgi_entry.ClosingCache"},
    }
)
def test_a_backend_that_closes_something_keeps_djangos_receiver(wsgi):
    assert wsgi.connect_close_caches_where_needed() is True
    caches["closing"].get("x")
    ClosingCache.closed = 0
    end_of_request()  # the receiver closes it
    assert ClosingCache.closed == 1
    assert request_finished.disconnect(close_caches) is True  # still connected (the fixture connects it again)


def test_with_only_backends_that_close_nothing_the_receiver_goes(wsgi):
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        assert request_finished.disconnect(close_caches) is False  # gone (the override decided again)
        assert wsgi.connect_close_caches_where_needed() is False
        assert request_finished.disconnect(close_caches) is False


def test_the_receiver_follows_the_cache_settings_in_a_process_that_imported_the_entry_point(wsgi):
    assert request_finished.disconnect(close_caches) is False  # the tests' LocMemCache closes nothing
    with override_settings(CACHES={"default": {"BACKEND": "tests.test_wsgi_entry.ClosingCache"}}):
        caches["default"].get("x")
        ClosingCache.closed = 0
        end_of_request()
        assert ClosingCache.closed == 1
    assert request_finished.disconnect(close_caches) is False  # the override ended: gone again
