"""Writes across rows of the physical world."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import update_change_reason

from core.db import column_field

from .choices import DataSource, SiteStatus
from .models import EnergyPrice, HackathonPrice, MarketPrice, Site, SourceFetch, WeatherReading
from .signals import replan_requested

if TYPE_CHECKING:
    from .clients.hackathon import HackathonPriceRow

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=models.Model)  # the model a `store_*` writes
_R = TypeVar("_R")  # its incoming rows
_K = TypeVar("_K")  # a row's key


class SiteStatusError(ValueError):
    """A status change that cannot be made (unknown status)."""


@transaction.atomic
def set_site_status(*, site: Site, status: str, reason: str = "", actor=None) -> bool:
    """Move a site to `status`; returns False when it already had it (nothing is written).

    Compare-and-swap on the old status keeps concurrent changes from overwriting each other silently;
    the change is recorded in the site's history with who and why. A site coming back online asks for a re-plan
    once the change commits (`request_replan`): the run re-places contracts left short and may move failed-over
    placements back (sla.services.migration).
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
    if status == SiteStatus.ONLINE:
        transaction.on_commit(request_replan)
    return True


def request_replan() -> None:
    """Ask the layers above for a plan now instead of at the next tick (`sites.signals.replan_requested`); a receiver
    that fails (a broker down) is logged: the change stands, and the tick still comes."""
    for receiver, outcome in replan_requested.send_robust(sender=Site, reason="site online"):
        if isinstance(outcome, Exception):
            logger.error("A re-plan receiver (%s) failed after a site came back online", receiver, exc_info=outcome)


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
    native_currency: str = "USD"
    native_price_per_mwh: Decimal | None = None


@dataclass(frozen=True)
class MarketPriceRow:
    """One interval's global market prices in real units."""

    interval_start: datetime
    hashprice_usd_per_ph_day: Decimal
    inference_price_usd_per_mtok: Decimal


def check_data_source(source: str) -> None:
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
        column_field(model, name).run_validators(value)
    except ValidationError as exc:
        raise PriceRowError(f"{model.__name__}.{name} {value}: {' '.join(exc.messages)}") from None


def _store_new(
    model: type[_M],
    rows: Iterable[_R],
    *,
    source: str,
    what: str,
    key: Callable[[_R], _K],
    check: Callable[[_R], None],
    stored: Callable[[list[_R], list[_K]], Iterable[_K]],
    build: Callable[[_R, _K], _M],
) -> int:
    """What every `store_*` does: check the source and each row (`check` raises PriceRowError), refuse a batch that
    repeats a key (`key(row)`), then insert the rows whose key is not stored yet; returns how many were new.

    `stored(rows, keys)` reads the keys already stored among them (one range query); `build(row, key)` makes the
    new instance. First write wins: a stored interval is never changed. Inserts go 1,000 rows per statement.
    """
    check_data_source(source)
    rows = list(rows)
    if not rows:
        return 0
    for row in rows:
        check(row)
    keys = [key(row) for row in rows]
    _check_unique(keys, what)
    existing = set(stored(rows, keys))
    new = [build(row, k) for row, k in zip(rows, keys, strict=True) if k not in existing]
    model._default_manager.bulk_create(new, batch_size=STORE_BATCH_SIZE, ignore_conflicts=True)
    return len(new)


def _store_new_intervals(
    model: type[_M],
    rows: Iterable[_R],
    *,
    source: str,
    what: str,
    check: Callable[[_R], None],
    build: Callable[[_R, datetime], _M],
) -> int:
    """`_store_new` for the global series, keyed by interval start alone."""

    def stored(rows: list[_R], starts: list[datetime]) -> Iterable[datetime]:
        return model._default_manager.filter(interval_start__range=(min(starts), max(starts))).values_list(
            "interval_start", flat=True
        )

    key: Callable[[_R], datetime] = attrgetter("interval_start")
    return _store_new(model, rows, source=source, what=what, key=key, check=check, stored=stored, build=build)


