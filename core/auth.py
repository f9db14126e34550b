"""A failed-login limiter for every password form (the admin's and the dashboard's sign-in).

`RateLimitedModelBackend` is Django's ModelBackend with a counter in the cache: after LOGIN_FAILURE_LIMIT failed
attempts for one username from one client address within LOGIN_FAILURE_WINDOW_S seconds, or
LOGIN_FAILURE_IP_LIMIT failures from one address for any usernames, every attempt is refused (even with the right
password) until the window ends. Counting per (address, username) keeps an attacker from locking a real user out
from elsewhere; the per-address limit stops spraying many usernames. A success clears the (address, username)
counter. The API's tokens are not passwords and are throttled by DRF instead.

The cache is Redis in production (shared by all workers); while Redis is down the resilient cache counts per
process (core/cache.py), so the limit still holds, per worker.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from rest_framework.throttling import BaseThrottle

from .cache import hit_window

KEY_PREFIX = "login-failures"


def signed_in(actor):
    """The user to record as the author of a change: `actor` when it is a signed-in user, otherwise None (no
    actor, an anonymous request, a task)."""
    return actor if getattr(actor, "is_authenticated", False) else None


def client_address(request) -> str:
    """The client's address as DRF's throttles see it: REMOTE_ADDR, or behind NUM_PROXIES proxies the entry of
    X-Forwarded-For that the nearest proxy added (earlier entries are the client's to forge)."""
    if request is None or not hasattr(request, "META"):
        return "unknown"
    return BaseThrottle().get_ident(request) or "unknown"


def _keys(request, username: str) -> tuple[str, str]:
    address = client_address(request)
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{address}:{digest}", f"{KEY_PREFIX}:{address}"


def _count(key: str) -> int:
    return int(cache.get(key) or 0)


def _bump(key: str, window_s: int) -> None:
    hit_window(cache, key, window_s)  # the window starts with the first failure


def is_locked_out(request, username: str) -> bool:
    pair, address = _keys(request, username)
    return _count(pair) >= settings.LOGIN_FAILURE_LIMIT or _count(address) >= settings.LOGIN_FAILURE_IP_LIMIT


def record_failure(request, username: str) -> None:
    for key in _keys(request, username):
        _bump(key, settings.LOGIN_FAILURE_WINDOW_S)


def clear_failures(request, username: str) -> None:
    cache.delete(_keys(request, username)[0])


class RateLimitedModelBackend(ModelBackend):
    """ModelBackend that refuses a (client address, username) after too many failed passwords."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        if is_locked_out(request, username):
            # PermissionDenied stops django.contrib.auth.authenticate() at this backend and reports a failure.
            raise PermissionDenied("Too many failed sign-in attempts; try again later.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(request, username)
        else:
            clear_failures(request, username)
        return user
