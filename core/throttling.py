"""API throttles that count in one cache round trip.

DRF's rate throttles keep, per client, the list of its request times in the cache: a get and a set per request,
and a list as long as the rate allows to pickle both ways. These count instead: a window opens with a client's
first request and lasts the rate's period, and each request increments its counter (`core.cache.hit_window`:
one EVALSHA round trip on Redis). A client gets at most the rate's number of requests per window; the price of the
simpler count is that a burst can straddle two windows (at most twice the rate over one period). Rates, scopes and
cache keys are DRF's (`DEFAULT_THROTTLE_RATES`, `throttle_scope`), so settings and views do not change.
"""

from __future__ import annotations

from rest_framework import exceptions, throttling

from .cache import hit_window


class WindowRateThrottle(throttling.SimpleRateThrottle):
    """SimpleRateThrottle counting per window (see the module) instead of keeping a history of request times."""

    # Set by SimpleRateThrottle.__init__ from the rate (parse_rate); declared for the type checker.
    duration: int
    num_requests: int

    retry_after_s: float | None = None

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        count, self.retry_after_s = hit_window(self.cache, key, self.duration)
        return count <= self.num_requests

    def wait(self) -> float | None:
        return self.retry_after_s


class AnonRateThrottle(throttling.AnonRateThrottle, WindowRateThrottle):
    """Anonymous clients, per address (scope "anon")."""


class UserRateThrottle(throttling.UserRateThrottle, WindowRateThrottle):
    """Signed-in users, per user (scope "user"); anonymous clients per address."""


class ScopedRateThrottle(throttling.ScopedRateThrottle, WindowRateThrottle):
    """Per user (or address) and per the view's `throttle_scope`."""


def throttle_failed_authentication(request) -> exceptions.Throttled | None:
    """Count a request whose credentials were refused (or missing) as an anonymous request of its address, in the
    anonymous throttle's own window (scope "anon"); past the anonymous rate, the Throttled to answer instead."""
    throttle = AnonRateThrottle()
    if throttle.rate is None:
        return None
    key = throttle.cache_format % {"scope": throttle.scope, "ident": throttle.get_ident(request)}
    count, retry_after_s = hit_window(throttle.cache, key, throttle.duration)
    return exceptions.Throttled(wait=retry_after_s) if count > throttle.num_requests else None