@transaction.atomic
def store_hackathon_prices(*, rows: Iterable[HackathonPriceRow], source: str) -> int:
    """Store hackathon intervals (abstract units) not stored yet; returns how many were new (`_store_new`)."""
    from .clients.hackathon import PRICE_BOUNDS

    def check(row: HackathonPriceRow) -> None:
        for name, (low, high) in PRICE_BOUNDS.items():
            value = getattr(row, name)
            if not (value.is_finite() and low <= value <= high):
                raise PriceRowError(f"HackathonPrice.{name} {value} is outside {low}..{high}.")

    def build(row: HackathonPriceRow, start: datetime) -> HackathonPrice:
        return HackathonPrice(
            interval_start=start,
            energy_price=row.energy_price,
            hash_price=row.hash_price,
            token_price=row.token_price,
            source=source,
        )

    return _store_new_intervals(HackathonPrice, rows, source=source, what="hackathon price", check=check, build=build)


@transaction.atomic
def store_energy_prices(*, rows: Iterable[EnergyPriceRow], source: str) -> int:
    """Store energy prices (USD/MWh) for site or region intervals not stored yet; returns how many were new.

    Negative prices are valid (surplus renewables); the field's range (-1,000..20,000) is enforced here.
    Keyed by (site, region, interval start): a site's row has no region (`_store_new`).
    """

    def check(row: EnergyPriceRow) -> None:
        if (row.site_id is None) == (not row.grid_region):
            raise PriceRowError("An energy price belongs to a site or to a grid region, not both or neither.")
        _check_field(EnergyPrice, "price_usd_per_mwh", row.price_usd_per_mwh)

    def stored(rows: list[EnergyPriceRow], keys: list[tuple]) -> Iterable[tuple]:
        starts = [start for _, _, start in keys]
        site_ids = {row.site_id for row in rows if row.site_id is not None}
        regions = {row.grid_region for row in rows if row.site_id is None}
        return (
            EnergyPrice.objects.filter(interval_start__range=(min(starts), max(starts)))
            .filter(Q(site_id__in=site_ids) | Q(site__isnull=True, grid_region__in=regions))
            .values_list("site_id", "grid_region", "interval_start")
        )

    def build(row: EnergyPriceRow, key: tuple) -> EnergyPrice:
        site_id, region, start = key
        return EnergyPrice(
            site_id=site_id, grid_region=region, interval_start=start, price_usd_per_mwh=row.price_usd_per_mwh,
            source=source, native_currency=row.native_currency, native_price_per_mwh=row.native_price_per_mwh,
        )  # fmt: skip

    return _store_new(
        EnergyPrice,
        rows,
        source=source,
        what="energy price",
        key=lambda row: (row.site_id, row.grid_region if row.site_id is None else "", row.interval_start),
        check=check,
        stored=stored,
        build=build,
    )


@transaction.atomic
def store_market_prices(*, rows: Iterable[MarketPriceRow], source: str) -> int:
    """Store global hashprice / inference-price intervals not stored yet; returns how many were new (`_store_new`)."""

    def check(row: MarketPriceRow) -> None:
        _check_field(MarketPrice, "hashprice_usd_per_ph_day", row.hashprice_usd_per_ph_day)
        _check_field(MarketPrice, "inference_price_usd_per_mtok", row.inference_price_usd_per_mtok)

    def build(row: MarketPriceRow, start: datetime) -> MarketPrice:
        return MarketPrice(
            interval_start=start,
            hashprice_usd_per_ph_day=row.hashprice_usd_per_ph_day,
            inference_price_usd_per_mtok=row.inference_price_usd_per_mtok,
            source=source,
        )

    return _store_new_intervals(MarketPrice, rows, source=source, what="market price", check=check, build=build)


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
    check_data_source(source)
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


# Refreshing prices and weather from the configured source (the periodic tasks' bodies).
#
# Each refresh covers a short trailing window, not just the current interval: a worker that was down for a
# while fills the gap on its next run. The simulator is deterministic per interval, and stores only insert
# intervals not stored yet, so running a refresh twice (or on two workers) leaves the same rows.

