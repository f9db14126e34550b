"""Django's session, authentication and message middleware, skipped for token requests to the customer API's
quotes and purchases, which use none of them (`needs_no_browser_state`). Its own module: `core.middleware` is
imported by the logging configuration, before the apps these import are ready."""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware

from .negotiation import accepts_anything

# The customer API's quote and purchase endpoints (sla.api.views.CustomerWritesMixin): token authentication first,
# JSON first (tests/sla/test_browser_state.py checks every view under them).
TOKEN_API_PREFIXES = ("/api/sla/", "/api/contracts/")


def needs_no_browser_state(request) -> bool:
    """A token request to the customer API that takes JSON (no Accept header or `*/*`, no query string): DRF's token
    authentication, first in those views, answers it (a user, or a refusal) before the session would be read, and
    its answer is rendered as JSON, not from a template. Its session, Django's lazy `request.user` and its message
    storage are never used, so the three middleware below skip them (~0.1 ms of CPU per request); DRF still sets
    `request.user` when it authenticates. The Authorization header is read as DRF reads it (bytes, ISO-8859-1)."""
    meta, path = request.META, request.path_info
    if not path.startswith(TOKEN_API_PREFIXES) or "." in path or not accepts_anything(meta):
        return False  # elsewhere, a format suffix (`/api/contracts/1.api`) or another answer than JSON asked for
    try:
        words = meta.get("HTTP_AUTHORIZATION", "").encode("iso-8859-1").split()
    except UnicodeEncodeError:
        return False
    return bool(words) and words[0].lower() == b"token"


# The request attribute holding SessionMiddleware's decision, read by the other two: decided once per request, so
# the three can never disagree (a session skipped but not the user would make Django's AuthenticationMiddleware
# raise ImproperlyConfigured).
SKIPS_BROWSER_STATE = "skips_browser_state"


def skips_browser_state(request) -> bool:
    """SessionMiddleware's decision for this request (False if it did not run: then Django's own behaviour)."""
    return getattr(request, SKIPS_BROWSER_STATE, False)


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, skipped for requests that need no browser state (`needs_no_browser_state`, decided here once and
    stored on the request). Its response step is Django's: without `request.session` it returns the response as it
    is (its `except AttributeError`), so a skipped request saves nothing and gets no cookie and no Vary."""

    def process_request(self, request):
        skip = needs_no_browser_state(request)
        setattr(request, SKIPS_BROWSER_STATE, skip)
        if not skip:
            super().process_request(request)


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's, skipped for requests SessionMiddleware skipped (DRF authenticates them and sets `request.user`)."""

    def process_request(self, request):
        if not skips_browser_state(request):
            super().process_request(request)


class MessageMiddleware(DjangoMessageMiddleware):
    """Django's, skipped for requests SessionMiddleware skipped (its response step stores nothing without
    `request._messages`)."""

    def process_request(self, request):
        if not skips_browser_state(request):
            super().process_request(request)
