"""The four demo scenarios as measurable experiments: heat wave, follow-the-sun, maintenance, renewable.

Each scenario copies the current state of the database (sites, status, inventory, hardware, active contracts and
their placements) into engine dataclasses, simulates a stretch of time with the simulators (hourly prices,
temperatures, demand; the same seed as the live simulator), solves it with and without the event, and returns a
``ScenarioResult``: a before/after table, summary numbers and the series behind the chart. Nothing live changes:
the three simulation scenarios never write, and ``maintenance`` runs the SLA failover inside a transaction that is
rolled back unless ``apply=True``. Definitions of every reported figure: docs/scenarios.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, Sum
from django.utils import timezone

from sites.choices import SiteStatus
from sites.models import Site, SiteInventory
from sites.simulation import (
    HeatWave,
    pue,
    simulate_fleet_prices,
    simulate_hashprice,
    simulate_inference_demand,
    simulate_inference_price,
    simulate_temperatures,
)

from . import engine
from .inputs import commitments_at, engine_hardware, engine_site

SCENARIOS = ("heat-wave", "follow-the-sun", "maintenance", "renewable")
STEP_MINUTES = 60  # scenarios are simulated at hourly steps
HIGH_RENEWABLE_SHARE = 0.7  # a site at or above this renewable share counts as high-renewable
HEAT_RAMP_HOURS = 2.0  # the heat wave reaches its plateau over two hours (raised cosine)
POWER_MARGIN = 1.0 - 1e-7  # curtailment lands just inside the power row, clear of the solver's tolerance


class ScenarioError(ValueError):
    """A scenario cannot run with these options on this database (unknown site, no sites, ...)."""


@dataclass
class ScenarioResult:
    """What one scenario measured: a before/after table, summary numbers, and the series behind its chart."""

    scenario: str
    title: str
    start: datetime
    hours: int
    columns: tuple[str, ...]
    rows: list[dict]
    summary: dict[str, float | int | str]
    chart: dict = field(default_factory=dict)  # {"title", "x_label", "y_label", "x": [...], "lines": {label: [...]}}
    notes: list[str] = field(default_factory=list)
    applied: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready (datetimes as ISO strings, numpy scalars as floats)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["columns"] = list(self.columns)
        return _plain(data)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# The world: a copy of the database state plus a simulated stretch of time.


@dataclass(frozen=True, eq=False)
class World:
    """Sites, hardware and contracts as they are now, and simulated hourly weather and markets from ``start``."""

    start: datetime
    period_hours: np.ndarray  # [T]
    sites: tuple[engine.Site, ...]
    cooling_types: tuple[str, ...]
    hardware: tuple[engine.HardwareModel, ...]
    inventory_units: np.ndarray  # [S, H]
    temperature_c: np.ndarray  # [S, T]
    energy_price_usd_per_mwh: np.ndarray  # [S, T]
    hashprice_usd_per_ph_day: np.ndarray  # [T]
    inference_price_usd_per_mtok: np.ndarray  # [T]
    inference_demand_mtok_per_h: Mapping[str, np.ndarray]
    commitments: tuple[engine.Commitment, ...]
    carbon_price_usd_per_t: float
    switching_cost_usd_per_unit: float

    @property
    def site_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.sites)

    def index(self, code: str) -> int:
        try:
            return self.site_codes.index(code)
        except ValueError:
            raise ScenarioError(f"unknown site {code!r}; choose one of {', '.join(self.site_codes)}") from None

    def pue(self, temperature_c: np.ndarray | None = None) -> np.ndarray:
        """PUE [S, T] from each site's cooling curve at ``temperature_c`` (default: the simulated weather)."""
        temps = self.temperature_c if temperature_c is None else temperature_c
        return np.stack([np.asarray(pue(c, temps[s]), dtype=float) for s, c in enumerate(self.cooling_types)])

    def problem(
        self,
        *,
        pue_: np.ndarray | None = None,
        carbon_price_usd_per_t: float | None = None,
        demand: Mapping[str, np.ndarray] | None = None,
    ) -> engine.Problem:
        return engine.Problem(
            sites=self.sites,
            hardware=self.hardware,
            inventory_units=self.inventory_units,
            period_hours=self.period_hours,
            pue=self.pue() if pue_ is None else pue_,
            energy_price_usd_per_mwh=self.energy_price_usd_per_mwh,
            market=engine.Market(
                hashprice_usd_per_ph_day=self.hashprice_usd_per_ph_day,
                inference_price_usd_per_mtok=self.inference_price_usd_per_mtok,
                inference_demand_mtok_per_h=self.inference_demand_mtok_per_h if demand is None else demand,
            ),
            commitments=self.commitments,
            settings=engine.Settings(
                switching_cost_usd_per_unit=self.switching_cost_usd_per_unit,
                carbon_price_usd_per_t=(
                    self.carbon_price_usd_per_t if carbon_price_usd_per_t is None else carbon_price_usd_per_t
                ),
                integer=False,  # continuous units: scenarios compare plans, and the LP is exact and fast
            ),
        )


