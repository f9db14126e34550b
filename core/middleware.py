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
import threading
import time

from csp.constants import HEADER as CSP_HEADER
from csp.middleware import CSPMiddleware
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from kombu.exceptions import OperationalError as BrokerError

from .errors import not_found
from .numbers import has_foreign_digits
from .parsers import max_body_bytes

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
JSON_PREFIXES = ("/api/", "/mara/")
# The policy of a JSON answer: nothing in it is a page, so it may load nothing and be framed nowhere.
JSON_CONTENT_SECURITY_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
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
        response = self.get_response(request)
        if not getattr(request, "dependency_outage", None):
            OUTAGES.answered()
        return response

    def process_exception(self, request, exception):
        dependency = dependency_of(exception)
        if dependency is None:
            return None
        request.dependency_outage = dependency  # ExpectedOutageFilter keeps django.request from logging it again
        OUTAGES.failed(dependency, f"{type(exception).__name__}: {exception}")
        return unavailable_response(request.path, dependency)


class OutageLog:
    """One WARNING when a dependency becomes unavailable, then a count instead of a line per request.

    A PostgreSQL restart under load answers thousands of 503s in seconds: logging each (and django.request's ERROR
    for each) buried everything else. Per process: the first failure of an outage is logged with its cause; the
    following ones are counted, reported every REPORT_EVERY_S while it lasts, and once more with the total when a
    request is answered without an outage again.
    """

    REPORT_EVERY_S = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, list[float]] = {}  # dependency -> [started (monotonic), count, last report]

    def failed(self, dependency: str, cause: str) -> None:
        now = time.monotonic()
        with self._lock:
            state = self._open.get(dependency)
            if state is None:
                self._open[dependency] = [now, 1, now]
                logger.warning("%s unavailable (%s): answering 503 until it is back", dependency, cause)
                return
            state[1] += 1
            if now - state[2] < self.REPORT_EVERY_S:
                return
            state[2] = now
            started, count = state[0], int(state[1])
        logger.warning("%s still unavailable after %.0f s: %d requests answered 503", dependency, now - started, count)

    def answered(self) -> None:
        if not self._open:  # the common case: no lock taken
            return
        now = time.monotonic()
        with self._lock:
            ended, self._open = self._open, {}
        for dependency, (started, count, _) in ended.items():
            logger.warning("%s is back after %.1f s: %d requests answered 503", dependency, now - started, int(count))


OUTAGES = OutageLog()


class ExpectedOutageFilter(logging.Filter):
    """Drop django.request's ERROR line for a 503 this middleware answered (the outage is logged by OutageLog)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503 and getattr(request, "dependency_outage", None))


class MalformedRequestMiddleware:
    """Refuse, before any view or parser reads them, requests no endpoint can serve:

    - a path with a NUL character: 404 (PostgreSQL refuses NUL in text, so a lookup by it was a 500);
    - a path with a digit other than 0-9 (`/runs/\\u0661/`): 404, as int() would read it as an id (core.numbers);
    - a body declared larger than the API takes (`API_MAX_BODY_BYTES`) under /api/ or /mara/: a JSON 413, before
      DRF or Django reads it (Django's own limit answered an HTML 400 for bodies over 2.5 MB).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or has_foreign_digits(request.path):
            return not_found(request)
        if request.path.startswith(JSON_PREFIXES):
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            limit = max_body_bytes()
            if declared > limit:
                detail = f"The request body is too large: at most {limit // 1024} KiB."
                return JsonResponse({"detail": detail, "code": "payload_too_large"}, status=413)
        return self.get_response(request)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, except for JSON answers under /api/ and /mara/: those carry one fixed strict policy
    (`JSON_CONTENT_SECURITY_POLICY`, a constant) instead of the pages' policy, which django-csp builds anew for
    every response (~0.2 ms of CPU, a few per cent of a quote or purchase). Pages, the browsable API and the API
    docs (HTML) keep django-csp's policy from `CONTENT_SECURITY_POLICY`, nonces and decorators as before."""

    def process_response(self, request, response):
        if request.path_info.startswith(JSON_PREFIXES) and is_json(response):
            if CSP_HEADER not in response:
                response[CSP_HEADER] = JSON_CONTENT_SECURITY_POLICY
            return response
        return super().process_response(request, response)


def is_json(response) -> bool:
    content_type = response.get("Content-Type", "")
    return content_type.startswith("application/") and "json" in content_type.split(";", 1)[0]
