"""A Redis cache that keeps the web app answering when Redis is down.

The cache holds nothing that must survive (API throttle counters, the failed-login limiter, dashboard
memoization), so losing Redis must not turn every request into a 500. `ResilientRedisCache` is Django's
`RedisCache` with every operation guarded: on a Redis error it logs once per outage, answers from a
per-process local-memory cache instead, and stops asking Redis for `retry_after_s` seconds (a circuit breaker,
so an outage costs one failed connection attempt per process every few seconds, not one per cache call).
When Redis answers again the shared cache is used again; the local entries are simply forgotten.

Consequence during an outage: throttle and login-failure counters are per process (still enforced, just not
shared between gunicorn workers). Short socket timeouts (OPTIONS socket_connect_timeout / socket_timeout in
settings) bound the cost of a Redis that hangs instead of refusing connections.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

GUARDED = ("add", "get", "set", "touch", "delete", "get_many", "has_key", "incr", "set_many", "delete_many", "clear")


def _guarded(name: str):
    redis_method = getattr(RedisCache, name)

    @functools.wraps(redis_method)
    def method(self: ResilientRedisCache, *args, **kwargs):
        if self.redis_is_down():
            return getattr(self.fallback, name)(*args, **kwargs)
        try:
            return redis_method(self, *args, **kwargs)
        except RedisError as exc:
            self.mark_down(exc)
            return getattr(self.fallback, name)(*args, **kwargs)

    return method


class ResilientRedisCache(RedisCache):
    """RedisCache that degrades to a local-memory cache while Redis is unreachable (OPTIONS: retry_after_s)."""

    def __init__(self, server, params):
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.retry_after_s = float(options.pop("retry_after_s", 5.0))
        params["OPTIONS"] = options
        super().__init__(server, params)
        self.fallback = LocMemCache(f"fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._down_until = 0.0
        self._lock = threading.Lock()

    def redis_is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def mark_down(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until == 0.0
            self._down_until = time.monotonic() + self.retry_after_s
        if first:
            logger.warning("Redis cache unavailable (%s); using a local-memory cache meanwhile.", exc)

    def mark_up(self) -> None:
        with self._lock:
            recovered = self._down_until != 0.0
            self._down_until = 0.0
        if recovered:
            logger.warning("Redis cache is back.")


for _name in GUARDED:
    setattr(ResilientRedisCache, _name, _guarded(_name))


def _recovering(method):
    """After the breaker's pause, the next successful call closes it again."""

    @functools.wraps(method)
    def wrapper(self: ResilientRedisCache, *args, **kwargs):
        was_down = self._down_until != 0.0 and not self.redis_is_down()
        result = method(self, *args, **kwargs)
        if was_down and not self.redis_is_down():
            self.mark_up()
        return result

    return wrapper


for _name in GUARDED:
    setattr(ResilientRedisCache, _name, _recovering(getattr(ResilientRedisCache, _name)))
