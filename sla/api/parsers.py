"""Request plumbing of the customer API: a bounded JSON parser and the token authentication it uses.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards `request.body` and form parsing, but DRF's JSON parser reads the
stream directly, so without this bound a client could make a worker parse megabytes of JSON. Bodies of this API
are a few hundred bytes; anything over MAX_BODY_BYTES is refused with 413 before it is parsed.
"""

from __future__ import annotations

import io

from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import JSONParser

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


class CustomerTokenAuthentication(TokenAuthentication):
    """Token authentication that loads the user's Customer row in the same query (one query per request)."""

    def authenticate_credentials(self, key):
        model = self.get_model()
        try:
            token = model.objects.select_related("user", "user__customer").get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (token.user, token)
