"""Writers of the real-market series; every writer (command, admin, API, task) stores through these.

Same rules as ``sites.services``: rows are checked first (one bad row stores nothing), a stored interval is never
changed (re-import adds nothing), inserts are batched.

Prices of a node go to the sites tied to it, in USD through the stored daily ``FxRate`` of the interval's UTC day
(or the newest earlier one within ``FX_LOOKBACK_DAYS``: ECB publishes business days only), keeping the quoted
currency and value. Hourly and 15-minute prices are placed on the 5-minute grid as steps: each 5-minute interval
inside a native interval carries the native price (what the market settles: one price for the whole interval).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction

from sites.services import (
    EnergyPriceRow,
    PriceRowError,
    _check_field,
    _store_new,
    store_energy_prices,
)
from sites.units import INTERVAL_MINUTES

from .choices import Currency
from .formats import Point
from .models import AncillaryPrice, FxRate, PriceNode, SystemLoad

FX_LOOKBACK_DAYS = 7
CENT = Decimal("0.01")


@dataclass(frozen=True)
class AncillaryRow:
    market: str
    service: str
    interval_start: datetime
    interval_minutes: int
    price_usd_per_mw_h: Decimal


@dataclass(frozen=True)
class LoadRow:
    market: str
    zone: str
    kind: str
    interval_start: datetime
    interval_minutes: int
    load_mw: Decimal


@dataclass(frozen=True)
class FxRow:
    day: date
    currency: str
    usd_per_unit: Decimal


def _interval_check(model, value_field: str):
    def check(row) -> None:
        if row.interval_minutes <= 0:
            raise PriceRowError(f"{model.__name__}: interval length {row.interval_minutes} is not positive.")
        _check_field(model, value_field, getattr(row, value_field))

    return check


@transaction.atomic
def store_ancillary_prices(*, rows: Iterable[AncillaryRow], source: str) -> int:
    """Store ancillary-service prices not stored yet (key: market, service, interval start); returns how many."""
    from .choices import AncillaryService

    def stored(rows: list[AncillaryRow], keys: list[tuple]) -> Iterable[tuple]:
        starts = [key[2] for key in keys]
        return AncillaryPrice.objects.filter(
            interval_start__range=(min(starts), max(starts)), service__in={row.service for row in rows}
        ).values_list("market", "service", "interval_start")

    def check(row: AncillaryRow) -> None:
        if row.service not in AncillaryService.values:
            raise PriceRowError(
                f"Unknown ancillary service {row.service!r}: one of {', '.join(AncillaryService.values)}."
            )
        _interval_check(AncillaryPrice, "price_usd_per_mw_h")(row)

    return _store_new(
        AncillaryPrice,
        rows,
        source=source,
        what="ancillary price",
        key=lambda row: (row.market, row.service, row.interval_start),
        check=check,
        stored=stored,
        build=lambda row, key: AncillaryPrice(
            market=row.market,
            service=row.service,
            interval_start=row.interval_start,
            interval_minutes=row.interval_minutes,
            price_usd_per_mw_h=row.price_usd_per_mw_h,
            source=source,
        ),
    )


@transaction.atomic
def store_system_load(*, rows: Iterable[LoadRow], source: str) -> int:
    """Store load intervals not stored yet (key: market, zone, kind, interval start); returns how many."""

    def stored(rows: list[LoadRow], keys: list[tuple]) -> Iterable[tuple]:
        starts = [key[3] for key in keys]
        return SystemLoad.objects.filter(
            interval_start__range=(min(starts), max(starts)), zone__in={row.zone for row in rows}
        ).values_list("market", "zone", "kind", "interval_start")

    return _store_new(
        SystemLoad,
        rows,
        source=source,
        what="load",
        key=lambda row: (row.market, row.zone, row.kind, row.interval_start),
        check=_interval_check(SystemLoad, "load_mw"),
        stored=stored,
        build=lambda row, key: SystemLoad(
            market=row.market,
            zone=row.zone,
            kind=row.kind,
            interval_start=row.interval_start,
            interval_minutes=row.interval_minutes,
            load_mw=row.load_mw,
            source=source,
        ),
    )


@transaction.atomic
def store_fx_rates(*, rows: Iterable[FxRow], source: str) -> int:
    """Store daily FX rates not stored yet (key: currency, day); returns how many."""

    def check(row: FxRow) -> None:
        if row.currency not in Currency.values:
            raise PriceRowError(f"Unknown currency {row.currency!r}: one of {', '.join(Currency.values)}.")
        _check_field(FxRate, "usd_per_unit", row.usd_per_unit)

    def stored(rows: list[FxRow], keys: list[tuple]) -> Iterable[tuple]:
        days = [key[1] for key in keys]
        return FxRate.objects.filter(day__range=(min(days), max(days))).values_list("currency", "day")

    return _store_new(
        FxRate,
        rows,
        source=source,
        what="FX rate",
        key=lambda row: (row.currency, row.day),
        check=check,
        stored=stored,
        build=lambda row, key: FxRate(
            currency=row.currency,
            day=row.day,
            usd_per_unit=row.usd_per_unit.quantize(Decimal("0.000001")),
            source=source,
        ),
    )


class MissingFxRate(PriceRowError):
    """No stored rate converts a day's prices to USD."""