def build_world(*, start: datetime, hours: int, heat_waves: Mapping[str, HeatWave] | None = None) -> World:
    """Read the fleet from the database (three queries) and simulate ``hours`` hourly steps from ``start``.

    ``heat_waves`` maps a site code to a heat wave added to that site's simulated temperatures.
    """
    if hours < 1:
        raise ScenarioError("hours must be at least 1")
    knobs = settings.ENERGYARB
    seed = knobs["SIMULATOR_SEED"]
    inventories = SiteInventory.objects.select_related("hardware_model").order_by("hardware_model__code")
    rows = list(Site.objects.prefetch_related(Prefetch("inventories", queryset=inventories)).order_by("code"))
    if not rows:
        raise ScenarioError("No sites: run `manage.py seed_sites` first.")
    hardware_rows = {inv.hardware_model.code: inv.hardware_model for site in rows for inv in site.inventories.all()}
    codes = sorted(hardware_rows)
    inventory = np.zeros((len(rows), len(codes)))
    for s, site in enumerate(rows):
        for inv in site.inventories.all():
            inventory[s, codes.index(inv.hardware_model.code)] = inv.units_available
    heat_waves = dict(heat_waves or {})
    unknown = set(heat_waves) - {site.code for site in rows}
    if unknown:
        raise ScenarioError(f"unknown site {sorted(unknown)[0]!r}")
    temperature = np.stack(
        [
            simulate_temperatures(
                site.climate_profile(),
                start,
                hours,
                STEP_MINUTES,
                seed=seed,
                heat_waves=[heat_waves[site.code]] if site.code in heat_waves else (),
                stream=site.code,
            )
            for site in rows
        ]
    )
    profiles = [site.price_profile() for site in rows]
    available = {site.code for site in rows if site.is_available}
    _, commitments = commitments_at(at=start, site_codes=available)
    return World(
        start=start,
        period_hours=np.ones(hours),
        sites=tuple(engine_site(site) for site in rows),
        cooling_types=tuple(site.cooling_type for site in rows),
        hardware=tuple(engine_hardware(hw) for hw in (hardware_rows[code] for code in codes)),
        inventory_units=inventory,
        temperature_c=temperature,
        energy_price_usd_per_mwh=simulate_fleet_prices(
            profiles,
            start,
            hours,
            STEP_MINUTES,
            seed=seed,
            spike_cap_usd_per_mwh=knobs["PRICE_SPIKE_CAP_USD_PER_MWH"],
        ),
        hashprice_usd_per_ph_day=simulate_hashprice(
            start, hours, STEP_MINUTES, seed=seed, level_usd_per_ph_day=knobs["HASHPRICE_LEVEL_USD_PER_PH_DAY"]
        ),
        inference_price_usd_per_mtok=simulate_inference_price(start, hours, STEP_MINUTES, seed=seed),
        inference_demand_mtok_per_h=simulate_inference_demand(start, hours, STEP_MINUTES, seed=seed),
        commitments=commitments,
        carbon_price_usd_per_t=knobs["CARBON_PRICE_USD_PER_T"],
        switching_cost_usd_per_unit=knobs["SWITCHING_COST_USD_PER_UNIT"],
    )


# Measurements on a solved plan.


def kw_by_kind(problem: engine.Problem, units: np.ndarray) -> dict[str, np.ndarray]:
    """IT kW ``[S, T]`` of inference and of mining hardware in a plan ``units[S, H, T]``."""
    kw = np.array([h.power_kw for h in problem.hardware])
    kinds = np.array([h.kind for h in problem.hardware])
    return {
        kind: np.einsum("sht,h->st", units[:, kinds == kind, :], kw[kinds == kind]) for kind in ("inference", "miner")
    }


def sold_by_region(problem: engine.Problem, solution: engine.Solution) -> dict[str, np.ndarray]:
    """Spot tokens sold per region and period (Mtok/h): inference revenue / (price x hours)."""
    per_mtok = problem.market.inference_price_usd_per_mtok * problem.period_hours  # [T] USD per Mtok/h
    revenue = solution.ledger.inference_revenue_usd  # [S, T]
    sold = np.divide(revenue, per_mtok[None, :], out=np.zeros_like(revenue), where=per_mtok[None, :] > 0)
    return {r: sold[[s.region == r for s in problem.sites]].sum(axis=0) for r in engine.REGIONS}


