"""Values as the page shows them: rounded floats and ISO 8601 UTC times."""

from __future__ import annotations

from datetime import datetime


def _f(value, places: int = 2) -> float | None:
    """A Decimal/float as a rounded float for the page, None kept."""
    if value is None:
        return None
    return round(float(value), places)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
