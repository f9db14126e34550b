"""The prices ``GET /mara/prices`` serves: newest first, one per 5-minute interval, in the hackathon's units.

Source, decided per request:

1. When ``HackathonPrice`` rows exist (the event trace imported with
   ``manage.py import_prices ../shared/data/mara-hackathon-2025-06-21-prices.csv --format mara``, or rows fetched
   from a live hackathon API), those rows are served as stored: the event's own numbers and clock.
2. Otherwise energyarb's own prices are converted into the hackathon's units with the declared scale of
   ``sites.units`` (``usd_per_mwh_to_hackathon_energy_price`` and its siblings): an interval's ``hash_price`` and
   ``token_price`` come from its ``MarketPrice``; its ``energy_price`` from the mean of the sites' ``EnergyPrice``
   rows for that interval (the fleet's mean: the event had one energy price for everyone), or from one site's
   when ``settings.ENERGYARB["MARA_API_ENERGY_SITE"]`` names a site code. Intervals without a market price or
   without any site energy price are skipped rather than guessed.

At most ``MAX_SERVED_INTERVALS`` (one day; the event's trace covered nine hours) are served, so a year of history
does not become a 30 MB answer; ``settings.ENERGYARB["MARA_API_MAX_INTERVALS"]`` overrides it.
Cost: at most four queries (``exists``, then one, or three for converted prices).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg

from sites.models import EnergyPrice, HackathonPrice, MarketPrice, Site
from sites.units import (
    INTERVALS_PER_DAY,
    usd_per_mtok_to_hackathon_token_price,
    usd_per_mwh_to_hackathon_energy_price,
    usd_per_ph_day_to_hackathon_hash_price,
)

MAX_SERVED_INTERVALS = INTERVALS_PER_DAY  # 288

SOURCE_EVENT_TRACE = "hackathon"
SOURCE_CONVERTED = "converted"


@dataclass(frozen=True)
class ServedPrice:
    """One interval as ``GET /mara/prices`` serves it; ``interval_start`` is aware UTC, prices abstract units."""

    interval_start: datetime
    energy_price: Decimal
    hash_price: Decimal
    token_price: Decimal
    source: str

    def as_json(self) -> dict[str, object]:
        """The event's item shape: floats, and a naive ISO timestamp (the API's clock had no offset; ours is UTC)."""
        return {
            "energy_price": float(self.energy_price),
            "hash_price": float(self.hash_price),
            "timestamp": naive_utc_iso(self.interval_start),
            "token_price": float(self.token_price),
        }


def naive_utc_iso(moment: datetime) -> str:
    """``2025-06-21T13:17:50.126193``: UTC without an offset, as the event's server wrote timestamps."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def max_served_intervals() -> int:
    return int(settings.ENERGYARB.get("MARA_API_MAX_INTERVALS", MAX_SERVED_INTERVALS))


def served_prices(limit: int | None = None) -> list[ServedPrice]:
    """The served intervals, newest first (see the module docstring for where they come from)."""
    limit = max_served_intervals() if limit is None else limit
    if limit <= 0:
        return []
    if HackathonPrice.objects.exists():
        return _event_prices(limit)
    return _converted_prices(limit)


def latest_price() -> ServedPrice | None:
    """The newest served interval: the prices ``GET /mara/machines`` accounts with, or None before any."""
    prices = served_prices(limit=1)
    return prices[0] if prices else None


def _event_prices(limit: int) -> list[ServedPrice]:
    rows = HackathonPrice.objects.order_by("-interval_start").values_list(
        "interval_start", "energy_price", "hash_price", "token_price"
    )[:limit]
    return [
        ServedPrice(
            interval_start=start, energy_price=energy, hash_price=hash_, token_price=token, source=SOURCE_EVENT_TRACE
        )
        for start, energy, hash_, token in rows
    ]


def _converted_prices(limit: int) -> list[ServedPrice]:
    """energyarb's newest intervals that have both a market price and a site energy price, converted.

    Index-range queries only: the newest ``2 x limit`` market intervals, then the chosen sites' energy prices in
    that time range (a refresh stores market and energy prices together, so gaps are rare and skipped).
    """
    site_code = settings.ENERGYARB.get("MARA_API_ENERGY_SITE", "")
    sites = Site.objects.filter(code=site_code) if site_code else Site.objects.all()
    site_ids = list(sites.values_list("pk", flat=True))
    market = list(
        MarketPrice.objects.order_by("-interval_start").values_list(
            "interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok"
        )[: 2 * limit]
    )
    if not market or not site_ids:
        return []
    mean_usd_per_mwh = dict(
        EnergyPrice.objects.filter(site_id__in=site_ids, interval_start__range=(market[-1][0], market[0][0]))
        .values("interval_start")
        .annotate(mean=Avg("price_usd_per_mwh"))
        .values_list("interval_start", "mean")
    )
    served = []
    for start, hashprice, token_price in market:
        mean = mean_usd_per_mwh.get(start)
        if mean is None:  # no site has an energy price for this interval: skipped, never invented
            continue
        served.append(
            ServedPrice(
                interval_start=start,
                energy_price=usd_per_mwh_to_hackathon_energy_price(_decimal(mean)),
                hash_price=usd_per_ph_day_to_hackathon_hash_price(hashprice),
                token_price=usd_per_mtok_to_hackathon_token_price(token_price),
                source=SOURCE_CONVERTED,
            )
        )
        if len(served) == limit:
            break
    return served


def _decimal(value: Decimal | float) -> Decimal:
    """An average comes back as Decimal (PostgreSQL) or may be a float (SQLite); floats go through their repr."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))
