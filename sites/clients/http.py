"""The one HTTP GET of the source clients: JSON in, typed errors out.

Every client (hackathon market API, Open-Meteo) reads its source through ``get_json``, so a status code or a
transport failure means the same thing everywhere:

- connection refused / reset, timeout, HTTP 5xx or 429 -> ``SourceUnavailable`` (transient, retried);
- any other non-200 status, or a URL httpx cannot use -> ``SourceRequestRejected`` (configuration);
- a 200 whose body is not JSON -> ``SourceDataError``.

The body is parsed with ``json.loads``, which accepts the NaN and Infinity literals: the clients' field parsers
(``sites.clients.parsing``) refuse them with a message naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from .errors import SourceDataError, SourceRequestRejected, SourceUnavailable

JSON_HEADERS = {"Accept": "application/json"}


def get_json(
    url: str,
    *,
    source: str,
    timeout_s: float,
    params: Mapping[str, str | int | float] | None = None,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> object:
    """``GET url`` (with ``params`` as the query string) and return the decoded JSON body.

    Raises only ``SourceError`` subclasses, each carrying ``source``, the full URL (query included) and the
    HTTP status where there was one. ``transport`` lets tests swap the network for an in-process one.
    """
    full_url = url
    try:
        full_url = str(httpx.URL(url, params=params)) if params else url
        all_headers = {**JSON_HEADERS, **(headers or {})}
        with httpx.Client(timeout=timeout_s, headers=all_headers, transport=transport) as client:
            response = client.get(url, params=params)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise SourceRequestRejected(f"invalid URL {url!r}: {exc}", source=source, url=full_url) from exc
    except httpx.TimeoutException as exc:
        raise SourceUnavailable(f"no answer within {timeout_s} s", source=source, url=full_url) from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(f"{type(exc).__name__}: {exc}", source=source, url=full_url) from exc
    status = response.status_code
    if status >= 500 or status == 429:
        raise SourceUnavailable(f"HTTP {status}", source=source, url=full_url, status=status)
    if status != 200:
        raise SourceRequestRejected(f"HTTP {status}", source=source, url=full_url, status=status)
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise SourceDataError(f"malformed JSON: {exc}", source=source, url=full_url, status=status) from None
