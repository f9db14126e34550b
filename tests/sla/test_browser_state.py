"""Token requests to the customer API's quotes and purchases skip Django's session, authentication and message
middleware (core.browser_state.needs_no_browser_state): they answer exactly as through Django's own middleware, and
every other request still gets its session, user and messages."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.urls import get_resolver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from core.browser_state import TOKEN_API_PREFIXES
from tests.factories import T0

DJANGO_MIDDLEWARE = {
    "core.browser_state.SessionMiddleware": "django.contrib.sessions.middleware.SessionMiddleware",
    "core.browser_state.AuthenticationMiddleware": "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.browser_state.MessageMiddleware": "django.contrib.messages.middleware.MessageMiddleware",
}
START = (T0 + timedelta(hours=2)).isoformat()
QUOTE = {"tier": "standard", "capacity_kw": "20", "starts_at": START, "duration_hours": "4"}


def answer(response) -> tuple:
    """Status, body and headers, ids left out (each stack creates its own rows) and with them the length they set."""
    body = re.sub(r'("id": ?|"quote": ?|quote )\d+', r"\1N", response.content.decode())
    headers = {name: value for name, value in response.items() if name != "Content-Length"}
    return response.status_code, body, headers, "Content-Length" in response


def requests(api: APIClient, staff_and_token: APIClient) -> list[tuple]:
    quote = api.post("/api/sla/quotes/", QUOTE, format="json")
    return [
        quote,
        api.post("/api/sla/quotes/", {"tier": "gold", "capacity_kw": "x"}, format="json"),
        api.post("/api/contracts/", {"quote": quote.json()["id"]}, format="json"),
        api.post("/api/contracts/", {"quote": 10**9}, format="json"),
        api.get("/api/contracts/"),
        api.get("/api/contracts/999999/"),
        api.delete("/api/contracts/"),
        api.post("/api/sla/request", {"tier": "spot"}, format="json"),
        APIClient(HTTP_AUTHORIZATION="Token nope").post("/api/sla/quotes/", QUOTE, format="json"),
        APIClient(HTTP_AUTHORIZATION="Token").get("/api/contracts/"),
        staff_and_token.post("/api/sla/quotes/", QUOTE, format="json"),  # token wins over the staff session
    ]


def clients(token: str, staff_user) -> tuple[APIClient, APIClient]:
    """A token client and a token client logged in as staff. A test client loads its middleware once, on its first
    request: clients made before `settings.MIDDLEWARE` changes keep the old stack, so each round makes its own."""
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    staff_and_token = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    staff_and_token.force_login(staff_user)
    return api, staff_and_token


@pytest.mark.django_db
def test_token_requests_answer_as_through_djangos_middleware(fleet, frozen, customer, staff_user, settings):
    token = Token.objects.create(user=customer.user).key

    with transaction.atomic():  # both stacks answer the same state: the first one's quotes and contracts undone
        ours = [answer(response) for response in requests(*clients(token, staff_user))]
        transaction.set_rollback(True)
    settings.MIDDLEWARE = [DJANGO_MIDDLEWARE.get(name, name) for name in django_settings.MIDDLEWARE]
    through_django = requests(*clients(token, staff_user))

    # Every request of the second round went through Django's own session middleware (not core.browser_state's).
    assert [hasattr(response.wsgi_request, "session") for response in through_django] == [True] * 11
    assert [status for status, *_ in ours] == [201, 400, 201, 400, 200, 404, 405, 400, 401, 401, 201]
    assert ours == [answer(response) for response in through_django]


@pytest.mark.django_db
def test_only_token_requests_for_json_skip_the_session(fleet, frozen, customer, staff_user):
    token = Token.objects.create(user=customer.user).key
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert not hasattr(api.post("/api/sla/quotes/", QUOTE, format="json").wsgi_request, "session")

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    refused = browser.post("/api/sla/quotes/", {**QUOTE, "customer": customer.pk}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]  # the session is read, CSRF checked
    for response in (
        api.get("/api/contracts/", HTTP_ACCEPT="text/html"),  # the browsable API
        api.get("/api/contracts/?limit=1"),
        api.get("/api/tiers/"),
    ):
        assert hasattr(response.wsgi_request, "session") and hasattr(response.wsgi_request, "_messages")


@pytest.mark.django_db
def test_the_three_middleware_decide_once_per_request(fleet, frozen, customer):
    """SessionMiddleware decides and the other two read its decision: asked again, a later answer (here a different
    one) cannot skip the user or the messages of a request that kept its session, or the reverse."""
    token = Token.objects.create(user=customer.user).key
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    with mock.patch("core.browser_state.needs_no_browser_state", side_effect=[True, False, False]) as decide:
        skipped = api.post("/api/sla/quotes/", QUOTE, format="json")
    assert decide.call_count == 1 and skipped.status_code == 201
    assert not hasattr(skipped.wsgi_request, "session") and not hasattr(skipped.wsgi_request, "_messages")
    assert "Set-Cookie" not in skipped and "Cookie" not in skipped.get("Vary", "")

    with mock.patch("core.browser_state.needs_no_browser_state", side_effect=[False, True, True]) as decide:
        kept = api.get("/api/contracts/")
    assert decide.call_count == 1 and kept.status_code == 200
    assert hasattr(kept.wsgi_request, "session") and hasattr(kept.wsgi_request, "_messages")


def test_every_view_under_the_token_prefixes_authenticates_tokens_first_and_answers_json_first():
    """What needs_no_browser_state relies on: DRF's token authentication answers before the session could be read,
    and a request accepting anything is answered by the JSON renderer."""
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/")
    prefixes = tuple(prefix.removeprefix("/api/") for prefix in TOKEN_API_PREFIXES)
    views = {pattern.callback for pattern in api.url_patterns if str(pattern.pattern).lstrip("^").startswith(prefixes)}
    assert len(views) >= 3  # quotes, contracts, the original's request
    for view in views:
        cls = view.cls
        assert issubclass(cls.authentication_classes[0], TokenAuthentication), cls
        assert cls.renderer_classes[0] is JSONRenderer, cls
