"""One row per site for the map and the sites table: load, PUE, price, temperature, money and contracts."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db.models import OuterRef, QuerySet, Subquery, Sum

from sites.choices import CoolingType, HardwareKind
from sites.models import Site
from sites.querysets import LatestEnergyPrice, LatestTemperature, PriceSource
from sites.simulation import hall_pue, pue

from ..models import Allocation, OptimizationRun
from .formatting import _f, _iso
from .reads import _placements_at, _static_rows

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class DashboardSite(LatestEnergyPrice, LatestTemperature, PriceSource):
    """What `_sites_queryset` annotates on each site: its latest price and temperature, its price's source, and
    the money of the newest applied run (None where that run allocated nothing there)."""

    run_revenue_usd_per_h: Decimal | None
    run_energy_cost_usd_per_h: Decimal | None


DEFAULT_TEMPERATURE_C = 20.0  # PUE of a site that never reported weather (flagged as such)
HARDWARE_ORDER = ("miner_air", "miner_hydro", "miner_immersion", "inference_gpu", "inference_asic")


def _site_temperature(site: WithAnnotations[Site, DashboardSite]) -> tuple[float, bool]:
    """(The latest temperature, degC, whether it was measured: DEFAULT_TEMPERATURE_C when none was)."""
    if site.latest_temperature_c is None:
        return DEFAULT_TEMPERATURE_C, False
    return float(site.latest_temperature_c), True


def _hardware_sort_key(code: str) -> tuple[int, str]:
    return (HARDWARE_ORDER.index(code) if code in HARDWARE_ORDER else len(HARDWARE_ORDER), code)


def _sites_queryset() -> QuerySet:
    """Sites by code with their latest price and temperature and, from the allocations of the newest applied run,
    their revenue and energy cost in USD/h (None where that run allocated nothing).

    No per-request input: compiled once (`_static`). The applied run is found in SQL with the same rule as
    `OptimizationRun.objects.applied()` newest first, evaluated once per query; each site's sums read at most one
    row per hardware model through the (run, site, hardware) unique index.
    """
    applied_run = OptimizationRun.objects.applied().order_by("-queued_at", "-id").values("id")[:1]
    of_site = (
        Allocation.objects.filter(run_id=Subquery(applied_run), site_id=OuterRef("pk")).order_by().values("site_id")
    )
    return (
        Site.objects.with_latest_energy_price()
        .with_latest_temperature()
        .with_price_source()
        .annotate(
            run_revenue_usd_per_h=Subquery(of_site.annotate(total=Sum("revenue_usd_per_h")).values("total")),
            run_energy_cost_usd_per_h=Subquery(of_site.annotate(total=Sum("energy_cost_usd_per_h")).values("total")),
        )
        .order_by("code")
    )


INVENTORY_COLUMNS = (
    "site_id",
    "units_running",
    "units_available",
    "units_installed",
    "hardware_model__code",
    "hardware_model__name",
    "hardware_model__kind",
    "hardware_model__power_kw_per_unit",
    "hardware_model__hashrate_th_per_s",
    "hardware_model__tokens_per_s",
    "hardware_model__cooling_type",
)


def _allocation_rows(
    site: WithAnnotations[Site, DashboardSite], inventories: list[tuple], temperature: float
) -> tuple[list[dict], tuple[float, float, float, float]]:
    """The site's machines, each at the PUE of the hall it runs in, and their totals: IT, facility, mining and
    inference kW."""
    allocation = []
    it_kw = facility_kw = mining_kw = inference_kw = 0.0
    for (
        _,
        units_running,
        units_available,
        units_installed,
        code,
        name,
        kind,
        power_kw_per_unit,
        _hashrate,
        _tokens,
        cooling,
    ) in sorted(inventories, key=lambda row: _hardware_sort_key(row[4])):
        running_kw = float(units_running * power_kw_per_unit)  # SiteInventory.running_power_kw
        machine_pue = float(hall_pue(site.cooling_type, cooling, kind, temperature))
        it_kw += running_kw
        facility_kw += running_kw * machine_pue
        if kind == HardwareKind.MINER:
            mining_kw += running_kw
        else:
            inference_kw += running_kw
        allocation.append(
            {
                "hardware": code,
                "name": name,
                "kind": kind,
                "units_running": units_running,
                "units_available": units_available,
                "units_installed": units_installed,
                "it_kw": round(running_kw, 3),
                "pue": round(machine_pue, 3),
                "facility_kw": round(running_kw * machine_pue, 3),
            }
        )
    return allocation, (it_kw, facility_kw, mining_kw, inference_kw)


def _site_row(
    site: WithAnnotations[Site, DashboardSite], inventories: list[tuple], placements: list[dict], now: datetime
) -> dict:
    """The site's row; its facility kW is each machine's running kW at the PUE of the hall it runs in
    (`sites.simulation.hall_pue`, the engine's halls), at the latest temperature like the site's own `pue`."""
    temperature, measured = _site_temperature(site)
    site_pue = float(pue(site.cooling_type, temperature))
    allocation, (it_kw, facility_kw, mining_kw, inference_kw) = _allocation_rows(site, inventories, temperature)
    capacity_kw = float(site.power_capacity_kw)
    local = now.astimezone(ZoneInfo(site.time_zone))
    offset = local.strftime("%z")
    income, cost = site.run_revenue_usd_per_h, site.run_energy_cost_usd_per_h
    revenue, energy_cost = (float(income), float(cost)) if income is not None and cost is not None else (None, None)
    return {
        "id": site.pk,
        "code": site.code,
        "name": site.name,
        "country": site.country,
        "latitude": float(site.latitude),
        "longitude": float(site.longitude),
        "time_zone": site.time_zone,
        "local_time": local.strftime("%H:%M"),
        "utc_offset": offset[:3] + ":" + offset[3:],
        "status": site.status,
        "status_label": site.get_status_display(),
        "cooling_type": site.cooling_type,
        "cooling_label": CoolingType(site.cooling_type).label,
        "market_region": site.market_region,
        "renewable_share_pct": round(float(site.renewable_share) * 100, 1),
        "energy_cost_multiplier": _f(site.energy_cost_multiplier, 3),
        "capacity_kw": round(capacity_kw, 3),
        "it_kw": round(it_kw, 3),
        "facility_kw": round(facility_kw, 3),
        "mining_kw": round(mining_kw, 3),
        "inference_kw": round(inference_kw, 3),
        "utilization_pct": round(facility_kw / capacity_kw * 100, 1) if capacity_kw else None,
        "inference_share_pct": round(inference_kw / it_kw * 100, 1) if it_kw else None,
        "pue": round(site_pue, 3),
        "temperature_c": _f(site.latest_temperature_c, 1),
        "temperature_measured": measured,
        "temperature_at": _iso(site.latest_temperature_at),
        "energy_price_usd_per_mwh": _f(site.latest_price_usd_per_mwh),
        "energy_price_at": _iso(site.latest_price_at),
        "price_source": site.price_source,
        "revenue_usd_per_h": _f(revenue),
        "energy_cost_usd_per_h": _f(energy_cost),
        "profit_usd_per_h": _f(revenue - energy_cost) if revenue is not None and energy_cost is not None else None,
        "allocation": allocation,
        "contracts": placements,
        "committed_kw": round(sum(p["capacity_kw"] for p in placements), 3),
    }


def _current_placements(now: datetime) -> dict[int, list[dict]]:
    """Committed placements holding kW now, per site id."""
    by_site: dict[int, list[dict]] = defaultdict(list)
    rows = _static_rows("placements-at", _placements_at, now=now)
    for site_id, contract_id, tier, customer, capacity_kw, ends_at in rows:
        by_site[site_id].append(
            {
                "contract": contract_id,
                "tier": tier,
                "customer": customer,
                "capacity_kw": round(float(capacity_kw), 3),
                "ends_at": _iso(ends_at),
            }
        )
    return by_site


def _hardware_row(code, name, kind, power_kw_per_unit, hashrate_th_per_s, tokens_per_s, cooling_type) -> dict:
    return {
        "code": code,
        "name": name,
        "kind": kind,
        "cooling_type": cooling_type,
        "power_kw_per_unit": _f(power_kw_per_unit, 3),
        "hashrate_th_per_s": _f(hashrate_th_per_s, 3),
        "tokens_per_s": _f(tokens_per_s, 2),
    }