REFRESH_WINDOW_INTERVALS = 12  # one hour of 5-minute intervals
WEATHER_STEP_MINUTES = 15


@dataclass(frozen=True)
class RefreshResult:
    source: str
    rows_written: int
    interval_start: datetime


def simulate_market_window(*, sites: list[Site], start: datetime, periods: int) -> tuple[list, list]:
    """Simulated energy (per site) and market rows for `periods` 5-minute intervals from `start` (pure compute)."""
    from .simulation import simulate_fleet_prices, simulate_hashprice, simulate_inference_price, simulation_timestamps

    knobs = settings.ENERGYARB
    seed = knobs["SIMULATOR_SEED"]
    starts = [
        datetime.fromtimestamp(int(ts), UTC)
        for ts in simulation_timestamps(start, periods).astype("datetime64[s]").astype(int)
    ]
    energy_rows = []
    if sites:
        prices = simulate_fleet_prices(
            [site.price_profile() for site in sites],
            start,
            periods,
            seed=seed,
            spike_cap_usd_per_mwh=knobs["PRICE_SPIKE_CAP_USD_PER_MWH"],
        )
        energy_rows = [
            EnergyPriceRow(interval_start=starts[t], price_usd_per_mwh=_decimal(prices[s, t], "0.01"), site_id=site.pk)
            for s, site in enumerate(sites)
            for t in range(periods)
        ]
    hashprice = simulate_hashprice(
        start, periods, seed=seed, level_usd_per_ph_day=knobs["HASHPRICE_LEVEL_USD_PER_PH_DAY"]
    )
    token_price = simulate_inference_price(start, periods, seed=seed)
    market_rows = [
        MarketPriceRow(
            interval_start=starts[t],
            hashprice_usd_per_ph_day=_decimal(hashprice[t], "0.0001"),
            inference_price_usd_per_mtok=_decimal(token_price[t], "0.0001"),
        )
        for t in range(periods)
    ]
    return energy_rows, market_rows


def _decimal(value: float, places: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(places))


def refresh_market_prices(*, at: datetime) -> RefreshResult:
    """Fetch or simulate the latest prices and store the new intervals; the attempt is recorded either way.

    Raises the source's error (SourceUnavailable is transient and retried by the task); nothing already stored
    is changed by a failure, and the optimizer keeps using the last prices until they are too old.
    """
    from .markets.live import live_site_ids, refresh_live_prices
    from .simulation import floor_to_step

    source = settings.ENERGYARB["PRICE_SOURCE"]
    current = floor_to_step(at)
    if source == DataSource.SIMULATOR:
        start = current - timedelta(minutes=5 * (REFRESH_WINDOW_INTERVALS - 1))
        with track_source_fetch(kind=SourceFetch.Kind.MARKET, source=DataSource.SIMULATOR) as outcome:
            energy_rows, market_rows = simulate_market_window(
                sites=list(Site.objects.exclude(pk__in=live_site_ids()).order_by("pk")),
                start=start,
                periods=REFRESH_WINDOW_INTERVALS,
            )
            with transaction.atomic():
                outcome.rows_written = store_energy_prices(rows=energy_rows, source=DataSource.SIMULATOR)
                outcome.rows_written += store_market_prices(rows=market_rows, source=DataSource.SIMULATOR)
        if settings.ENERGYARB["LIVE_MARKETS"]:  # sites tied to a live market's node (sites.markets.live)
            refresh_live_prices(at=at)
        return RefreshResult(source=source, rows_written=outcome.rows_written, interval_start=current)
    if source == DataSource.HACKATHON_API:
        from .clients.hackathon import fetch_prices

        with track_source_fetch(kind=SourceFetch.Kind.MARKET, source=DataSource.HACKATHON_API) as outcome:
            rows = fetch_prices()
            outcome.rows_written = store_hackathon_market(rows=rows)
        return RefreshResult(source=source, rows_written=outcome.rows_written, interval_start=current)
    raise ImproperlyConfigured(f"PRICE_SOURCE must be 'simulator' or 'hackathon_api', not {source!r}.")


