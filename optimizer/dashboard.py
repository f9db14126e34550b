"""The operations dashboard's read model: every number the page shows, from one bounded set of queries.

`build_dashboard(now=...)` returns a JSON-ready dict (floats rounded for display, times in ISO 8601 UTC). It writes
nothing. Query cost is fixed, whatever the history stored: 12 queries, each bounded by an index and a window
(tests/optimizer/test_dashboard.py counts them):

 1. the newest run (any status, for the reasoning panel; its input snapshot and Claude's proposal are not loaded),
    and only when that run is not the one in force, the newest applied run (one more query);
 2. sites with their latest energy price and temperature and, from the newest applied run's allocations, their
    revenue and energy cost (correlated subqueries, one index probe each per site);
 3. inventories with their hardware model;
 4. the newest market price;
 5. tiers; 6. current placements with their contract, tier and customer (committed kW per site and tier);
    delivered / committed kW-minutes per tier over UPTIME_WINDOW_DAYS (cached for a minute, one query a minute);
 7. succeeded runs of the last RUN_HISTORY_HOURS (revenue and profit chart, profit computed in SQL);
 8. energy prices of the last PRICE_HISTORY_HOURS for every site, every 15 minutes (price chart), and
 9. hourly temperatures of the last PRICE_HISTORY_HOURS (PUE against temperature chart);
10. the latest contracts and 11. customers (the SLA panel);
12. the latest run of each scenario (headline figures and chart series, not its table).

Cost is mostly Python, not PostgreSQL (~3 ms of the ~12 ms): the reads without a per-request input (1, 2, 3, 5, 10,
11, 12) are compiled to SQL once per process (`_static`), rows come as the driver's tuples where the driver
already returns what the ORM would (`_rows`), and no model instance is built except the ten sites, the newest run
and the market price. Nothing is cached across requests except the uptime figure: every other number is read anew.

Units: power in kW or MW as named; money in USD per hour; temperatures in °C; PUE dimensionless (facility / IT).
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import F, FloatField, Func, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from energyarb.db import PreparedRead
from sites.choices import CoolingType, HardwareKind, SiteStatus
from sites.models import EnergyPrice, MarketPrice, Site, SiteInventory, WeatherReading
from sites.simulation import pue
from sla.choices import ContractStatus
from sla.models import Contract, Customer, Placement, Tier

from .choices import RunStatus
from .models import SCENARIO_CHOICES, Allocation, OptimizationRun, ScenarioRun

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
# Run fields the dashboard never reads: the input snapshot (tens of kB on a real fleet) and Claude's proposal.
UNREAD_RUN_FIELDS = ("inputs", "advisor_proposal")
ZERO = Decimal(0)
FLOAT = FloatField()
USD_FIELD = OptimizationRun._meta.get_field("revenue_usd_per_h")


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


def _rows(queryset) -> list[tuple]:
    """The rows of a `values_list()` QuerySet, as tuples.

    On PostgreSQL straight from the driver: for integers, text, booleans, timestamptz, numeric and float8 psycopg
    already returns what Django would (JSON comes as text: see `_json`), and skipping Django's per-row converters
    saves about 2 µs a row on the charts' ~1,300 rows. Other databases go through the ORM's own iterator.
    """
    db = connections[queryset.db]
    if db.vendor != "postgresql":
        return list(queryset)
    try:
        sql, params = queryset.query.get_compiler(queryset.db).as_sql()
    except EmptyResultSet:  # e.g. `site_id__in=[]`: the ORM answers without asking the database
        return []
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_STATIC: dict[str, PreparedRead] = {}


def _static(name: str, build: Callable[[], QuerySet]) -> PreparedRead:
    """The read `build()` with no per-request input, compiled once per process and database (energyarb.db).

    Django builds and compiles a QuerySet anew on every evaluation: for the sites query with its correlated
    subqueries that is ~2.5 ms of Python, against ~0.4 ms for PostgreSQL to run it.
    """
    if name not in _STATIC:
        _STATIC[name] = PreparedRead(build)
    return _STATIC[name]


def _static_rows(name: str, build: Callable[[], QuerySet]) -> list[tuple]:
    """The rows of a parameterless `values_list()` QuerySet (`_static`), as `_rows` returns them."""
    if connection.vendor != "postgresql":
        return list(build())
    return _static(name, build).rows()


def _static_models(name: str, build: Callable[[], QuerySet]) -> list:
    """The model instances of a parameterless QuerySet (`_static`), annotations included.

    `Manager.raw()` runs the stored SQL and applies each model field's converters (JSON, ...); annotations come as
    the driver returns them, which on PostgreSQL is what the ORM returns too. Other databases use the ORM.
    """
    if connection.vendor != "postgresql":
        return list(build())
    read = _static(name, build)
    sql, params = read.sql()
    return list(read.model._default_manager.raw(sql, params))


# The shapes of the reads that take a time window: built once (ordering, columns, joins, fixed filters resolved),
# each request adds its own window to a copy (QuerySet.filter clones; these are never evaluated themselves).
# Saves ~0.3 ms of Python per query; the SQL sent is the same query.


@functools.cache
def _placements_shape() -> QuerySet:
    return (
        Placement.objects.committed()
        .order_by("site_id", "contract__tier__priority", "contract_id", "id")
        .values_list("site_id", "contract_id", "contract__tier__code", "contract__customer__name", "capacity_kw",
                     "contract__ends_at")
    )  # fmt: skip


@functools.cache
def _run_history_shape() -> QuerySet:
    # OptimizationRun.profit_usd_per_h in SQL: exact numeric arithmetic, then one float per value.
    profit = F("revenue_usd_per_h") - (
        F("energy_cost_usd_per_h")
        + Coalesce("carbon_cost_usd_per_h", Value(ZERO, output_field=USD_FIELD))
        + Coalesce("penalty_usd_per_h", Value(ZERO, output_field=USD_FIELD))
    )
    return (
        OptimizationRun.objects.succeeded()
        .order_by("-queued_at", "-id")
        .values_list("id", Coalesce("finished_at", "queued_at"), Cast("revenue_usd_per_h", FLOAT), Cast(profit, FLOAT))
    )


@functools.cache
def _price_chart_shape() -> QuerySet:
    return (
        EnergyPrice.objects.filter(interval_start__minute__in=range(0, 60, PRICE_CHART_STEP_MINUTES))
        .order_by()
        .values_list("site_id", EpochSeconds("interval_start"), Cast("price_usd_per_mwh", FLOAT))
    )


@functools.cache
def _temperature_chart_shape() -> QuerySet:
    return (
        WeatherReading.objects.filter(observed_at__minute=0)
        .order_by()
        .values_list("site_id", EpochSeconds("observed_at"), Cast("temperature_c", FLOAT))
    )


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
)


def fleet_state(*, now: datetime, latest_run: OptimizationRun | None = None) -> dict:
    """Sites, fleet metrics, tiers and market now (queries 1-6 of the module docstring; 1 only as a fallback).

    Shared by the dashboard and the original product's endpoints so both show the same numbers.
    """
    if latest_run is not None and latest_run.status == RunStatus.SUCCEEDED and latest_run.is_applied:
        applied_run = latest_run  # the usual case: the newest run is the one in force (saves a query)
    else:
        applied_run = OptimizationRun.objects.applied().order_by("-queued_at", "-id").first()
    sites = _static_models("sites", _sites_queryset)
    inventories = _static_rows(
        "inventories",
        lambda: SiteInventory.objects.order_by("site_id", "hardware_model_id").values_list(*INVENTORY_COLUMNS),
    )
    market = MarketPrice.objects.filter(interval_start__lte=now).order_by("-interval_start").first()
    freshness = assess_freshness(sites=sites, market=market, now=now)

    by_site_inventory: dict[int, list[tuple]] = defaultdict(list)
    hardware: dict[str, tuple] = {}
    for row in inventories:
        by_site_inventory[row[0]].append(row)
        hardware[row[4]] = row[4:]
    hardware_codes = sorted(hardware, key=_hardware_sort_key)

    placements = _current_placements(now)
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

    committed_by_tier: dict[str, float] = defaultdict(float)
    for site_placements in placements.values():
        for placement in site_placements:
            committed_by_tier[placement["tier"]] += placement["capacity_kw"]
    uptime = uptime_by_tier(now=now)
    tier_rows = [
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
        "hardware": [_hardware_row(*hardware[code]) for code in hardware_codes],
        "tiers": tier_rows,
        "applied_run": applied_run,  # the model instance, for callers; build_dashboard drops it
    }


def _hardware_row(code, name, kind, power_kw_per_unit, hashrate_th_per_s, tokens_per_s) -> dict:
    return {
        "code": code,
        "name": name,
        "kind": kind,
        "power_kw_per_unit": _f(power_kw_per_unit, 3),
        "hashrate_th_per_s": _f(hashrate_th_per_s, 3),
        "tokens_per_s": _f(tokens_per_s, 2),
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
    latest_run = next(
        iter(
            _static_models(
                "latest-run",
                lambda: OptimizationRun.objects.defer(*UNREAD_RUN_FIELDS).order_by("-queued_at", "-id")[:1],
            )
        ),
        None,
    )
    state = fleet_state(now=now, latest_run=latest_run)
    state.pop("applied_run")
    site_rows = state["sites"]
    hardware = state["hardware"]
    price_rows, temperature_rows = _chart_rows([row["id"] for row in site_rows], now)
    return {
        **state,
        "latest_run": run_summary(latest_run),
        "charts": {
            "runs": run_history(now=now),
            "energy_prices": _price_history(site_rows, price_rows),
            "pue_temperature": _pue_temperature(site_rows, temperature_rows),
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
        "customers": [
            {"id": pk, "name": name}
            for pk, name in _static_rows(
                "customers",
                lambda: Customer.objects.order_by("name", "id").values_list("id", "name")[:CUSTOMER_CHOICES_LIMIT],
            )
        ],
        "scenarios": latest_scenarios(),
    }


def _site_row(site: Site, inventories: list[tuple], placements: list[dict], now: datetime) -> dict:
    site_pue, measured = _site_pue(site)
    allocation = []
    it_kw = mining_kw = inference_kw = 0.0
    for (
        _,
        units_running,
        units_available,
        units_installed,
        code,
        name,
        kind,
        power_kw_per_unit,
        *_,
    ) in sorted(inventories, key=lambda row: _hardware_sort_key(row[4])):
        running_kw = float(units_running * power_kw_per_unit)  # SiteInventory.running_power_kw
        it_kw += running_kw
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
            }
        )
    facility_kw = it_kw * site_pue
    capacity_kw = float(site.power_capacity_kw)
    local = now.astimezone(ZoneInfo(site.time_zone))
    offset = local.strftime("%z")
    money = site.run_revenue_usd_per_h is not None
    revenue, energy_cost = (
        (float(site.run_revenue_usd_per_h), float(site.run_energy_cost_usd_per_h)) if money else (None, None)
    )
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
        "revenue_usd_per_h": _f(revenue),
        "energy_cost_usd_per_h": _f(energy_cost),
        "profit_usd_per_h": _f(revenue - energy_cost) if money else None,
        "allocation": allocation,
        "contracts": placements,
        "committed_kw": round(sum(p["capacity_kw"] for p in placements), 3),
    }


def _current_placements(now: datetime) -> dict[int, list[dict]]:
    """Committed placements holding kW now, per site id."""
    by_site: dict[int, list[dict]] = defaultdict(list)
    for site_id, contract_id, tier, customer, capacity_kw, ends_at in _rows(_placements_shape().current(now)):
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
    """Revenue and profit (USD/h) of the succeeded runs queued in the last `hours`, oldest first.

    Profit is `OptimizationRun.profit_usd_per_h` computed in SQL (`_run_history_shape`): a run every five minutes
    makes 576 rows, and four Decimals a row would cost more than the query.
    """
    rows = _rows(_run_history_shape().filter(queued_at__gte=now - timedelta(hours=hours))[:limit])
    rows.reverse()
    return {
        "id": [row[0] for row in rows],
        "t": [_iso(row[1]) for row in rows],
        "revenue_usd_per_h": [_f(row[2]) for row in rows],
        "profit_usd_per_h": [_f(row[3]) for row in rows],
    }


def _chart_rows(site_ids: list[int], now: datetime) -> tuple[list[tuple], list[tuple]]:
    """(site id, epoch seconds, value) rows of the last PRICE_HISTORY_HOURS for the two time-series charts.

    Energy prices (USD/MWh) every PRICE_CHART_STEP_MINUTES and hourly temperatures (°C): each an index range scan
    per site (site, time), ~1,000 and ~250 rows for ten sites. Two queries, not one UNION ALL: PostgreSQL plans
    the union as a parallel append, and starting its workers costs ten times the scans.
    """
    start, end = now - timedelta(hours=PRICE_HISTORY_HOURS), now + timedelta(seconds=1)
    prices = _rows(_price_chart_shape().for_window(start, end).filter(site_id__in=site_ids))
    temperatures = _rows(_temperature_chart_shape().for_window(start, end).filter(site_id__in=site_ids))
    return prices, temperatures


def _price_history(site_rows: list[dict], rows: list[tuple[int, float, float]]) -> dict:
    """Energy price per site (USD/MWh) every PRICE_CHART_STEP_MINUTES on a shared time axis; gaps are null."""
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


@functools.cache
def _pue_curve(cooling_type: str) -> list[list[float]]:
    """[temperature °C, PUE] over PUE_CURVE_TEMPERATURES_C (a pure function of the cooling type)."""
    grid = np.array(PUE_CURVE_TEMPERATURES_C, dtype=float)
    return [[t, round(p, 3)] for t, p in zip(PUE_CURVE_TEMPERATURES_C, pue(cooling_type, grid).tolist(), strict=True)]


def _pue_temperature(site_rows: list[dict], rows: list[tuple[int, float, float]]) -> dict:
    """PUE curves of the fleet's cooling types, every site's hourly readings of the last day, and each site now."""
    readings: dict[int, list[float]] = defaultdict(list)
    for site_id, _, temperature in rows:
        readings[site_id].append(temperature)
    history = []
    for row in site_rows:
        temperatures = np.array(readings.get(row["id"], []), dtype=float)
        if temperatures.size:
            values = np.atleast_1d(pue(row["cooling_type"], temperatures))
            history.extend(
                [round(t, 1), round(p, 3)] for t, p in zip(temperatures.tolist(), values.tolist(), strict=True)
            )
    return {
        "curves": [
            {"cooling_type": code, "label": CoolingType(code).label, "points": [*map(list, _pue_curve(code))]}
            for code in sorted({row["cooling_type"] for row in site_rows})
        ],
        "history": history,
        "sites": [
            {"site": row["code"], "name": row["name"], "temperature_c": row["temperature_c"], "pue": row["pue"]}
            for row in site_rows
            if row["temperature_c"] is not None
        ],
    }


CONTRACT_STATUS_LABELS = dict(ContractStatus.choices)


def _latest_contracts() -> list[dict]:
    rows = _static_rows(
        "latest-contracts",
        lambda: Contract.objects.order_by("-created_at", "-id").values_list(
            "id",
            "customer__name",
            "tier__code",
            "tier__name",
            "capacity_kw",
            "starts_at",
            "ends_at",
            "status",
            "quoted_total_usd",
            "created_at",
        )[:LATEST_CONTRACTS],
    )
    return [
        {
            "id": pk,
            "customer": customer,
            "tier": tier,
            "tier_name": tier_name,
            "capacity_kw": _f(capacity_kw, 3),
            "starts_at": _iso(starts_at),
            "ends_at": _iso(ends_at),
            "status": status,
            "status_label": CONTRACT_STATUS_LABELS.get(status, status),  # Contract.get_status_display()
            "quoted_total_usd": _f(quoted_total_usd),
            "created_at": _iso(created_at),
        }
        for pk, customer, tier, tier_name, capacity_kw, starts_at, ends_at, status, quoted_total_usd, created_at in rows
    ]


# Scenarios: the latest outcome of each, its headline figures and the series behind its chart.

SCENARIO_HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # scenario: (summary key, label, unit) in the order shown; keys a result lacks are skipped.
    "heat-wave": (
        ("site", "Hot site", ""),
        ("profit_kept_usd", "Profit kept by planning for the heat", "USD"),
        ("forced_curtailment_mwh", "Forced curtailment of the heat-blind plan", "MWh"),
        ("cooling_energy_avoided_mwh", "Cooling energy avoided", "MWh"),
        ("pue_heat_peak", "Peak PUE", ""),
    ),
    "follow-the-sun": (
        ("profit_gain_usd", "Profit gained by following demand", "USD"),
        ("revenue_time_aware_usd", "Revenue, time-aware", "USD"),
        ("revenue_time_blind_usd", "Revenue, time-blind", "USD"),
    ),
    "maintenance": (
        ("site", "Site down", ""),
        ("placements_moved", "Placements moved", ""),
        ("premium_uptime_pct", "Premium uptime", "%"),
        ("unserved_kw", "Unserved", "kW"),
        ("credits_owed_usd", "Credits owed", "USD"),
    ),
    "renewable": (
        ("co2_t_avoided", "CO₂ avoided", "t"),
        ("profit_given_up_usd_per_t", "Profit given up per tonne", "USD/t"),
        ("high_renewable_share_pct_before", "High-renewable share before", "%"),
        ("high_renewable_share_pct_after", "High-renewable share after", "%"),
    ),
}


def _json(value):
    """A JSON column as read by `_static_rows`: text from PostgreSQL's driver (Django decodes it in the ORM)."""
    return json.loads(value) if isinstance(value, str) else value


