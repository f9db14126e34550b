"""Error pages: API clients (/api/, /mara/) get JSON bodies, browsers get Django's HTML pages; and the API's
exception handler (failed authentication counted like anonymous traffic, nothing unencodable echoed)."""

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler

from .parsers import has_lone_surrogate, max_body_bytes
from .throttling import throttle_failed_authentication

JSON_PREFIXES = ("/api/", "/mara/")


def _wants_json(request) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    """400 (a Host not in ALLOWED_HOSTS, a malformed request) or 413 (a body larger than Django reads)."""
    if isinstance(exception, RequestDataTooBig):
        limit = max_body_bytes() // 1024
        return JsonResponse({"detail": f"The request body is too large: at most {limit} KiB."}, status=413)
    if _wants_json(request):
        detail = "Unknown host." if isinstance(exception, DisallowedHost) else "Bad request."
        return JsonResponse({"detail": detail}, status=400)
    return defaults.bad_request(request, exception)


def api_exception_handler(exc, context):
    """DRF's handler, plus: a failed or missing authentication counts as an anonymous request of its address, so
    a client guessing tokens or API keys is throttled like anonymous traffic (each guess costs a database read);
    no input is echoed that cannot be encoded (a lone surrogate becomes U+FFFD); and a list of messages becomes
    `{"non_field_errors": [...]}`, the object every 400 is documented as."""
    request = context.get("request")
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated) and request is not None:
        exc = throttle_failed_authentication(request) or exc
    response = exception_handler(exc, context)
    if response is not None and response.data is not None:
        response.data = _encodable(response.data)
        if isinstance(response.data, list):  # a ValidationError of messages alone (DRF's search filter on a NUL)
            response.data = {"non_field_errors": response.data}  # the documented shape: an object of messages
    return response


def _encodable(value):
    if isinstance(value, str):
        if not has_lone_surrogate(value):
            return value
        return "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in value)
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value