@transaction.atomic
def store_hackathon_market(*, rows: list[HackathonPriceRow]) -> int:
    """Store hackathon rows as they came (abstract units) and as real-unit market and per-site energy prices.

    The API has one energy price for everyone; each site pays it times its energy-cost multiplier.
    """
    source = DataSource.HACKATHON_API
    written = store_hackathon_prices(rows=rows, source=source)
    sites = list(Site.objects.order_by("pk"))
    market_rows: list[MarketPriceRow] = []
    energy_rows: list[EnergyPriceRow] = []
    for row in rows:
        real = row.to_real()
        market_rows.append(
            MarketPriceRow(
                interval_start=row.interval_start,
                hashprice_usd_per_ph_day=real.hashprice_usd_per_ph_day.quantize(Decimal("0.0001")),
                inference_price_usd_per_mtok=real.inference_price_usd_per_mtok.quantize(Decimal("0.0001")),
            )
        )
        energy_rows.extend(
            EnergyPriceRow(
                interval_start=row.interval_start,
                price_usd_per_mwh=(real.price_usd_per_mwh * site.energy_cost_multiplier).quantize(Decimal("0.01")),
                site_id=site.pk,
            )
            for site in sites
        )
    written += store_market_prices(rows=market_rows, source=source)
    written += store_energy_prices(rows=energy_rows, source=source)
    return written


@dataclass(frozen=True)
class WeatherRow:
    site_id: int
    observed_at: datetime
    temperature_c: Decimal


def _check_temperature(value: Decimal) -> None:
    _check_field(WeatherReading, "temperature_c", value)


@transaction.atomic
def store_weather_readings(*, rows: Iterable[WeatherRow], source: str) -> int:
    """Store readings for (site, time) pairs not stored yet; returns how many were new (`_store_new`)."""

    def stored(rows: list[WeatherRow], keys: list[tuple]) -> Iterable[tuple]:
        times = [observed_at for _, observed_at in keys]
        return WeatherReading.objects.filter(
            site_id__in={site_id for site_id, _ in keys}, observed_at__range=(min(times), max(times))
        ).values_list("site_id", "observed_at")

    return _store_new(
        WeatherReading,
        rows,
        source=source,
        what="weather",
        key=lambda row: (row.site_id, row.observed_at),
        check=lambda row: _check_temperature(row.temperature_c),
        stored=stored,
        build=lambda row, key: WeatherReading(
            site_id=row.site_id, observed_at=row.observed_at, temperature_c=row.temperature_c, source=source
        ),
    )


def simulate_weather_rows(*, site: Site, start: datetime, periods: int, heat_waves=()) -> list[WeatherRow]:
    """Simulated 15-minute temperatures for one site (pure compute)."""
    from .simulation import simulate_temperatures

    profile = site.climate_profile()
    # Simulate on the 5-minute grid every simulator shares and keep every third value, so a reading at
    # hh:15 is the same whichever window asked for it.
    values = simulate_temperatures(
        profile,
        start,
        periods * 3,
        seed=settings.ENERGYARB["SIMULATOR_SEED"],
        heat_waves=heat_waves,
        stream=site.code,
    )[::3]
    return [
        WeatherRow(
            site_id=site.pk,
            observed_at=start + timedelta(minutes=WEATHER_STEP_MINUTES * i),
            temperature_c=_decimal(value, "0.01"),
        )
        for i, value in enumerate(values)
    ]


