"""The operations dashboard's read model: every number the page shows, from one bounded set of queries.

`build_dashboard(now=...)` returns a JSON-ready dict (floats rounded for display, times in ISO 8601 UTC). It writes
nothing. Query cost is fixed, whatever the history stored (14 queries, each bounded by an index and a window):

 1. sites with their latest energy price and temperature (two correlated subqueries per site);
 2. inventories with their hardware model;
 3. the newest market price;
 4. the newest run (any status, for the reasoning panel);
 5. the newest applied run (skipped when it is the newest run), and 6. its allocations (USD/h per site);
 7. succeeded runs of the last RUN_HISTORY_HOURS (revenue and profit chart);
 8. energy prices of the last PRICE_HISTORY_HOURS for every site, every 15 minutes (price chart);
 9. hourly temperatures of the last PRICE_HISTORY_HOURS (PUE against temperature chart);
10. tiers; 11. current placements with their contract, tier and customer (committed kW per site and tier);
12. delivered / committed kW-minutes per tier over UPTIME_WINDOW_DAYS (cached for a minute);
13. the latest contracts and 14. customers (the SLA panel).

Units: power in kW or MW as named; money in USD per hour; temperatures in °C; PUE dimensionless (facility / IT).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import FloatField, Func
from django.db.models.functions import Cast

from sites.choices import CoolingType, HardwareKind, SiteStatus
from sites.models import EnergyPrice, MarketPrice, Site, SiteInventory, WeatherReading
from sites.simulation import pue
from sla.models import Contract, Customer, Placement, Tier

from .choices import RunStatus
from .models import Allocation, OptimizationRun

RUN_HISTORY_HOURS = 48
RUN_HISTORY_LIMIT = 600  # a run every 5 minutes for 48 h is 576
PRICE_HISTORY_HOURS = 24
UPTIME_WINDOW_DAYS = 30
UPTIME_CACHE_SECONDS = 60
PRICE_CHART_STEP_MINUTES = 15  # the price chart samples every third 5-minute interval (96 points a day)
LATEST_CONTRACTS = 10
CUSTOMER_CHOICES_LIMIT = 500
DEFAULT_TEMPERATURE_C = 20.0  # PUE of a site that never reported weather (flagged as such)
PUE_CURVE_TEMPERATURES_C = tuple(range(-10, 42, 2))
HARDWARE_ORDER = ("miner_air", "miner_hydro", "miner_immersion", "inference_gpu", "inference_asic")


class EpochSeconds(Func):
    """Seconds since 1970 of a timestamp column, as a float.

    For charts that read thousands of timestamps: a float is parsed in C, while each datetime goes through
    Django's timezone-aware loader in Python (about 10 µs a value).
    """

    output_field = FloatField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores UTC text; julianday() counts days from 4714 BC, 2440587.5 of them before 1970.
        return self.as_sql(compiler, connection, template="(julianday(%(expressions)s) - 2440587.5) * 86400.0", **extra)


def _f(value, places: int = 2) -> float | None:
    """A Decimal/float as a rounded float for the page, None kept."""
    if value is None:
        return None
    return round(float(value), places)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass(frozen=True)
class Freshness:
    """Whether the data the page shows is recent enough to act on (the optimizer's own threshold)."""

    state: str  # "online" | "stale" | "empty"
    label: str
    detail: str
    data_age_minutes: float | None


def assess_freshness(*, sites: list[Site], market: MarketPrice | None, now: datetime) -> Freshness:
    """Online when sites exist and every available site's price and the market price are fresh (pure)."""
    max_age = settings.ENERGYARB["MAX_DATA_AGE_MINUTES"]
    if not sites:
        return Freshness("empty", "Not initialized", "No sites yet: press Initialize.", None)
    moments = [site.latest_price_at for site in sites if site.is_available]
    moments.append(market.interval_start if market else None)
    if any(moment is None for moment in moments):
        return Freshness("stale", "Stale data", "No prices stored yet: refreshing takes a few minutes.", None)
    age = max((now - moment).total_seconds() / 60 for moment in moments)
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


def _site_pue(site: Site) -> tuple[float, bool]:
    """(PUE at the latest temperature, whether that temperature was measured)."""
    if site.latest_temperature_c is None:
        return float(pue(site.cooling_type, DEFAULT_TEMPERATURE_C)), False
    return float(pue(site.cooling_type, float(site.latest_temperature_c))), True


def _hardware_sort_key(code: str) -> tuple[int, str]:
    return (HARDWARE_ORDER.index(code) if code in HARDWARE_ORDER else len(HARDWARE_ORDER), code)


def fleet_state(*, now: datetime, latest_run: OptimizationRun | None = None) -> dict:
    """Sites, fleet metrics, tiers and market now (queries 1-6 and 10-12 of the module docstring).

    Shared by the dashboard and the original product's endpoints so both show the same numbers.
    """
    sites = list(Site.objects.with_latest_energy_price().with_latest_temperature().order_by("code"))
    inventories = list(SiteInventory.objects.select_related("hardware_model").order_by("site_id", "hardware_model_id"))
    market = MarketPrice.objects.filter(interval_start__lte=now).order_by("-interval_start").first()
    if latest_run is not None and latest_run.status == RunStatus.SUCCEEDED and latest_run.is_applied:
        applied_run = latest_run  # the usual case: the newest run is the one in force (saves a query)
    else:
        applied_run = OptimizationRun.objects.applied().order_by("-queued_at", "-id").first()
    allocations = (
        Allocation.objects.filter(run=applied_run).values_list("site_id", "revenue_usd_per_h", "energy_cost_usd_per_h")
        if applied_run
        else []
    )
    freshness = assess_freshness(sites=sites, market=market, now=now)

    by_site_inventory: dict[int, list[SiteInventory]] = defaultdict(list)
    hardware = {}
    for inventory in inventories:
        by_site_inventory[inventory.site_id].append(inventory)
        hardware[inventory.hardware_model.code] = inventory.hardware_model
    hardware_codes = sorted(hardware, key=_hardware_sort_key)

    money: dict[int, list[Decimal]] = {}
    for site_id, revenue, energy_cost in allocations:
        totals_of_site = money.setdefault(site_id, [Decimal(0), Decimal(0)])
        totals_of_site[0] += revenue
        totals_of_site[1] += energy_cost

    placements = _current_placements(now)
    site_rows = []
    totals: dict[str, float] = defaultdict(float)
    for site in sites:
        row = _site_row(site, by_site_inventory[site.pk], money.get(site.pk), placements.get(site.pk, []), now)
        site_rows.append(row)
        totals["capacity_kw"] += row["capacity_kw"]
        totals["it_kw"] += row["it_kw"]
        totals["facility_kw"] += row["facility_kw"]
        totals["renewable_kw"] += row["facility_kw"] * row["renewable_share_pct"] / 100
        totals["pue_sum"] += row["pue"]
        totals["renewable_capacity_kw"] += row["capacity_kw"] * row["renewable_share_pct"] / 100

    committed_by_tier: dict[str, float] = defaultdict(float)
    for site_placements in placements.values():
        for placement in site_placements:
            committed_by_tier[placement["tier"]] += placement["capacity_kw"]
    uptime = uptime_by_tier(now=now)
    tier_rows = [
        {
            "code": tier.code,
            "name": tier.name,
            "uptime_target_pct": _f(tier.uptime_target_pct, 3),
            "price_multiplier": _f(tier.price_multiplier),
            "committed_kw": round(committed_by_tier.get(tier.code, 0.0), 3),
            "uptime_pct": _f(uptime.get(tier.code), 3),
        }
        for tier in Tier.objects.order_by("priority", "code")
    ]

    n_sites = len(site_rows)
    # Fleet PUE is facility / IT power (load-weighted); with nothing running, the plain mean of the sites.
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
    metrics = {
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
    return {
        "generated_at": _iso(now),
        "status": {
            "state": freshness.state,
            "label": freshness.label,
            "detail": freshness.detail,
            "data_age_minutes": freshness.data_age_minutes,
            "max_data_age_minutes": settings.ENERGYARB["MAX_DATA_AGE_MINUTES"],
        },
        "metrics": metrics,
        "market": _market_row(market),
        "sites": site_rows,
        "hardware": [
            {
                "code": code,
                "name": hardware[code].name,
                "kind": hardware[code].kind,
                "power_kw_per_unit": _f(hardware[code].power_kw_per_unit, 3),
                "hashrate_th_per_s": _f(hardware[code].hashrate_th_per_s, 3),
                "tokens_per_s": _f(hardware[code].tokens_per_s, 2),
            }
            for code in hardware_codes
        ],
        "tiers": tier_rows,
        "applied_run": applied_run,  # the model instance, for callers; build_dashboard drops it
    }


def uptime_by_tier(*, now: datetime) -> dict[str, float | None]:
    """Delivered / committed kW-minutes per tier over the last UPTIME_WINDOW_DAYS, in percent.

    The one read whose cost grows with the fleet's activity (it sums every delivery record of the window, ~10 ms
    per 30,000 records), for a figure a minute cannot move: cached for UPTIME_CACHE_SECONDS per time bucket.
    """
    bucket = int(now.timestamp() // UPTIME_CACHE_SECONDS)

    def compute() -> dict[str, float | None]:
        since = now - timedelta(days=UPTIME_WINDOW_DAYS)
        return {
            code: (float(delivered) / float(committed) * 100 if committed else None)
            for code, delivered, committed in Contract.objects.uptime_by_tier(since=since)
        }

    # The database name keeps apart databases that share one cache (test workers, staging next to production).
    key = f"dashboard:uptime-by-tier:{connection.settings_dict['NAME']}:{UPTIME_WINDOW_DAYS}:{bucket}"
    return cache.get_or_set(key, compute, UPTIME_CACHE_SECONDS)


def build_dashboard(*, now: datetime) -> dict:
    """Everything the dashboard shows, as one JSON-ready dict (see the module docstring for its queries)."""
    latest_run = OptimizationRun.objects.order_by("-queued_at", "-id").first()
    state = fleet_state(now=now, latest_run=latest_run)
    state.pop("applied_run")
    site_rows = state["sites"]
    hardware = state["hardware"]
    return {
        **state,
        "latest_run": run_summary(latest_run),
        "charts": {
            "runs": run_history(now=now),
            "energy_prices": _price_history(site_rows, now),
            "pue_temperature": _pue_temperature(site_rows, now),
            "allocation": {
                "sites": [row["name"] for row in site_rows],
                "series": [
                    {
                        "hardware": model["code"],
                        "label": model["name"],
                        "kind": model["kind"],
                        "it_kw": [
                            next((a["it_kw"] for a in row["allocation"] if a["hardware"] == model["code"]), 0.0)
                            for row in site_rows
                        ],
                    }
                    for model in hardware
                ],
            },
        },
        "contracts": _latest_contracts(),
        "customers": list(Customer.objects.order_by("name", "id").values("id", "name")[:CUSTOMER_CHOICES_LIMIT]),
    }


def _site_row(site: Site, inventories: list[SiteInventory], money, placements: list[dict], now: datetime) -> dict:
    site_pue, measured = _site_pue(site)
    allocation = []
    it_kw = mining_kw = inference_kw = 0.0
    for inventory in sorted(inventories, key=lambda inv: _hardware_sort_key(inv.hardware_model.code)):
        model = inventory.hardware_model
        running_kw = float(inventory.running_power_kw)
        it_kw += running_kw
        if model.kind == HardwareKind.MINER:
            mining_kw += running_kw
        else:
            inference_kw += running_kw
        allocation.append(
            {
                "hardware": model.code,
                "name": model.name,
                "kind": model.kind,
                "units_running": inventory.units_running,
                "units_available": inventory.units_available,
                "units_installed": inventory.units_installed,
                "it_kw": round(running_kw, 3),
            }
        )
    facility_kw = it_kw * site_pue
    capacity_kw = float(site.power_capacity_kw)
    local = now.astimezone(ZoneInfo(site.time_zone))
    revenue, energy_cost = (float(money[0]), float(money[1])) if money else (None, None)
    return {
        "id": site.pk,
        "code": site.code,
        "name": site.name,
        "country": site.country,
        "latitude": float(site.latitude),
        "longitude": float(site.longitude),
        "time_zone": site.time_zone,
        "local_time": local.strftime("%H:%M"),
        "utc_offset": local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:],
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
        "revenue_usd_per_h": _f(revenue),
        "energy_cost_usd_per_h": _f(energy_cost),
        "profit_usd_per_h": _f(revenue - energy_cost) if money else None,
        "allocation": allocation,
        "contracts": placements,
        "committed_kw": round(sum(p["capacity_kw"] for p in placements), 3),
    }


def _current_placements(now: datetime) -> dict[int, list[dict]]:
    """Committed placements holding kW now, per site id."""
    rows = (
        Placement.objects.current(now)
        .committed()
        .order_by("site_id", "contract__tier__priority", "contract_id", "id")
        .values_list("site_id", "contract_id", "contract__tier__code", "contract__customer__name", "capacity_kw",
                     "contract__ends_at")
    )  # fmt: skip
    by_site: dict[int, list[dict]] = defaultdict(list)
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


def _market_row(market: MarketPrice | None) -> dict | None:
    if market is None:
        return None
    return {
        "interval_start": _iso(market.interval_start),
        "hashprice_usd_per_ph_day": _f(market.hashprice_usd_per_ph_day, 4),
        "inference_price_usd_per_mtok": _f(market.inference_price_usd_per_mtok, 4),
        "source": market.source,
    }


RUN_FIELDS = (
    "id",
    "trigger",
    "strategy",
    "status",
    "queued_at",
    "started_at",
    "finished_at",
    "revenue_usd_per_h",
    "energy_cost_usd_per_h",
    "carbon_cost_usd_per_h",
    "penalty_usd_per_h",
    "is_applied",
    "explanation",
    "error",
    "details",
    "advisor_status",
    "advisor_model",
    "advisor_narrative",
    "advisor_verdict",
)
MAX_BINDING_LINES = 6


def run_summary(run: OptimizationRun | None) -> dict | None:
    """A run's status, economics and reasoning for the dashboard (the AI Optimize panel polls this)."""
    if run is None:
        return None
    binding = (run.details or {}).get("binding") or []
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "is_finished": run.status not in (RunStatus.QUEUED, RunStatus.RUNNING),
        "trigger": run.trigger,
        "strategy": run.strategy,
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "revenue_usd_per_h": _f(run.revenue_usd_per_h),
        "energy_cost_usd_per_h": _f(run.energy_cost_usd_per_h),
        "profit_usd_per_h": _f(run.profit_usd_per_h),
        "is_applied": run.is_applied,
        "explanation": run.explanation,
        "binding": [line.get("text", "") for line in binding[:MAX_BINDING_LINES] if isinstance(line, dict)],
        "error": run.error,
        "advisor_status": run.advisor_status,
        "advisor_status_label": run.get_advisor_status_display(),
        "advisor_model": run.advisor_model,
        "advisor_narrative": run.advisor_narrative,
        "advisor_verdict": run.advisor_verdict,
    }


def run_history(*, now: datetime, hours: int = RUN_HISTORY_HOURS, limit: int = RUN_HISTORY_LIMIT) -> dict:
    """Revenue and profit (USD/h) of the succeeded runs queued in the last `hours`, oldest first."""
    money_fields = [name for name in RUN_FIELDS if name.endswith("_usd_per_h")]
    runs = list(
        OptimizationRun.objects.succeeded()
        .filter(queued_at__gte=now - timedelta(hours=hours))
        .order_by("-queued_at", "-id")
        .only("id", "queued_at", "finished_at", *money_fields)[:limit]
    )
    runs.reverse()
    return {
        "id": [run.pk for run in runs],
        "t": [_iso(run.finished_at or run.queued_at) for run in runs],
        "revenue_usd_per_h": [_f(run.revenue_usd_per_h) for run in runs],
        "profit_usd_per_h": [_f(run.profit_usd_per_h) for run in runs],
    }


def _price_history(site_rows: list[dict], now: datetime) -> dict:
    """Energy price per site (USD/MWh) every PRICE_CHART_STEP_MINUTES on a shared time axis; gaps are null."""
    start = now - timedelta(hours=PRICE_HISTORY_HOURS)
    minutes = list(range(0, 60, PRICE_CHART_STEP_MINUTES))
    rows = (
        EnergyPrice.objects.for_window(start, now + timedelta(seconds=1))
        .filter(site_id__in=[row["id"] for row in site_rows], interval_start__minute__in=minutes)
        .order_by()
        .values_list("site_id", EpochSeconds("interval_start"), Cast("price_usd_per_mwh", FloatField()))
    )
    times: set[int] = set()
    per_site: dict[int, dict[int, float]] = defaultdict(dict)
    for site_id, epoch, price in rows:
        moment = round(epoch)
        times.add(moment)
        per_site[site_id][moment] = round(price, 2)
    axis = sorted(times)
    return {
        "t": [_iso(datetime.fromtimestamp(moment, UTC)) for moment in axis],
        "series": [
            {"site": row["code"], "name": row["name"], "values": [per_site[row["id"]].get(moment) for moment in axis]}
            for row in site_rows
        ],
    }


def _pue_temperature(site_rows: list[dict], now: datetime) -> dict:
    """PUE curves of the fleet's cooling types, every site's hourly readings of the last day, and each site now."""
    start = now - timedelta(hours=PRICE_HISTORY_HOURS)
    readings: dict[int, list[float]] = defaultdict(list)
    for site_id, temperature in (
        WeatherReading.objects.for_window(start, now + timedelta(seconds=1))
        .filter(site_id__in=[row["id"] for row in site_rows], observed_at__minute=0)
        .order_by()
        .values_list("site_id", "temperature_c")
    ):
        readings[site_id].append(float(temperature))
    history = []
    for row in site_rows:
        temperatures = np.array(readings.get(row["id"], []), dtype=float)
        if temperatures.size:
            values = np.atleast_1d(pue(row["cooling_type"], temperatures))
            history.extend(
                [round(t, 1), round(p, 3)] for t, p in zip(temperatures.tolist(), values.tolist(), strict=True)
            )
    grid = np.array(PUE_CURVE_TEMPERATURES_C, dtype=float)
    return {
        "curves": [
            {
                "cooling_type": code,
                "label": CoolingType(code).label,
                "points": [
                    [t, round(p, 3)] for t, p in zip(PUE_CURVE_TEMPERATURES_C, pue(code, grid).tolist(), strict=True)
                ],
            }
            for code in sorted({row["cooling_type"] for row in site_rows})
        ],
        "history": history,
        "sites": [
            {"site": row["code"], "name": row["name"], "temperature_c": row["temperature_c"], "pue": row["pue"]}
            for row in site_rows
            if row["temperature_c"] is not None
        ],
    }


def _latest_contracts() -> list[dict]:
    contracts = Contract.objects.select_related("tier", "customer").order_by("-created_at", "-id")[:LATEST_CONTRACTS]
    return [
        {
            "id": contract.pk,
            "customer": contract.customer.name,
            "tier": contract.tier.code,
            "tier_name": contract.tier.name,
            "capacity_kw": _f(contract.capacity_kw, 3),
            "starts_at": _iso(contract.starts_at),
            "ends_at": _iso(contract.ends_at),
            "status": contract.status,
            "status_label": contract.get_status_display(),
            "quoted_total_usd": _f(contract.quoted_total_usd),
            "created_at": _iso(contract.created_at),
        }
        for contract in contracts
    ]
