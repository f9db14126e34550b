"""Customer baselines: what a site would have drawn during an event had it not been called.

The "high 5 of 10" baseline (ERCOT's and NYISO's customer baseline for load reductions): take the last 10 eligible
days before the event (days of the same kind in the site's time zone: a business day, or a weekend day or public
holiday; with a complete load history over the event's hours and no other event at the site), average each day's
load over the event's clock times, keep the 5 highest days and average them. The public holidays are those of the
site's country, from the `holidays` package (``public_holidays``); a country it does not know has none.

The load history is IT kW per 5-minute interval (the unit baselines, plans and caps use). `grid` sits beside
`fleet` and below `optimizer`, so it cannot read the meter rollups or the applied plans itself: the optimizer app
registers a `LoadSource` (`optimizer/load_history.py`) that reads fleet telemetry where a site has it and the
applied plans elsewhere, and the telemetry alone, which a completed event is settled on when it covers the event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from sites.models import Site
from sites.simulation import floor_to_step

LIKE_DAYS = 10  # eligible days looked at
HIGH_DAYS = 5  # of which the highest are averaged
LOOKBACK_DAYS = 45  # how far back eligible days are searched
STEP = timedelta(minutes=5)

# site, start, end -> {interval start (UTC): IT kW} over [start, end); intervals without a known load are absent.
LoadSource = Callable[[Site, datetime, datetime], Mapping[datetime, float]]
_sources: list[LoadSource] = []
_measured: list[LoadSource] = []


class BaselineUnavailable(ValueError):
    """Too few eligible days of load history for the baseline."""


def register_load_source(source: LoadSource, *, measured: LoadSource | None = None) -> None:
    """The load history the baseline reads, and (``measured``) the measured intervals alone, which events are
    settled on where they cover the whole event (one of each; registering again replaces them)."""
    _sources[:] = [source]
    _measured[:] = [measured] if measured is not None else []


def measured_mean_kw(site: Site, starts_at: datetime, ends_at: datetime) -> float | None:
    """The site's mean measured IT kW over [starts_at, ends_at) when the measured source covers every 5-minute
    interval of it; None otherwise (no source, or a gap: the event is then settled on its planned load)."""
    if not _measured:
        return None
    first = floor_to_step(starts_at)
    loads = _measured[0](site, first, ends_at)
    values = [loads.get(moment) for moment in _intervals(first, ends_at)]
    known = [value for value in values if value is not None]
    if not values or len(known) < len(values):
        return None
    return sum(known) / len(known)


def load_source() -> LoadSource:
    if not _sources:
        raise BaselineUnavailable("no load history is registered (the optimizer app registers it)")
    return _sources[0]


@dataclass(frozen=True)
class Baseline:
    kw: float
    days: tuple[date, ...]  # the days averaged, highest first
    eligible: tuple[date, ...]  # the like days considered, newest first


@lru_cache(maxsize=256)
def _holidays_of_year(country: str, year: int) -> frozenset[date]:
    try:
        calendar = holidays.country_holidays(country.upper(), years=year)
    except NotImplementedError:  # a country the package has no calendar for
        return frozenset()
    return frozenset(calendar)


def public_holidays(country: str, first: date, last: date) -> frozenset[date]:
    """The public holidays of `country` (ISO 3166-1 alpha-2) from `first` to `last` inclusive (national ones, the
    package's default category; kept per country and year)."""
    days: set[date] = set()
    for year in range(first.year, last.year + 1):
        days.update(day for day in _holidays_of_year(country, year) if first <= day <= last)
    return frozenset(days)


def _intervals(start: datetime, end: datetime) -> list[datetime]:
    moments, at = [], start
    while at < end:
        moments.append(at)
        at += STEP
    return moments


def high_5_of_10(
    loads: Mapping[datetime, float],
    *,
    starts_at: datetime,
    ends_at: datetime,
    tz: ZoneInfo,
    skip_days: Iterable[date] = (),
    holidays_off: Collection[date] = (),
) -> Baseline:
    """The high-5-of-10 baseline of an event over [starts_at, ends_at) from 5-minute IT kW ``loads`` (pure).

    A day d before the event day is eligible when it is of the same kind (a business day, or a day off: a weekend
    day or one of ``holidays_off``), not in ``skip_days`` (days of other events) and ``loads`` holds every interval of
    the event's clock times on d.
    """
    first = floor_to_step(starts_at)  # the 5-minute interval the event starts in
    length = ends_at - first
    local_start = first.astimezone(tz)

    def day_off(day: date) -> bool:
        return day.weekday() >= 5 or day in holidays_off

    event_day_off = day_off(local_start.date())
    skip = set(skip_days)
    eligible: list[tuple[date, float]] = []
    for back in range(1, LOOKBACK_DAYS + 1):
        day_start = (local_start - timedelta(days=back)).astimezone(first.tzinfo)  # same clock time, DST-safe
        day = day_start.astimezone(tz).date()
        if day_off(day) != event_day_off or day in skip:
            continue
        moments = _intervals(day_start, day_start + length)
        values = [loads.get(moment) for moment in moments]
        known = [value for value in values if value is not None]
        if not moments or len(known) < len(values):
            continue
        eligible.append((day, sum(known) / len(known)))
        if len(eligible) == LIKE_DAYS:
            break
    if len(eligible) < HIGH_DAYS:
        raise BaselineUnavailable(
            f"{len(eligible)} like days of load history in the last {LOOKBACK_DAYS} days; the high 5 of 10 baseline "
            f"needs at least {HIGH_DAYS}"
        )
    high = sorted(eligible, key=lambda pair: (-pair[1], pair[0]))[:HIGH_DAYS]
    return Baseline(
        kw=sum(kw for _, kw in high) / len(high),
        days=tuple(day for day, _ in high),
        eligible=tuple(day for day, _ in eligible),
    )
