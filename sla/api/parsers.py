"""Request plumbing of the customer API: a bounded JSON parser and the token authentication it uses.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards `request.body` and form parsing, but DRF's JSON parser reads the
stream directly, so without this bound a client could make a worker parse megabytes of JSON. Bodies of this API
are a few hundred bytes; anything over MAX_BODY_BYTES is refused with 413 before it is parsed.
"""

from __future__ import annotations

import io

from django.contrib.auth import get_user_model
from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.parsers import JSONParser

from core.db import LocalReadCache, PreparedRead, attnames, from_row, related_attnames
from sla.models import Customer

CUSTOMER_OF_USER = Customer.user.field.remote_field  # the reverse one-to-one: caches user.customer

MAX_BODY_BYTES = 16 * 1024


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is too large: at most {MAX_BODY_BYTES // 1024} KiB."
    default_code = "payload_too_large"


class BoundedJSONParser(JSONParser):
    """JSON, at most MAX_BODY_BYTES (checked on Content-Length and again on the bytes actually read)."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if declared > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        try:
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:  # "[[[[...": nesting deeper than Python's recursion limit
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


# The token, its user and the user's customer account (LEFT JOIN: all None without one), in one prepared read.
TOKEN_READ = PreparedRead(
    lambda key: Token.objects.filter(key=key).values_list(
        *attnames(Token),
        *related_attnames("user__", get_user_model()),
        *related_attnames("user__customer__", Customer),
    ),
    key=str,
)


TOKENS = LocalReadCache("tokens", models=(Token, get_user_model(), Customer))


class CustomerTokenAuthentication(TokenAuthentication):
    """Token authentication that loads the user and its Customer row in one prepared query, kept for a few
    seconds per process (`TOKENS`; settings.API_READ_CACHE_SECONDS)."""

    def authenticate_credentials(self, key):
        rows = TOKENS.get(key, lambda: TOKEN_READ.rows(key=key)) if isinstance(key, str) else []
        if not rows:
            raise exceptions.AuthenticationFailed("Invalid token.")
        token, at = from_row(Token, rows[0])
        user, at = from_row(get_user_model(), rows[0], at)
        customer = from_row(Customer, rows[0], at)[0] if rows[0][at] is not None else None
        CUSTOMER_OF_USER.set_cached_value(user, customer)  # user.customer without a query (None: no account)
        token.user = user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, token)