def co2_t(problem: engine.Problem, solution: engine.Solution) -> np.ndarray:
    """Tonnes of CO2 per site over the horizon: facility MWh x (1 - renewable share) x grid kg/MWh / 1000."""
    mwh = (solution.ledger.facility_kw * problem.period_hours[None, :]).sum(axis=1) / 1000.0
    factor = np.array([(1.0 - s.renewable_share) * s.grid_carbon_kg_per_mwh / 1000.0 for s in problem.sites])
    return mwh * factor


def facility_mwh(problem: engine.Problem, solution: engine.Solution) -> np.ndarray:
    return (solution.ledger.facility_kw * problem.period_hours[None, :]).sum(axis=1) / 1000.0


def _checked(solution: engine.Solution, what: str) -> engine.Solution:
    if not solution.ok:
        raise ScenarioError(f"the {what} plan failed: {solution.status}; {' '.join(solution.explanation[:3])}")
    return solution


def _start(start: datetime | None, *, day: bool = False) -> datetime:
    moment = (start or timezone.now()).astimezone(UTC)
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if day else moment


def _hour_labels(world: World) -> list[str]:
    return [(world.start + timedelta(hours=i)).strftime("%H:%M") for i in range(len(world.period_hours))]


# Heat wave.


def curtail_to_power(problem: engine.Problem, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forced curtailment: scale every site's units down, evenly, until IT kW x PUE fits its grid connection.

    This is what happens to a plan made without knowing the heat: at the hotter PUE its facility power exceeds
    the connection, and the site sheds load across the board (thermal throttling, breakers) rather than by
    profit. Returns ``(units, curtailed IT kW [S, T])``.
    """
    kw = np.array([h.power_kw for h in problem.hardware])
    it_kw = np.einsum("sht,h->st", units, kw)
    cap = np.array([s.power_capacity_kw for s in problem.sites])[:, None] / problem.pue
    factor = np.where(it_kw > cap, cap / np.where(it_kw > 0, it_kw, 1.0) * POWER_MARGIN, 1.0)
    scaled = units * factor[:, None, :]
    return scaled, it_kw - np.einsum("sht,h->st", scaled, kw)


def heat_wave(
    *, site: str | None = None, delta_c: float = 12.0, hours: int = 24, start: datetime | None = None
) -> ScenarioResult:
    """One site gets ``delta_c`` hotter for ``hours``: the heat-aware plan against the heat-blind one.

    heat-blind = the plan made with the normal weather (normal PUE), run in the heat: the excess facility power is
    curtailed evenly (``curtail_to_power``) and the money is accounted at the heat PUE (``engine.evaluate``).
    heat-aware = the engine planning with the heat PUE.
    """
    began = time.perf_counter()
    start = _start(start)
    probe = build_world(start=start, hours=hours)
    # Default: the site that is hottest over the window anyway (a heat wave bites where it is already warm).
    code = site or probe.site_codes[int(np.argmax(probe.temperature_c.max(axis=1)))]
    hot = probe.index(code)
    wave = HeatWave(start=start, end=start + timedelta(hours=hours), delta_c=delta_c, ramp_hours=HEAT_RAMP_HOURS)
    world = build_world(start=start, hours=hours, heat_waves={code: wave})
    normal = world.problem(pue_=probe.pue())  # same weather without the bump
    heat = world.problem()
    blind_plan = _checked(engine.solve(normal), "heat-blind")
    blind_units, curtailed_kw = curtail_to_power(heat, blind_plan.units)
    blind = _checked(engine.evaluate(heat, blind_units), "heat-blind accounting")
    aware = _checked(engine.solve(heat), "heat-aware")

    d = heat.period_hours
    plan_kw, aware_kw = kw_by_kind(normal, blind_plan.units), kw_by_kind(heat, aware.units)
    blind_kw = kw_by_kind(heat, blind_units)
    pue_normal, pue_heat = normal.pue, heat.pue
    moved_inference = float((plan_kw["inference"][hot] - aware_kw["inference"][hot]).mean())
    moved_mining = float((plan_kw["miner"][hot] - aware_kw["miner"][hot]).mean())
    plan_it, aware_it = plan_kw["inference"] + plan_kw["miner"], aware_kw["inference"] + aware_kw["miner"]
    # Cooling energy = IT kW x (PUE - 1) x h. The heat-blind plan would have needed its IT load's cooling at the
    # heat PUE; the heat-aware plan needs only its own.
    cooling_avoided = float(((plan_it[hot] - aware_it[hot]) * (pue_heat[hot] - 1.0) * d).sum() / 1000.0)
    rows = []
    for s, name in enumerate(world.site_codes):
        rows.append(
            {
                "site": name,
                "pue_before": float(pue_normal[s].mean()),
                "pue_after": float(pue_heat[s].mean()),
                "inference_kw_before": float(blind_kw["inference"][s].mean()),
                "inference_kw_after": float(aware_kw["inference"][s].mean()),
                "mining_kw_before": float(blind_kw["miner"][s].mean()),
                "mining_kw_after": float(aware_kw["miner"][s].mean()),
                "curtailed_kw_before": float(curtailed_kw[s].mean()),
                "profit_usd_before": blind.site_breakdown[s].profit_usd,
                "profit_usd_after": aware.site_breakdown[s].profit_usd,
            }
        )
    blind_profit, aware_profit = blind.totals.profit_usd, aware.totals.profit_usd
    summary = {
        "site": code,
        "delta_c": delta_c,
        "peak_temperature_c": float(world.temperature_c[hot].max()),
        "pue_normal_mean": float(pue_normal[hot].mean()),
        "pue_heat_peak": float(pue_heat[hot].max()),
        "inference_moved_kw": moved_inference,
        "mining_moved_kw": moved_mining,
        "forced_curtailment_mwh": float((curtailed_kw * d).sum() / 1000.0),
        "cooling_energy_avoided_mwh": cooling_avoided,
        "profit_no_heat_usd": blind_plan.totals.profit_usd,
        "profit_heat_blind_usd": blind_profit,
        "profit_heat_aware_usd": aware_profit,
        "profit_kept_usd": aware_profit - blind_profit,
    }
    hot_it_blind = blind_kw["inference"][hot] + blind_kw["miner"][hot]
    return ScenarioResult(
        scenario="heat-wave",
        title=f"Heat wave: {code} +{delta_c:g} degC for {hours} h",
        start=start,
        hours=hours,
        columns=tuple(rows[0]),
        rows=rows,
        summary=summary,
        chart={
            "title": f"{code}: IT load in a +{delta_c:g} degC heat wave",
            "x_label": "hour (UTC)",
            "y_label": "IT kW",
            "x": _hour_labels(world),
            "lines": {
                "plan without heat": plan_it[hot].tolist(),
                "heat-blind (curtailed)": hot_it_blind.tolist(),
                "heat-aware": aware_it[hot].tolist(),
            },
        },
        notes=[
            "before = heat-blind plan (made at normal PUE, curtailed evenly to the grid connection at the heat PUE); "
            "after = heat-aware plan.",
        ],
        seconds=time.perf_counter() - began,
    )


# Follow the sun.


def follow_the_sun(*, hours: int = 24, start: datetime | None = None) -> ScenarioResult:
    """A UTC day: spot inference by region and hour, against a time-blind allocation.

    time-blind = one allocation for the whole day, planned on the day's average prices and demand and sized for
    each site's highest PUE of the day (so it is feasible every hour), then scored hour by hour on the real demand.
    """
    began = time.perf_counter()
    start = _start(start, day=True)
    world = build_world(start=start, hours=hours)
    problem = world.problem()
    aware = _checked(engine.solve(problem), "time-aware")
    flat = engine.Problem(
        sites=problem.sites,
        hardware=problem.hardware,
        inventory_units=problem.inventory_units,
        period_hours=np.array([float(problem.period_hours.sum())]),
        pue=problem.pue.max(axis=1, keepdims=True),
        energy_price_usd_per_mwh=problem.energy_price_usd_per_mwh.mean(axis=1, keepdims=True),
        market=engine.Market(
            hashprice_usd_per_ph_day=[problem.market.hashprice_usd_per_ph_day.mean()],
            inference_price_usd_per_mtok=[problem.market.inference_price_usd_per_mtok.mean()],
            inference_demand_mtok_per_h={r: [v.mean()] for r, v in problem.market.inference_demand_mtok_per_h.items()},
        ),
        commitments=problem.commitments,
        settings=problem.settings,
    )
    fixed = _checked(engine.solve(flat), "time-blind").units
    blind = _checked(engine.evaluate(problem, np.repeat(fixed, hours, axis=2)), "time-blind accounting")
    sold, sold_blind = sold_by_region(problem, aware), sold_by_region(problem, blind)
    demand = problem.market.inference_demand_mtok_per_h
    labels = _hour_labels(world)
    rows = []
    for t, label in enumerate(labels):
        row = {"hour_utc": label}
        for r in engine.REGIONS:
            row[f"{r}_mtok_after"] = float(sold[r][t])
        for r in engine.REGIONS:
            row[f"{r}_mtok_before"] = float(sold_blind[r][t])
        row["inference_usd_before"] = float(blind.ledger.inference_revenue_usd[:, t].sum())
        row["inference_usd_after"] = float(aware.ledger.inference_revenue_usd[:, t].sum())
        rows.append(row)
    summary: dict = {}
    for r in engine.REGIONS:
        summary[f"{r}_peak_hour_utc"] = labels[int(np.argmax(sold[r]))]
        summary[f"{r}_demand_peak_hour_utc"] = labels[int(np.argmax(demand[r]))]
    summary.update(
        {
            "inference_revenue_time_blind_usd": blind.totals.inference_revenue_usd,
            "inference_revenue_time_aware_usd": aware.totals.inference_revenue_usd,
            "revenue_time_blind_usd": blind.totals.revenue_usd,
            "revenue_time_aware_usd": aware.totals.revenue_usd,
            "profit_time_blind_usd": blind.totals.profit_usd,
            "profit_time_aware_usd": aware.totals.profit_usd,
            "profit_gain_usd": aware.totals.profit_usd - blind.totals.profit_usd,
        }
    )
    return ScenarioResult(
        scenario="follow-the-sun",
        title=f"Follow the sun: {hours} h from {start:%Y-%m-%d %H:%M} UTC",
        start=start,
        hours=hours,
        columns=tuple(rows[0]),
        rows=rows,
        summary=summary,
        chart={
            "title": "Spot inference sold by region (time-aware plan)",
            "x_label": "hour (UTC)",
            "y_label": "million tokens per hour",
            "x": labels,
            "lines": {r: sold[r].tolist() for r in engine.REGIONS},
        },
        notes=["before = time-blind allocation (one allocation from daily averages); after = time-aware plan."],
        seconds=time.perf_counter() - began,
    )


# Renewable.


def renewable(
    *, carbon_price_usd_per_t: float = 80.0, hours: int = 24, start: datetime | None = None
) -> ScenarioResult:
    """The same day planned without and with a carbon price: CO2, high-renewable share, profit per tonne.

    Profit here is operating profit (revenue - energy - switching - penalties): the carbon price steers the plan
    but is not counted as money paid, so "profit given up" is what the cleaner plan really costs.
    """
    if carbon_price_usd_per_t < 0:
        raise ScenarioError("carbon price must be >= 0")
    began = time.perf_counter()
    start = _start(start)
    world = build_world(start=start, hours=hours)
    before_problem = world.problem(carbon_price_usd_per_t=0.0)
    after_problem = world.problem(carbon_price_usd_per_t=carbon_price_usd_per_t)
    before = _checked(engine.solve(before_problem), "carbon-blind")
    after = _checked(engine.solve(after_problem), "carbon-priced")
    co2_before, co2_after = co2_t(before_problem, before), co2_t(after_problem, after)
    mwh_before, mwh_after = facility_mwh(before_problem, before), facility_mwh(after_problem, after)
    high = np.array([s.renewable_share >= HIGH_RENEWABLE_SHARE for s in world.sites])

    def share(mwh: np.ndarray) -> float:
        return float(mwh[high].sum() / mwh.sum() * 100.0) if mwh.sum() > 0 else 0.0

    def operating(solution: engine.Solution) -> float:
        return solution.totals.profit_usd + solution.totals.carbon_cost_usd

    avoided = float(co2_before.sum() - co2_after.sum())
    given_up = operating(before) - operating(after)
    rows = [
        {
            "site": s.code,
            "renewable_pct": s.renewable_share * 100.0,
            "grid_kg_per_mwh": s.grid_carbon_kg_per_mwh,
            "mwh_before": float(mwh_before[i]),
            "mwh_after": float(mwh_after[i]),
            "co2_t_before": float(co2_before[i]),
            "co2_t_after": float(co2_after[i]),
        }
        for i, s in enumerate(world.sites)
    ]
    summary = {
        "carbon_price_usd_per_t": carbon_price_usd_per_t,
        "co2_t_before": float(co2_before.sum()),
        "co2_t_after": float(co2_after.sum()),
        "co2_t_avoided": avoided,
        "high_renewable_share_pct_before": share(mwh_before),
        "high_renewable_share_pct_after": share(mwh_after),
        "profit_before_usd": operating(before),
        "profit_after_usd": operating(after),
        "profit_given_up_usd": given_up,
        "profit_given_up_usd_per_t": given_up / avoided if avoided > 1e-9 else 0.0,
    }
    return ScenarioResult(
        scenario="renewable",
        title=f"Carbon price {carbon_price_usd_per_t:g} USD/t over {hours} h",
        start=start,
        hours=hours,
        columns=tuple(rows[0]),
        rows=rows,
        summary=summary,
        chart={
            "title": f"CO2 by site, without and with {carbon_price_usd_per_t:g} USD/t",
            "x_label": "site",
            "y_label": "t CO2",
            "x": [s.code for s in world.sites],
            "lines": {"no carbon price": co2_before.tolist(), "carbon price": co2_after.tolist()},
            "kind": "bar",
        },
        notes=[
            f"high-renewable = renewable share >= {HIGH_RENEWABLE_SHARE:.0%}; "
            "profit is operating profit (the carbon price steers, it is not paid)."
        ],
        seconds=time.perf_counter() - began,
    )


# Maintenance.


def _placed_kw(at: datetime) -> dict[str, Decimal]:
    from sla.models import Placement

    rows = (
        Placement.objects.committed()
        .current(at)
        .values("site__code")
        .annotate(kw=Sum("capacity_kw"))
        .order_by("site__code")
    )
    return {row["site__code"]: row["kw"] for row in rows}


def _book_demo_contracts(*, at: datetime, hours: int) -> list[int]:
    """One contract per tier for a demo customer (used only inside the rolled-back transaction)."""
    from sla.models import Tier
    from sla.services import CapacityRequest, create_contract, ensure_user, seed_tiers

    if not Tier.objects.exists():
        seed_tiers()
    demo = ensure_user(username="scenario-demo", password=None, staff=False, customer_name="Scenario demo")
    from sla.models import Customer

    customer = Customer.objects.get(user__username=demo.username)
    ids = []
    for tier, kw in zip(Tier.objects.order_by("priority"), ("300", "400", "300", "200"), strict=False):
        contract = create_contract(
            customer=customer,
            request=CapacityRequest(
                tier=tier, capacity_kw=Decimal(kw), starts_at=at, ends_at=at + timedelta(hours=hours + 24)
            ),
        )
        ids.append(contract.pk)
    return ids


def maintenance(
    *, site: str | None = None, hours: int = 6, apply: bool = False, actor=None, reason: str = ""
) -> ScenarioResult:
    """A site goes into maintenance now for ``hours``: the SLA failover on a copy, the engine before/after, and the
    optimizer's placement decisions when the site comes back.

    Runs ``sla.services.fail_over_site`` inside a transaction rolled back unless ``apply``, then what follows every
    applied run (``optimizer.services.migrate_after_run``: lost capacity re-placed, migrations that pay). When no
    contract is placed anywhere and nothing is applied, a demo book (one contract per tier) is booked first, inside
    the same rolled-back transaction. The return is projected at the end of the window, on a savepoint that is
    always rolled back: the site back online, the same re-placement and migration decisions on the world simulated
    from then (the failed-over placements may move back, ``kind=return``, when the saving beats the cost).
    Uptime and credits are over the maintenance window and its calendar month.
    """
    from sites.services import set_site_status
    from sla.models import Contract, Placement
    from sla.services import fail_over_site, migration_cost, migration_worth_it, month_bounds

    from .services import migrate_after_run

    began = time.perf_counter()
    now = timezone.now()
    start = _start(now)
    notes: list[str] = []
    with transaction.atomic():
        placed = _placed_kw(now)
        if not placed and not apply:
            _book_demo_contracts(at=now, hours=hours)
            placed = _placed_kw(now)
            notes.append("No contracts were placed: a demo book (one contract per tier) was booked on the copy.")
        code = site or (max(placed, key=lambda c: placed[c]) if placed else None)
        if code is None:
            raise ScenarioError("no site given and no contract is placed anywhere")
        try:
            target = Site.objects.get(code=code)
        except Site.DoesNotExist:
            raise ScenarioError(f"unknown site {code!r}") from None
        if target.status != SiteStatus.ONLINE:
            raise ScenarioError(f"{code} is already {target.status}")
        before_world = build_world(start=start, hours=hours)
        before_problem = before_world.problem()
        before = _checked(engine.solve(before_problem), "before-maintenance")
        commitments = {str(c.id): c for c in before_problem.commitments}

        set_site_status(
            site=target, status=SiteStatus.MAINTENANCE, reason=reason or "maintenance scenario", actor=actor
        )
        report = fail_over_site(site=target, actor=actor, reason=reason or "maintenance scenario")
        failed_at = timezone.now()  # the failover's moment: its placements start here
        back = failed_at + timedelta(hours=hours)
        after_world = build_world(start=start, hours=hours)
        after_problem = after_world.problem()
        after = _checked(engine.solve(after_problem), "in-maintenance")
        during = migrate_after_run(problem=after_problem, now=failed_at, actor=actor)
        open_on_site = Placement.objects.committed().current(failed_at).filter(site=target).count()
        with transaction.atomic():  # the return, projected: always rolled back
            set_site_status(site=target, status=SiteStatus.ONLINE, reason="maintenance over (projected)", actor=actor)
            horizon = max(round(settings.ENERGYARB["HORIZON_HOURS"]), 1)
            returned = migrate_after_run(
                problem=build_world(start=_start(back), hours=horizon).problem(), now=back, actor=actor
            )
            transaction.set_rollback(True)

        downtime_kw: dict[int, Decimal] = {}
        for downtime in report.downtimes:
            downtime_kw[downtime.contract_id] = downtime_kw.get(downtime.contract_id, Decimal(0)) + downtime.unserved_kw
        decisions = [*during["decisions"], *returned["decisions"]]
        affected = (
            {pk for pk, _, _ in report.moved}
            | set(downtime_kw)
            | set(report.preempted)
            | {d["contract"] for d in decisions}
            | {pk for pk, _, _ in [*during["replaced"], *returned["replaced"]]}
        )
        contracts = {
            c.pk: c
            for c in Contract.objects.filter(pk__in=affected)
            .select_related("tier")
            .prefetch_related("tier__credit_rules")
        }
        held_kw = dict(
            Placement.objects.filter(contract_id__in=contracts)
            .current(failed_at)
            .values("contract_id")
            .annotate(kw=Sum("capacity_kw"))
            .values_list("contract_id", "kw")
        )
        month_start, month_end = month_bounds(now.date())
        window_h = Decimal(hours)
        pue0 = after_problem.pue[:, 0]
        price0 = after_problem.energy_price_usd_per_mwh[:, 0]
        contract_rows = []
        credits_usd = Decimal(0)
        tier_uptime: dict[str, list[float]] = {}
        for pk in sorted(contracts, key=lambda k: (contracts[k].tier.priority, k)):
            contract = contracts[pk]
            unserved = min(downtime_kw.get(pk, Decimal(0)), contract.capacity_kw)
            window_uptime = float((1 - unserved / contract.capacity_kw) * 100) if contract.capacity_kw else 100.0
            # Monthly uptime if the window is the month's only outage: committed kWh = kW x service hours in the
            # month; unserved kWh = unserved kW x window hours.
            service_h = (
                Decimal(
                    max(
                        (
                            min(month_end, contract.service_ended_at) - max(month_start, contract.starts_at)
                        ).total_seconds(),
                        0,
                    )
                )
                / 3600
            )
            committed_kwh = contract.capacity_kw * service_h
            month_uptime = (
                (1 - unserved * min(window_h, service_h) / committed_kwh) * 100 if committed_kwh else Decimal(100)
            )
            credit_pct = contract.tier.credit_pct_for(month_uptime)
            credit = (contract.charge_usd_between(month_start, month_end) * credit_pct / 100).quantize(Decimal("0.01"))
            credits_usd += credit
            tier_uptime.setdefault(contract.tier.code, []).append(window_uptime)
            # The failover by the migration rule: the source is going away, so staying earns nothing and owes the
            # credit (saving = kW x (price + penalty) per hour); the cost is the same model as a voluntary move.
            commitment = commitments.get(str(pk))
            price = float(contract.quoted_price_usd_per_kwh)
            penalty = commitment.penalty_usd_per_kwh if commitment else 0.0
            moves = [(to, kw) for c, to, kw in report.moved if c == pk]
            held = held_kw.get(pk, Decimal(0))  # after the failover; the cut-over leaves unserved what others lack
            costs = [
                migration_cost(
                    capacity_kw=float(kw),
                    price_usd_per_kwh=price,
                    penalty_usd_per_kwh=penalty,
                    destination_pue=float(pue0[after_world.index(to)]),
                    destination_energy_usd_per_mwh=float(price0[after_world.index(to)]),
                    unserved_kw=float(contract.capacity_kw - (held - kw)),
                )
                for to, kw in moves
            ]
            worth = all(
                migration_worth_it(
                    saving_usd_per_h=float(kw) * (price + penalty), hours_remaining=float(hours), cost=cost
                )
                for (_, kw), cost in zip(moves, costs, strict=True)
            )
            [verdict] = [d for d in returned["decisions"] if d["contract"] == pk] or [None]
            options = [o for o in (verdict["priced"] if verdict else ()) if o["kind"] == "return"]
            contract_rows.append(
                {
                    "contract": pk,
                    "tier": contract.tier.code,
                    "capacity_kw": float(contract.capacity_kw),
                    "moved_kw": float(sum((kw for _, kw in moves), Decimal(0))),
                    "moved_to": ", ".join(sorted({to for to, _ in moves})) or "-",
                    "failover_cost_usd": sum(cost.total_usd for cost in costs),
                    "migration_worth_it": worth,
                    "unserved_kw": float(unserved),
                    "preempted": pk in report.preempted,
                    "replaced_kw": float(sum(kw for c, _, kw in during["replaced"] if c == pk)),
                    "uptime_pct_window": window_uptime,
                    "credit_usd": float(credit),
                    "after_maintenance": (
                        "-"
                        if verdict is None
                        else f"{verdict['kind']} {verdict['from']}->{verdict['to']}"
                        if verdict["moved"]
                        else "stays"
                    ),
                    "saving_usd": verdict["saving_usd"] if verdict else 0.0,
                    "cost_usd": verdict["cost"]["total_usd"] if verdict else 0.0,
                    "return_option": ", ".join(
                        f"{o['to']}: {o['saving_usd']:,.2f} {'>' if o['saving_usd'] > o['cost_usd'] else '<='} "
                        f"{o['cost_usd']:,.2f} USD"
                        for o in options
                    )
                    or "-",
                }
            )
        moved_back = [d for d in returned["decisions"] if d["moved"]]
        summary = {
            "site": code,
            "hours": hours,
            "placements_moved": len(report.moved),
            "moved_kw": float(report.moved_kw),
            "unserved_kw": float(report.unserved_kw),
            "premium_uptime_pct": min(tier_uptime.get("premium", [100.0])),
            "contracts_preempted": len(report.preempted),
            "lower_tier_contracts_down": sum(
                1 for r in contract_rows if r["tier"] != "premium" and r["unserved_kw"] > 0
            ),
            "credits_owed_usd": float(credits_usd),
            "profit_before_usd": before.totals.profit_usd,
            "profit_after_usd": after.totals.profit_usd,
            "engine_shortfalls_after": len(after.shortfalls),
            "open_placements_on_site": open_on_site,
            "migrations_during": sum(1 for d in during["decisions"] if d["moved"]),
            "replaced_during_kw": float(sum(kw for _, _, kw in during["replaced"])),
            "migrations_priced_at_return": len(returned["decisions"]),
            "placements_returned": sum(1 for d in moved_back if d["kind"] == "return"),
            "placements_migrated_at_return": sum(1 for d in moved_back if d["kind"] == "migration"),
            "replaced_at_return_kw": float(sum(kw for _, _, kw in returned["replaced"])),
            "return_saving_usd": sum(d["saving_usd"] for d in moved_back),
            "return_cost_usd": sum(d["cost"]["total_usd"] for d in moved_back),
        }
        site_kw_before = (before.ledger.it_kw * before_problem.period_hours).sum(axis=1) / hours
        site_kw_after = (after.ledger.it_kw * after_problem.period_hours).sum(axis=1) / hours
        notes.append(
            f"Failover: {report}. The failover moves each placement for the rest of its contract; uptime and credits "
            f"assume the {hours} h window is the month's only outage."
        )
        notes += [f"During maintenance: re-placed {kw} kW of contract {c} on {to}." for c, to, kw in during["replaced"]]
        notes += [f"During maintenance: {d['reason']}." for d in during["decisions"]]
        notes += [
            f"Back online at {back:%H:%M} UTC: re-placed {kw} kW of contract {c} on {to}."
            for c, to, kw in returned["replaced"]
        ]
        notes += [
            f"Back online at {back:%H:%M} UTC: {d['reason']}" + (f" (refused: {d['refused']})" if d["refused"] else "")
            for d in returned["decisions"]
        ]
        if not apply:
            transaction.set_rollback(True)
        else:
            notes.append(f"Applied: {code} stays in maintenance; placements, notices and downtimes are stored.")
    rows = contract_rows or [{"contract": "-", "tier": "-", "moved_kw": 0.0}]
    return ScenarioResult(
        scenario="maintenance",
        title=f"Maintenance: {code} for {hours} h",
        start=start,
        hours=hours,
        columns=tuple(rows[0]),
        rows=rows,
        summary=summary,
        chart={
            "title": f"Average IT kW by site, before and during maintenance of {code}",
            "x_label": "site",
            "y_label": "IT kW",
            "x": list(before_world.site_codes),
            "lines": {"before": site_kw_before.tolist(), "during maintenance": site_kw_after.tolist()},
            "kind": "bar",
        },
        notes=notes,
        applied=apply,
        seconds=time.perf_counter() - began,
    )


def run_scenario(name: str, *, apply: bool = False, actor=None, **options) -> ScenarioResult:
    """Dispatch by name (``SCENARIOS``); ``apply`` changes live data only for ``maintenance``."""
    if name == "heat-wave":
        result = heat_wave(**options)
    elif name == "follow-the-sun":
        result = follow_the_sun(**options)
    elif name == "renewable":
        result = renewable(**options)
    elif name == "maintenance":
        return maintenance(apply=apply, actor=actor, **options)
    else:
        raise ScenarioError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    if apply:
        result = replace(result, notes=[*result.notes, "--apply has no effect: this scenario only simulates."])
    return result
