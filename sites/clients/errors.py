"""Typed errors of the external-source clients.

Callers (tasks, services) tell two things apart and nothing else:

- ``SourceUnavailable``: the source could not be reached or answered 5xx / 429 / timed out. Transient: retry
  with backoff (``autoretry_for=(SourceUnavailable,)``).
- ``SourceDataError``: the source answered, but with something we refuse to store (malformed JSON, missing or
  mistyped fields, non-finite or out-of-range values, duplicate intervals). Retrying gets the same answer.
- ``SourceRequestRejected``: the source refused the request itself (4xx other than 429: bad API key, wrong URL).
  A configuration problem; not retryable either.

All carry the source name, and the URL and HTTP status where known, so the logged message and the recorded
``SourceFetch.error`` say exactly what went wrong.
"""

from __future__ import annotations


class SourceError(Exception):
    """Base class: an external source did not deliver usable data; nothing was written."""

    retryable = False

    def __init__(self, message: str, *, source: str = "", url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.url = url
        self.status = status

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        url = f" ({self.url})" if self.url else ""
        return f"{where}{self.message}{url}"


class SourceUnavailable(SourceError):
    """Connection failure, timeout, HTTP 5xx or 429: transient, worth retrying."""

    retryable = True


class SourceDataError(SourceError):
    """The answer is malformed or implausible (bad JSON, missing field, NaN, out of range): not retryable."""


class SourceRequestRejected(SourceError):
    """HTTP 4xx other than 429 (authentication, unknown path): fix the configuration; not retryable."""
