"""The fleet now: sites, fleet metrics, hardware, tiers, market and data freshness (shared with the original API)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings

from sites.choices import SiteStatus
from sites.models import MarketPrice, Site, SiteInventory
from sites.querysets import LatestEnergyPrice
from sla.models import Tier

from ..choices import RunStatus
from ..models import OptimizationRun
from .contracts import uptime_by_tier
from .formatting import _f, _iso
from .reads import _static_models, _static_rows
from .site_rows import (
    INVENTORY_COLUMNS,
    DashboardSite,
    _current_placements,
    _hardware_row,
    _hardware_sort_key,
    _site_row,
    _sites_queryset,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


@dataclass(frozen=True)
class Freshness:
    """Whether the data the page shows is recent enough to act on (the optimizer's own threshold)."""

    state: str  # "online" | "stale" | "empty"
    label: str
    detail: str
    data_age_minutes: float | None


def assess_freshness(
    *, sites: list[WithAnnotations[Site, LatestEnergyPrice]], market: MarketPrice | None, now: datetime
) -> Freshness:
    """Online when sites exist and every available site's price and the market price are fresh (pure)."""
    max_age = settings.ENERGYARB["MAX_DATA_AGE_MINUTES"]
    if not sites:
        return Freshness("empty", "Not initialized", "No sites yet: press Initialize.", None)
    moments = [site.latest_price_at for site in sites if site.is_available]
    moments.append(market.interval_start if market else None)
    known = [moment for moment in moments if moment is not None]
    if len(known) < len(moments):
        return Freshness("stale", "Stale data", "No prices stored yet: refreshing takes a few minutes.", None)
    age = max((now - moment).total_seconds() / 60 for moment in known)
    if age > max_age:
        return Freshness(
            "stale", "Stale data", f"Newest prices are {_age_text(age)} old (limit {max_age} min).", round(age, 1)
        )
    return Freshness("online", "Online", f"Prices {_age_text(age)} old.", round(max(age, 0.0), 1))


def _age_text(minutes: float) -> str:
    if minutes < 90:
        return f"{max(minutes, 0):.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def fleet_state(*, now: datetime, latest_run: OptimizationRun | None = None) -> dict:
    """Sites, fleet metrics, tiers and market now (queries 1-6 of the module docstring; 1 only as a fallback).

    Shared by the dashboard and the original product's endpoints so both show the same numbers.
    """
    applied_run = _applied_run(latest_run)
    sites = _static_models("sites", _sites_queryset)
    inventories = _static_rows(
        "inventories",
        lambda: SiteInventory.objects.order_by("site_id", "hardware_model_id").values_list(*INVENTORY_COLUMNS),
    )
    market = MarketPrice.objects.filter(interval_start__lte=now).order_by("-interval_start").first()
    freshness = assess_freshness(sites=sites, market=market, now=now)
    by_site_inventory, hardware = _inventory_by_site(inventories)
    placements = _current_placements(now)
    site_rows, totals = _site_rows_and_totals(sites, by_site_inventory, placements, now)
    tier_rows = _tier_rows(placements, now)
    return {
        "generated_at": _iso(now),
        "status": {
            "state": freshness.state,
            "label": freshness.label,
            "detail": freshness.detail,
            "data_age_minutes": freshness.data_age_minutes,
            "max_data_age_minutes": settings.ENERGYARB["MAX_DATA_AGE_MINUTES"],
        },
        "metrics": _fleet_metrics(applied_run, sites, totals, tier_rows),
        "market": _market_row(market),
        "sites": site_rows,
        "hardware": [_hardware_row(*hardware[code]) for code in sorted(hardware, key=_hardware_sort_key)],
        "tiers": tier_rows,
        "applied_run": applied_run,  # the model instance, for callers; build_dashboard drops it
    }


def _applied_run(latest_run: OptimizationRun | None) -> OptimizationRun | None:
    """The run in force: the newest run when it is the applied one (the usual case, no query), else a query."""
    if latest_run is not None and latest_run.status == RunStatus.SUCCEEDED and latest_run.is_applied:
        return latest_run
    return OptimizationRun.objects.applied().order_by("-queued_at", "-id").first()


def _inventory_by_site(inventories) -> tuple[dict[int, list[tuple]], dict[str, tuple]]:
    """The inventory rows of each site, and each hardware model's columns by its code."""
    by_site_inventory: dict[int, list[tuple]] = defaultdict(list)
    hardware: dict[str, tuple] = {}
    for row in inventories:
        by_site_inventory[row[0]].append(row)
        hardware[row[4]] = row[4:]
    return by_site_inventory, hardware


def _site_rows_and_totals(
    sites: list[WithAnnotations[Site, DashboardSite]],
    by_site_inventory: dict[int, list[tuple]],
    placements: dict,
    now: datetime,
) -> tuple[list[dict], dict[str, float]]:
    """One row per site, and the fleet's sums over them (kW, PUE, renewable kW) for the metrics."""
    site_rows = []
    totals: dict[str, float] = defaultdict(float)
    for site in sites:
        row = _site_row(site, by_site_inventory[site.pk], placements.get(site.pk, []), now)
        site_rows.append(row)
        totals["capacity_kw"] += row["capacity_kw"]
        totals["it_kw"] += row["it_kw"]
        totals["facility_kw"] += row["facility_kw"]
        totals["renewable_kw"] += row["facility_kw"] * row["renewable_share_pct"] / 100
        totals["pue_sum"] += row["pue"]
        totals["renewable_capacity_kw"] += row["capacity_kw"] * row["renewable_share_pct"] / 100
    return site_rows, totals


def _tier_rows(placements: dict, now: datetime) -> list[dict]:
    """Each tier with the kW committed on it now and its uptime this month."""
    committed_by_tier: dict[str, float] = defaultdict(float)
    for site_placements in placements.values():
        for placement in site_placements:
            committed_by_tier[placement["tier"]] += placement["capacity_kw"]
    uptime = uptime_by_tier(now=now)
    return [
        {
            "code": code,
            "name": name,
            "uptime_target_pct": _f(uptime_target_pct, 3),
            "price_multiplier": _f(price_multiplier),
            "committed_kw": round(committed_by_tier.get(code, 0.0), 3),
            "uptime_pct": _f(uptime.get(code), 3),
        }
        for code, name, uptime_target_pct, price_multiplier in _static_rows(
            "tiers",
            lambda: Tier.objects.order_by("priority", "code").values_list(
                "code", "name", "uptime_target_pct", "price_multiplier"
            ),
        )
    ]


def _fleet_metrics(
    applied_run: OptimizationRun | None, sites: list[Site], totals: dict[str, float], tier_rows: list[dict]
) -> dict:
    """The fleet's headline figures: the applied run's money, power, PUE, renewable share, SLA kW, sites."""
    n_sites = len(sites)
    # Fleet PUE is facility / IT power (load-weighted); with nothing running, the plain mean of the sites.
    fleet_pue: float | None
    if totals["it_kw"]:
        fleet_pue = totals["facility_kw"] / totals["it_kw"]
    else:
        fleet_pue = totals["pue_sum"] / n_sites if n_sites else None
    # Renewable share of the energy drawn now (load-weighted); with no load, of the facility capacity.
    if totals["facility_kw"]:
        renewable_pct = totals["renewable_kw"] / totals["facility_kw"] * 100
    elif totals["capacity_kw"]:
        renewable_pct = totals["renewable_capacity_kw"] / totals["capacity_kw"] * 100
    else:
        renewable_pct = None
    capacity_kw = totals["capacity_kw"]
    return {
        "revenue_usd_per_h": _f(applied_run.revenue_usd_per_h) if applied_run else None,
        "energy_cost_usd_per_h": _f(applied_run.energy_cost_usd_per_h) if applied_run else None,
        "profit_usd_per_h": _f(applied_run.profit_usd_per_h) if applied_run else None,
        "run_id": applied_run.pk if applied_run else None,
        "run_finished_at": _iso(applied_run.finished_at) if applied_run else None,
        "it_power_mw": round(totals["it_kw"] / 1000, 3),
        "facility_power_mw": round(totals["facility_kw"] / 1000, 3),
        "capacity_mw": round(capacity_kw / 1000, 3),
        "utilization_pct": round(totals["facility_kw"] / capacity_kw * 100, 1) if capacity_kw else None,
        "pue_average": _f(fleet_pue, 3),
        "renewable_share_pct": _f(renewable_pct, 1),
        "sla_committed_kw": {row["code"]: row["committed_kw"] for row in tier_rows},
        "sla_committed_kw_total": round(sum(row["committed_kw"] for row in tier_rows), 3),
        "sites_total": n_sites,
        "sites_online": sum(1 for site in sites if site.status == SiteStatus.ONLINE),
    }


def _market_row(market: MarketPrice | None) -> dict | None:
    if market is None:
        return None
    return {
        "interval_start": _iso(market.interval_start),
        "hashprice_usd_per_ph_day": _f(market.hashprice_usd_per_ph_day, 4),
        "inference_price_usd_per_mtok": _f(market.inference_price_usd_per_mtok, 4),
        "source": market.source,
    }