def refresh_weather(*, at: datetime) -> RefreshResult:
    """Simulate or fetch the latest temperatures for every site; the attempt is recorded either way."""
    from .simulation import floor_to_step

    source = settings.ENERGYARB["WEATHER_SOURCE"]
    current = floor_to_step(at, WEATHER_STEP_MINUTES)
    sites = list(Site.objects.order_by("pk"))
    if source == DataSource.SIMULATOR:
        start = current - timedelta(minutes=WEATHER_STEP_MINUTES * 3)  # the last hour
        with track_source_fetch(kind=SourceFetch.Kind.WEATHER, source=source) as outcome:
            rows = [row for site in sites for row in simulate_weather_rows(site=site, start=start, periods=4)]
            outcome.rows_written = store_weather_readings(rows=rows, source=source)
        return RefreshResult(source=source, rows_written=outcome.rows_written, interval_start=current)
    if source == DataSource.OPEN_METEO:
        from .clients.open_meteo import fetch_temperatures

        with track_source_fetch(kind=SourceFetch.Kind.WEATHER, source=source) as outcome:
            rows = []
            for site in sites:
                readings = fetch_temperatures(latitude=float(site.latitude), longitude=float(site.longitude))
                rows.extend(
                    WeatherRow(site_id=site.pk, observed_at=moment, temperature_c=value)
                    for moment, value in readings
                    if moment <= at
                )
            outcome.rows_written = store_weather_readings(rows=rows, source=source)
        return RefreshResult(source=source, rows_written=outcome.rows_written, interval_start=current)
    raise ImproperlyConfigured(f"WEATHER_SOURCE must be 'simulator' or 'open_meteo', not {source!r}.")


# Retention: time series older than ENERGYARB["RETENTION_DAYS"] are deleted by the daily prune task (never by a
# request). Each series keeps its newest row whatever its age, so a source that stopped long ago still shows its
# last value (and its staleness) instead of nothing.

PRUNE_BATCH_SIZE = 5000


def _delete_in_batches(queryset: models.QuerySet) -> int:
    """Delete by primary key in batches: short transactions and locks on big tables; returns rows deleted."""
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:PRUNE_BATCH_SIZE])
        if not ids:
            return deleted
        with transaction.atomic():
            deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]


def _cutoffs(queryset: models.QuerySet, group: str, time_field: str, before: datetime) -> dict:
    """Per group value: min(before, the group's newest time), so the newest row of every series is kept."""
    newest = queryset.order_by().values(group).annotate(newest=models.Max(time_field)).values_list(group, "newest")
    return {key: min(before, moment) for key, moment in newest}


def prune_old_prices(*, before: datetime) -> dict[str, int]:
    """Delete prices, weather readings and fetch records older than `before`; returns rows deleted per table.

    Idempotent (a second call deletes nothing) and safe alongside refreshes: it only touches rows older than
    `before`, which no refresh writes. Cost: one query per series head plus one DELETE per 5,000 rows.
    """
    if timezone.is_naive(before):
        raise ValueError("`before` must be an aware datetime.")
    counts = {}
    site_cutoffs = _cutoffs(EnergyPrice.objects.filter(site__isnull=False), "site", "interval_start", before)
    region_cutoffs = _cutoffs(EnergyPrice.objects.filter(site__isnull=True), "grid_region", "interval_start", before)
    counts["energy_prices"] = sum(
        _delete_in_batches(EnergyPrice.objects.filter(site_id=site_id, interval_start__lt=cutoff))
        for site_id, cutoff in site_cutoffs.items()
    ) + sum(
        _delete_in_batches(EnergyPrice.objects.filter(site__isnull=True, grid_region=region, interval_start__lt=cutoff))
        for region, cutoff in region_cutoffs.items()
    )
    weather_cutoffs = _cutoffs(WeatherReading.objects.all(), "site", "observed_at", before)
    counts["weather_readings"] = sum(
        _delete_in_batches(WeatherReading.objects.filter(site_id=site_id, observed_at__lt=cutoff))
        for site_id, cutoff in weather_cutoffs.items()
    )
    for name, model in (("market_prices", MarketPrice), ("hackathon_prices", HackathonPrice)):
        newest = model.objects.order_by("-interval_start").values_list("interval_start", flat=True).first()
        cutoff = min(before, newest) if newest else before
        counts[name] = _delete_in_batches(model.objects.filter(interval_start__lt=cutoff))
    counts["source_fetches"] = _delete_in_batches(SourceFetch.objects.filter(started_at__lt=before))
    return counts
