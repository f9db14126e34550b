"""Answer 503 (with Retry-After), not 500, while the database or the task broker is unreachable.

A PostgreSQL restart or failover drops every connection for a few seconds; Django raises
`OperationalError` / `InterfaceError` from the first query of each request meanwhile. That is an outage of a
dependency, not a bug: clients (and load balancers) should retry, so the answer is 503 with `Retry-After`,
as JSON under /api/ and /mara/ (their clients parse JSON) and as a short HTML page elsewhere. The same holds for
a task broker (Redis) that refuses a message a request tries to enqueue (`kombu.exceptions.OperationalError`).

Connections recover by themselves: the request that finds its persistent connection dropped answers 503, and
Django closes a connection that failed at the end of the request, so the next one reconnects once the server is
back (or, with DB_CONN_HEALTH_CHECKS, Django tests the connection at the start of each request).
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
JSON_PREFIXES = ("/api/", "/mara/")
UNAVAILABLE = {
    "database": "The database is unavailable; try again shortly.",
    "broker": "The task queue is unavailable; try again shortly.",
}


def dependency_of(exception: BaseException) -> str | None:
    """'database', 'broker' or None (not an outage: let Django report it as the error it is)."""
    if isinstance(exception, OperationalError | InterfaceError):
        return "database"
    if isinstance(exception, BrokerError):
        return "broker"
    return None


def unavailable_response(path: str, dependency: str) -> HttpResponse:
    message = UNAVAILABLE[dependency]
    if path.startswith(JSON_PREFIXES):
        response: HttpResponse = JsonResponse({"detail": message, "code": f"{dependency}_unavailable"}, status=503)
    else:
        body = f"<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>{message}</p>"
        response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response


class ServiceUnavailableMiddleware:
    """Map an unreachable database or broker, raised by a view, to 503 + Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        dependency = dependency_of(exception)
        if dependency is None:
            return None
        logger.warning("%s %s: %s unavailable (%s: %s)", request.method, request.path, dependency,
                       type(exception).__name__, exception)  # fmt: skip
        return unavailable_response(request.path, dependency)
