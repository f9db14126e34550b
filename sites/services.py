"""Writes across rows of the physical world."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import update_change_reason

from .choices import DataSource, SiteStatus
from .models import EnergyPrice, HackathonPrice, MarketPrice, Site, SourceFetch

if TYPE_CHECKING:
    from .clients.hackathon import HackathonPriceRow


class SiteStatusError(ValueError):
    """A status change that cannot be made (unknown status)."""


@transaction.atomic
def set_site_status(*, site: Site, status: str, reason: str = "", actor=None) -> bool:
    """Move a site to `status`; returns False when it already had it (nothing is written).

    Compare-and-swap on the old status keeps concurrent changes from overwriting each other silently;
    the change is recorded in the site's history with who and why.
    """
    if status not in SiteStatus.values:
        raise SiteStatusError(f"Unknown site status {status!r}.")
    locked = Site.objects.select_for_update().get(pk=site.pk)
    if locked.status == status:
        return False
    locked.status = status
    locked.status_changed_at = timezone.now()
    locked.status_reason = reason[:200]
    if actor is not None and actor.is_authenticated:
        locked._history_user = actor
    locked.save(update_fields=["status", "status_changed_at", "status_reason", "updated_at"])
    update_change_reason(locked, reason or f"status -> {status}")
    site.refresh_from_db()
    return True


# Prices from external sources: validated rows in, natural-key inserts out.
#
# Stored intervals are facts. Every store_* function inserts only intervals not yet stored (natural-key unique
# constraint + INSERT ... ON CONFLICT DO NOTHING) and never updates one: re-importing adds nothing, and a source
# that later sends a different value for a stored interval cannot rewrite history. Each returns the number of
# rows it newly wrote, counted against the keys present before the insert (one range query); a concurrent writer
# inserting the same interval in between is skipped by the database, and then the count is one too high.

STORE_BATCH_SIZE = 1000


class PriceRowError(ValueError):
    """Rows handed to a store_* function are invalid (unknown source, duplicate key, value out of range)."""


@dataclass(frozen=True)
class EnergyPriceRow:
    """One interval's energy price for a site (``site_id``) or a grid region (``grid_region``), in USD/MWh."""

    interval_start: datetime
    price_usd_per_mwh: Decimal
    site_id: int | None = None
    grid_region: str = ""


@dataclass(frozen=True)
class MarketPriceRow:
    """One interval's global market prices in real units."""

    interval_start: datetime
    hashprice_usd_per_ph_day: Decimal
    inference_price_usd_per_mtok: Decimal


def _check_source(source: str) -> None:
    if source not in DataSource.values:
        raise PriceRowError(f"Unknown data source {source!r}.")


def _check_unique(keys: list, what: str) -> None:
    if len(set(keys)) != len(keys):
        raise PriceRowError(f"The {what} rows repeat an interval; each key may appear once.")


def _check_field(model: type[models.Model], name: str, value: Decimal) -> None:
    """Run the model field's range validators: SQLite's INSERT OR IGNORE would drop a CHECK failure silently."""
    if not value.is_finite():
        raise PriceRowError(f"{model.__name__}.{name} {value} is not finite.")
    try:
        model._meta.get_field(name).run_validators(value)
    except ValidationError as exc:
        raise PriceRowError(f"{model.__name__}.{name} {value}: {' '.join(exc.messages)}") from None


def _insert_new(model: type[models.Model], objs: list[models.Model]) -> int:
    model.objects.bulk_create(objs, batch_size=STORE_BATCH_SIZE, ignore_conflicts=True)
    return len(objs)


@transaction.atomic
def store_hackathon_prices(*, rows: Iterable[HackathonPriceRow], source: str) -> int:
    """Store hackathon intervals (abstract units) not stored yet; returns how many were new.

    Query cost: one range query for existing interval starts, one INSERT per 1,000 new rows.
    """
    from .clients.hackathon import PRICE_BOUNDS

    _check_source(source)
    rows = list(rows)
    if not rows:
        return 0
    starts = [row.interval_start for row in rows]
    _check_unique(starts, "hackathon price")
    for row in rows:
        for name, (low, high) in PRICE_BOUNDS.items():
            value = getattr(row, name)
            if not (value.is_finite() and low <= value <= high):
                raise PriceRowError(f"HackathonPrice.{name} {value} is outside {low}..{high}.")
    existing = set(
        HackathonPrice.objects.filter(interval_start__range=(min(starts), max(starts))).values_list(
            "interval_start", flat=True
        )
    )
    new = [
        HackathonPrice(
            interval_start=row.interval_start,
            energy_price=row.energy_price,
            hash_price=row.hash_price,
            token_price=row.token_price,
            source=source,
        )
        for row in rows
        if row.interval_start not in existing
    ]
    return _insert_new(HackathonPrice, new)


