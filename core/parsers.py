"""The API's JSON parser: bounded, strict about what Python's json accepts but no client means, and plain in its
error messages.

- At most MAX_BODY_BYTES (checked on Content-Length, then on the bytes actually read): DRF's JSON parser reads
  the stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never bounds it. `core.middleware.
  MalformedRequestMiddleware` refuses a larger declared body before anything reads it; this catches the rest.
- A lone UTF-16 surrogate (`"\\ud800"`, as a value or a key) is refused: Python decodes it into a string that
  cannot be encoded again, so a validation error echoing it could not be rendered (a 500), and PostgreSQL would
  refuse to store it.
- Parse errors name the line and column, never Python internals (e.g. "use sys.set_int_max_str_digits()").
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

MAX_BODY_BYTES = 16 * 1024


def max_body_bytes() -> int:
    return getattr(settings, "API_MAX_BODY_BYTES", MAX_BODY_BYTES)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"

    def __init__(self, limit: int | None = None):
        limit = max_body_bytes() if limit is None else limit
        super().__init__(f"The request body is too large: at most {limit // 1024} KiB.")


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _refuse_surrogates(value) -> None:
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise exceptions.ParseError("JSON parse error - a string holds an unpaired UTF-16 surrogate.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key)
            _refuse_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_surrogates(item)


class StrictJSONParser(JSONParser):
    """JSON, at most `API_MAX_BODY_BYTES`, without lone surrogates, with plain parse errors (module doc)."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(limit)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_no_constant)
        except json.JSONDecodeError as error:
            raise exceptions.ParseError(
                f"JSON parse error - {error.msg} at line {error.lineno}, column {error.colno}."
            ) from None
        except UnicodeDecodeError:
            raise exceptions.ParseError(f"JSON parse error - the body is not valid {encoding}.") from None
        except RecursionError:  # "[[[[...": nesting deeper than Python's recursion limit
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        except _NotJson as error:
            raise exceptions.ParseError(f"JSON parse error - {error}.") from None
        except ValueError:  # an integer with more digits than Python converts (sys.int_info.str_digits_check)
            raise exceptions.ParseError("JSON parse error - a number has too many digits.") from None
        _refuse_surrogates(data)
        return data


class _NotJson(ValueError):
    pass


def _no_constant(name: str):
    """NaN, Infinity and -Infinity are not JSON (DRF's parser refuses them too, in strict mode)."""
    raise _NotJson(f"{name} is not a JSON number")