def usd_rates(currency: str, days: Iterable[date]) -> dict[date, Decimal]:
    """USD per unit of ``currency`` for each day: the day's stored rate or the newest within FX_LOOKBACK_DAYS before.

    Raises MissingFxRate naming the first days without one (import rates with ``manage.py import_fx_rates``).
    """
    days = sorted(set(days))
    if currency == Currency.USD or not days:
        return dict.fromkeys(days, Decimal(1))
    stored = dict(
        FxRate.objects.filter(
            currency=currency, day__range=(days[0] - timedelta(days=FX_LOOKBACK_DAYS), days[-1])
        ).values_list("day", "usd_per_unit")
    )
    rates, missing = {}, []
    for day in days:
        found = next(
            (stored[d] for d in (day - timedelta(days=k) for k in range(FX_LOOKBACK_DAYS + 1)) if d in stored), None
        )
        if found is None:
            missing.append(day)
        else:
            rates[day] = found
    if missing:
        listed = ", ".join(f"{day:%Y-%m-%d}" for day in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise MissingFxRate(
            f"No {currency}->USD rate stored for {len(missing)} day(s) ({listed}); import them with "
            "`manage.py import_fx_rates` or enter them in the admin (FX rates)."
        )
    return rates


def node_price_rows(node: PriceNode, points: Sequence[Point], site_ids: Sequence[int]) -> list[EnergyPriceRow]:
    """Each native price as 5-minute USD steps for every site tied to the node (the original kept alongside)."""
    rates = usd_rates(node.currency, (point.start.date() for point in points))
    step = timedelta(minutes=INTERVAL_MINUTES)
    rows = []
    for point in points:
        if point.minutes % INTERVAL_MINUTES or point.start.minute % INTERVAL_MINUTES or point.start.second:
            raise PriceRowError(f"line {point.line}: a {point.minutes}-minute interval is not on the 5-minute grid.")
        usd = (point.value * rates[point.start.date()]).quantize(CENT)
        native = point.value.quantize(CENT)
        for k in range(point.minutes // INTERVAL_MINUTES):
            start = point.start + k * step
            rows += [
                EnergyPriceRow(
                    interval_start=start,
                    price_usd_per_mwh=usd,
                    site_id=site_id,
                    native_currency=node.currency,
                    native_price_per_mwh=native,
                )
                for site_id in site_ids
            ]
    return rows


def store_node_prices(*, node: PriceNode, points: Sequence[Point], source: str) -> int:
    """Store a node's prices for the sites tied to it (5-minute steps, USD); returns the site intervals written."""
    site_ids = list(node.sites.order_by("pk").values_list("pk", flat=True))
    if not site_ids:
        raise PriceRowError(f"No site is tied to {node}: tie one in the admin (Site: price node) first.")
    return store_energy_prices(rows=node_price_rows(node, points, site_ids), source=source)
