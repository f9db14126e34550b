"""Field validators of the physical world."""

import zoneinfo
from functools import lru_cache

from django.core.exceptions import ValidationError


@lru_cache(maxsize=1)
def _known_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    """Accept only IANA time zone names known to this machine's tz database (e.g. Europe/Oslo)."""
    if value not in _known_time_zones():
        raise ValidationError("%(value)s is not an IANA time zone name.", params={"value": value})
