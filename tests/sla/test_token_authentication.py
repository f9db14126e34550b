"""The customer API's token authentication (sla.api.parsers.CustomerTokenAuthentication) answers what DRF's
TokenAuthentication answers for every form of the Authorization header, without building `request.headers`."""

from __future__ import annotations

import pytest
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from sla.api.parsers import CustomerTokenAuthentication

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