def latest_scenarios() -> list[dict]:
    """The latest run of each scenario (SCENARIO_CHOICES order): headline figures and chart series (one query).

    Only the summary and the chart are read from the stored result, not its before/after table.
    """
    stored = {
        scenario: (title, _json(options), applied, finished_at, username, _json(summary), _json(chart))
        for scenario, title, options, applied, finished_at, username, summary, chart in _static_rows(
            "scenarios",
            lambda: ScenarioRun.objects.order_by().values_list(
                "scenario",
                "title",
                "options",
                "applied",
                "finished_at",
                "requested_by__username",
                KT("result__summary"),
                KT("result__chart"),
            ),
        )
    }
    scenarios = []
    for name, label in SCENARIO_CHOICES:
        if name not in stored:
            scenarios.append({"scenario": name, "label": label, "has_run": False})
            continue
        title, options, applied, finished_at, username, summary, chart = stored[name]
        summary, chart = summary or {}, chart or {}
        lines = chart.get("lines") or {}
        order = chart.get("line_order") or sorted(lines)  # ScenarioRunManager.record keeps the legend's order
        scenarios.append(
            {
                "scenario": name,
                "label": label,
                "has_run": True,
                "title": title,
                "options": options,
                "applied": applied,
                "finished_at": _iso(finished_at),
                "requested_by": username,
                "headline": [
                    {"key": key, "label": text, "unit": unit, "value": summary[key]}
                    for key, text, unit in SCENARIO_HEADLINES.get(name, ())
                    if key in summary
                ],
                "chart": {
                    "title": chart.get("title", ""),
                    "kind": chart.get("kind", "line"),
                    "x_label": chart.get("x_label", ""),
                    "y_label": chart.get("y_label", ""),
                    "x": chart.get("x", []),
                    "series": [{"label": label, "values": lines[label]} for label in order if label in lines],
                },
            }
        )
    return scenarios
