"""The customer API's token authentication (sla.api.parsers.CustomerTokenAuthentication) answers what DRF's
TokenAuthentication answers for every form of the Authorization header, without building `request.headers`."""

from __future__ import annotations

import pytest
import time_machine
from django.db.models.signals import post_init
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from sla.api.parsers import CustomerTokenAuthentication
from sla.models import Contract
from tests.factories import T0
from tests.sla.conftest import build_fleet

pytestmark = pytest.mark.django_db


def outcome(authentication, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    request = Request(APIRequestFactory().get("/api/contracts/", **headers))
    try:
        answer = authentication.authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        return "refused", str(exc.detail)
    return None if answer is None else (answer[0].pk, answer[1].key)


def test_every_form_of_the_header_gets_drfs_answer(customer, outsider):
    key = Token.objects.create(user=customer.user).key
    outsider.user.is_active = False
    outsider.user.save()
    inactive = Token.objects.create(user=outsider.user).key
    headers = [
        None,
        "",
        "Token",
        f"Token {key}",
        f"token {key}",
        f"TOKEN  {key} ",
        f"Token {key} extra",
        f"Token {key[:-1]}x",
        f"Token {inactive}",
        f"Bearer {key}",
        f"Tokens {key}",
        "Token \xe9\xff",  # latin-1 bytes that are not UTF-8
    ]
    for authorization in headers:
        assert outcome(CustomerTokenAuthentication(), authorization) == outcome(TokenAuthentication(), authorization)
    assert outcome(CustomerTokenAuthentication(), f"Token {key}") == (customer.user.pk, key)


def test_a_token_request_never_builds_request_headers(customer_api):
    """Django builds `request.headers` (every header of the request, mapped) on first use; a token-authenticated
    API request that accepts any answer reads what it needs from META instead."""
    response = customer_api.get("/api/contracts/")

    assert response.status_code == 200
    assert "headers" not in vars(response.wsgi_request)


@pytest.fixture
def tokens_built():
    """The Token instances built while the test runs (Model.__init__'s post_init)."""
    built: list[Token] = []

    def receiver(sender, instance, **kwargs):
        built.append(instance)

    post_init.connect(receiver, sender=Token, weak=False, dispatch_uid="tokens_built")
    yield built
    post_init.disconnect(sender=Token, dispatch_uid="tokens_built")


def test_the_token_is_built_when_request_auth_is_first_read_and_is_the_users_token(customer, tokens_built):
    token = Token.objects.create(user=customer.user)
    request = Request(
        APIRequestFactory().get("/api/contracts/", HTTP_AUTHORIZATION=f"Token {token.key}"),
        authenticators=[CustomerTokenAuthentication()],
    )
    tokens_built.clear()

    assert request.user.pk == customer.user.pk
    assert request.user.customer == customer
    assert tokens_built == []  # authenticated, no Token built yet
    auth = request.auth
    assert isinstance(auth, Token)
    assert (auth.pk, auth.key, auth.user_id, auth.created) == (token.pk, token.key, token.user_id, token.created)
    assert auth.user is request.user
    assert auth == token
    assert len(tokens_built) == 1
    assert request.auth.key == token.key and len(tokens_built) == 1  # built once


def test_a_quote_and_its_purchase_build_no_token(customer, customer_api, tokens_built):
    build_fleet()
    body = {"tier": "standard", "capacity_kw": "5", "duration_hours": "1"}
    with time_machine.travel(T0, tick=False):
        tokens_built.clear()
        quote = customer_api.post(reverse("quote-list"), body, format="json")
        bought = customer_api.post(reverse("contract-list"), {"quote": quote.json()["id"]}, format="json")

    assert (quote.status_code, bought.status_code) == (201, 201)
    assert Contract.history.get(id=bought.json()["id"]).history_user_id == customer.user.pk  # the request's user
    assert tokens_built == []
