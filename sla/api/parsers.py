"""Request plumbing of the customer API: the token authentication it uses (bodies are parsed by the API-wide
`core.parsers.StrictJSONParser`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from core.db import LocalReadCache, PreparedRead, attnames, from_row, related_attnames
from sla.models import Customer

CUSTOMER_OF_USER = Customer.user.field.remote_field  # the reverse one-to-one: caches user.customer
User = get_user_model()

# The token, its user and the user's customer account (LEFT JOIN: all None without one), in one prepared read.
TOKEN_READ = PreparedRead(
    lambda key: Token.objects.filter(key=key).values_list(
        *attnames(Token),
        *related_attnames("user__", User),
        *related_attnames("user__customer__", Customer),
    ),
    keep_cursor=True,  # one row, on every request
    key=str,
)


USER_AT = len(attnames(Token))  # where the user's columns begin in a row of TOKEN_READ
TOKENS = LocalReadCache("tokens", models=(Token, User, Customer))


class CustomerTokenAuthentication(TokenAuthentication):
    """Token authentication that loads the user and its Customer row in one prepared query, kept for a few
    seconds per process (`TOKENS`; settings.API_READ_CACHE_SECONDS)."""

    def authenticate(self, request):
        """DRF's `authenticate`, given the Authorization header from `request.META` (where Django's
        `request.headers` reads it): DRF reads it through `request.headers`, which maps every header of the
        request on first use, and nothing else on a quote or a purchase needs that map."""
        authorization = request.META.get("HTTP_AUTHORIZATION")
        return super().authenticate(HeaderOnly({} if authorization is None else {"authorization": authorization}))

    def authenticate_credentials(self, key):
        """DRF's (user, token) for `key`. The user comes with its customer account cached (`user.customer`, None
        without one); the token (`request.auth`, which no quote or purchase reads) is built from the kept row when
        first used, as Django's AuthenticationMiddleware builds `request.user`: a `SimpleLazyObject` standing for
        the Token, its `user` this request's user."""
        rows = TOKENS.get(key, lambda: TOKEN_READ.rows(key=key)) if isinstance(key, str) else []
        if not rows:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user, at = from_row(User, rows[0], USER_AT)
        customer = from_row(Customer, rows[0], at)[0] if rows[0][at] is not None else None
        CUSTOMER_OF_USER.set_cached_value(user, customer)  # user.customer without a query (None: no account)
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, SimpleLazyObject(partial(token_of, rows[0], user)))


def token_of(row: Sequence, user) -> Token:
    """The Token of a row of TOKEN_READ, its `user` the given one (the user of the same row)."""
    token = from_row(Token, row)[0]
    token.user = user
    return token


class HeaderOnly:
    """What DRF's `get_authorization_header` reads of a request: its `headers` (here only Authorization)."""

    def __init__(self, headers: dict[str, str]):
        self.headers = headers
