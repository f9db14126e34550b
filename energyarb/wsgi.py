"""WSGI entry point (gunicorn energyarb.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
application = get_wsgi_application()


def keep_cache_closing_only_where_it_closes_something() -> bool:
    """Disconnect Django's end-of-request `close_caches` when no configured cache backend closes anything; return
    whether it was disconnected.

    Django ends every request by calling `close()` on each cache the request's thread has opened
    (`django.core.cache.close_caches`, a `request_finished` receiver), for backends whose connections must not
    outlive a request (memcached). The backends settings.CACHES chooses between (core.cache.ResilientRedisCache,
    FileBasedCache) keep `BaseCache.close`, which does nothing: the receiver only walked the caches (asgiref's
    `Local`) to call nothing, ~7 us per request. A backend with its own `close` keeps Django's receiver. (Django's
    test client disconnects and reconnects these receivers the same way, with the signal's public API.)"""
    from django.conf import settings
    from django.core.cache import close_caches
    from django.core.cache.backends.base import BaseCache
    from django.core.signals import request_finished
    from django.utils.module_loading import import_string

    backends = [import_string(str(config["BACKEND"])) for config in settings.CACHES.values()]
    if any(backend.close is not BaseCache.close for backend in backends):
        return False
    return request_finished.disconnect(close_caches)


keep_cache_closing_only_where_it_closes_something()
