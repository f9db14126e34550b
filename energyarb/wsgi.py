"""WSGI entry point (gunicorn energyarb.wsgi)."""

import os

from django.core.signals import setting_changed
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
application = get_wsgi_application()


def connect_close_caches_where_needed() -> bool:
    """Connect Django's end-of-request `close_caches` if a cache backend in settings.CACHES closes something, else
    disconnect it; return whether it is connected now.

    Django ends every request by calling `close()` on each cache the request's thread has opened
    (`django.core.cache.close_caches`, a `request_finished` receiver), for backends whose connections must not
    outlive a request (memcached). The backends settings.CACHES chooses between (core.cache.ResilientRedisCache,
    FileBasedCache) keep `BaseCache.close`, which does nothing: the receiver only walked the caches (asgiref's
    `Local`) to call nothing, ~7 us per request. A backend with its own `close` keeps Django's receiver. Decided
    at import and again whenever CACHES changes (`setting_changed`: override_settings), so a process that imported
    this module closes the caches of any backend it is later given. (Django's test client disconnects and
    reconnects its receivers the same way, with the signal's public API.)"""
    from django.conf import settings
    from django.core.cache import close_caches
    from django.core.cache.backends.base import BaseCache
    from django.core.signals import request_finished
    from django.utils.module_loading import import_string

    backends = [import_string(str(config["BACKEND"])) for config in settings.CACHES.values()]
    if any(backend.close is not BaseCache.close for backend in backends):
        request_finished.connect(close_caches)  # as Django connects it: connected twice it is still called once
        return True
    request_finished.disconnect(close_caches)
    return False


def _decide_again_when_caches_change(*, setting, **kwargs) -> None:
    if setting == "CACHES":
        connect_close_caches_where_needed()


setting_changed.connect(_decide_again_when_caches_change)
connect_close_caches_where_needed()
