"""Field parsers shared by the source clients and the CSV importer.

Each returns a validated value or raises ``SourceDataError`` with a message naming the field and the value; the
caller prefixes where it came from (a URL, a list index, a CSV line). Numbers from JSON become ``Decimal`` through
their shortest repr, so 2.86 stays 2.86 and a re-import compares equal to what was stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from .errors import SourceDataError

EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)


def parse_decimal(
    value: object,
    *,
    field: str,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    minimum_exclusive: bool = False,
    places: int | None = None,
    allow_text: bool = False,
) -> Decimal:
    """A finite Decimal within bounds from a JSON number (or, with ``allow_text``, from CSV text)."""
    if isinstance(value, bool) or value is None:
        raise SourceDataError(f"{field} is {json.dumps(value)}, not a number")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # the shortest repr: 2.86 stays 2.86, not 2.8599999999999998863...
    elif isinstance(value, str) and allow_text:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise SourceDataError(f"{field} {value!r} is not a number") from None
    else:
        raise SourceDataError(f"{field} {value!r} is not a number")
    if not number.is_finite():
        raise SourceDataError(f"{field} {value!r} is not a finite number")
    if minimum is not None and (number <= minimum if minimum_exclusive else number < minimum):
        relation = "not above" if minimum_exclusive else "below"
        raise SourceDataError(f"{field} {value!r} is {relation} the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise SourceDataError(f"{field} {value!r} is above the plausible maximum {maximum}")
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places))
    return number


def parse_timestamp(value: object, *, field: str = "timestamp", naive_is_utc: bool = True) -> datetime:
    """An aware UTC datetime from ISO 8601 text; a naive one is read as UTC, or refused if not ``naive_is_utc``."""
    if not isinstance(value, str):
        raise SourceDataError(f"{field} {value!r} is not an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SourceDataError(f"{field} {value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if not naive_is_utc:
            raise SourceDataError(f"{field} {value!r} has no UTC offset")
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if not EARLIEST_TIMESTAMP <= moment < LATEST_TIMESTAMP:
        raise SourceDataError(f"{field} {value!r} is outside {EARLIEST_TIMESTAMP.year}-{LATEST_TIMESTAMP.year}")
    return moment