@transaction.atomic
def store_energy_prices(*, rows: Iterable[EnergyPriceRow], source: str) -> int:
    """Store energy prices (USD/MWh) for site or region intervals not stored yet; returns how many were new.

    Negative prices are valid (surplus renewables); the field's range (-1,000..20,000) is enforced here.
    Query cost: one range query for existing keys, one INSERT per 1,000 new rows.
    """
    _check_source(source)
    rows = list(rows)
    if not rows:
        return 0
    for row in rows:
        if (row.site_id is None) == (not row.grid_region):
            raise PriceRowError("An energy price belongs to a site or to a grid region, not both or neither.")
        _check_field(EnergyPrice, "price_usd_per_mwh", row.price_usd_per_mwh)
    keys = [(row.site_id, row.grid_region if row.site_id is None else "", row.interval_start) for row in rows]
    _check_unique(keys, "energy price")
    starts = [row.interval_start for row in rows]
    site_ids = {row.site_id for row in rows if row.site_id is not None}
    regions = {row.grid_region for row in rows if row.site_id is None}
    existing = set(
        EnergyPrice.objects.filter(interval_start__range=(min(starts), max(starts)))
        .filter(Q(site_id__in=site_ids) | Q(site__isnull=True, grid_region__in=regions))
        .values_list("site_id", "grid_region", "interval_start")
    )
    new = [
        EnergyPrice(
            site_id=row.site_id,
            grid_region=key[1],
            interval_start=row.interval_start,
            price_usd_per_mwh=row.price_usd_per_mwh,
            source=source,
        )
        for row, key in zip(rows, keys, strict=True)
        if key not in existing
    ]
    return _insert_new(EnergyPrice, new)


@transaction.atomic
def store_market_prices(*, rows: Iterable[MarketPriceRow], source: str) -> int:
    """Store global hashprice / inference-price intervals not stored yet; returns how many were new.

    Query cost: one range query for existing interval starts, one INSERT per 1,000 new rows.
    """
    _check_source(source)
    rows = list(rows)
    if not rows:
        return 0
    for row in rows:
        _check_field(MarketPrice, "hashprice_usd_per_ph_day", row.hashprice_usd_per_ph_day)
        _check_field(MarketPrice, "inference_price_usd_per_mtok", row.inference_price_usd_per_mtok)
    starts = [row.interval_start for row in rows]
    _check_unique(starts, "market price")
    existing = set(
        MarketPrice.objects.filter(interval_start__range=(min(starts), max(starts))).values_list(
            "interval_start", flat=True
        )
    )
    new = [
        MarketPrice(
            interval_start=row.interval_start,
            hashprice_usd_per_ph_day=row.hashprice_usd_per_ph_day,
            inference_price_usd_per_mtok=row.inference_price_usd_per_mtok,
            source=source,
        )
        for row in rows
        if row.interval_start not in existing
    ]
    return _insert_new(MarketPrice, new)


# Fetch attempts. Failures are recorded so staleness can be explained; record them outside the transaction
# that stores rows, or the failure record rolls back with it.

MAX_ERROR_CHARS = 4000


def record_source_fetch(
    *,
    kind: str,
    source: str,
    started_at: datetime,
    succeeded: bool,
    finished_at: datetime | None = None,
    rows_written: int = 0,
    error: str = "",
) -> SourceFetch:
    """Record one attempt to read an external source (``finished_at`` defaults to now)."""
    if kind not in SourceFetch.Kind.values:
        raise ValueError(f"Unknown fetch kind {kind!r}.")
    _check_source(source)
    if rows_written < 0:
        raise ValueError("rows_written cannot be negative.")
    return SourceFetch.objects.create(
        kind=kind,
        source=source,
        started_at=started_at,
        finished_at=finished_at or timezone.now(),
        succeeded=succeeded,
        rows_written=rows_written,
        error=error[:MAX_ERROR_CHARS],
    )


@dataclass
class FetchOutcome:
    """What the body of ``track_source_fetch`` reports (rows_written); ``fetch`` is the record, set on exit."""

    rows_written: int = 0
    fetch: SourceFetch | None = None


@contextmanager
def track_source_fetch(*, kind: str, source: str) -> Iterator[FetchOutcome]:
    """Time a fetch-and-store block and record it; an exception is recorded as a failure and re-raised.

    Usage::

        with track_source_fetch(kind=SourceFetch.Kind.MARKET, source=DataSource.HACKATHON_API) as outcome:
            outcome.rows_written = store_hackathon_prices(rows=fetch_prices(), source=DataSource.HACKATHON_API)
    """
    outcome = FetchOutcome()
    started_at = timezone.now()
    try:
        yield outcome
    except Exception as exc:
        outcome.fetch = record_source_fetch(
            kind=kind, source=source, started_at=started_at, succeeded=False, error=str(exc) or type(exc).__name__
        )
        raise
    outcome.fetch = record_source_fetch(
        kind=kind, source=source, started_at=started_at, succeeded=True, rows_written=outcome.rows_written
    )
