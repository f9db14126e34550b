"""The shared ground of every scenario: its result and error types, the world it runs on, and plan measurements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from sites.models import Site, SiteInventory
from sites.simulation import (
    HeatWave,
    hall_pue_grid,
    pue,
    simulate_fleet_prices,
    simulate_hashprice,
    simulate_inference_demand,
    simulate_inference_price,
    simulate_temperatures,
)

from .. import engine
from ..inputs import commitments_at, engine_hardware, engine_site

STEP_MINUTES = 60  # scenarios are simulated at hourly steps


class ScenarioError(ValueError):
    """A scenario cannot run with these options on this database (unknown site, no sites, ...)."""


@dataclass
class ScenarioResult:
    """What one scenario measured: a before/after table, summary numbers, and the series behind its chart."""

    scenario: str
    title: str
    start: datetime
    hours: int
    rows: list[dict]  # the table; every row has the same keys, in column order
    summary: dict[str, float | int | str]
    chart: dict = field(default_factory=dict)  # {"title", "x_label", "y_label", "x": [...], "lines": {label: [...]}}
    notes: list[str] = field(default_factory=list)
    # USD over the window by stream (optimizer/streams.py) of the plans compared: {plan: {stream: USD}}
    streams: dict[str, dict[str, float]] = field(default_factory=dict)
    applied: bool = False
    seconds: float = 0.0

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.rows[0]) if self.rows else ()

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
    hardware_halls: tuple[tuple[str, str], ...] = ()  # each model's (cooling type, kind): its hall; () = site PUE

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

    def hall_pue(self, temperature_c: np.ndarray | None = None) -> np.ndarray | None:
        """PUE [S, H, T] of each machine's hall (a mining hall, a chilled GPU room, a tank), None without halls."""
        if not self.hardware_halls:
            return None
        temps = self.temperature_c if temperature_c is None else temperature_c
        return hall_pue_grid(self.cooling_types, self.hardware_halls, temps)

    def problem(
        self,
        *,
        temperature_c: np.ndarray | None = None,
        carbon_price_usd_per_t: float | None = None,
        demand: Mapping[str, np.ndarray] | None = None,
    ) -> engine.Problem:
        """The engine's problem over the world, at its weather or at ``temperature_c`` [S, T]."""
        return engine.Problem(
            sites=self.sites,
            hardware=self.hardware,
            inventory_units=self.inventory_units,
            period_hours=self.period_hours,
            pue=self.pue(temperature_c),
            hall_pue=self.hall_pue(temperature_c),
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
    models = [hardware_rows[code] for code in codes]
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
        hardware=tuple(engine_hardware(hw) for hw in models),
        hardware_halls=tuple((hw.cooling_type, hw.kind) for hw in models),
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
    return mwh * problem.carbon_t_per_mwh


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
