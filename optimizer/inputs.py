"""Build the engine's Problem from the database: what the world looks like now, and what it will look like.

Reads (query cost: sites + inventories in two queries, latest price and temperature per site as subqueries,
one market price, open contracts with their tiers, credit rules and current placements in three more; with the
ridge forecast one query of stored energy prices, one of market prices and one of weather forecasts, each at most
twice), checks freshness, and returns a pure `optimizer.engine.Problem` plus a compact, JSON-ready snapshot that is
stored with the run.

The first period (the interval in progress) is planned on the observed values: the optimizer acts on the current
price. Later periods are forecasts (settings ENERGYARB["FORECAST"], env OPTIMIZER_FORECAST):

- ``ridge`` (default): energy price per site, hashprice, inference price and regional demand from
  ``optimizer.forecast`` (a ridge regression on daily and weekly shape, fitted on the last four weeks of stored
  5-minute history), PUE from stored weather forecasts when there are any (else the current PUE held). A series
  with under two days of history is held at its latest value (persistence), and the run's stored inputs say so.
  Fits are kept per worker process and refitted hourly (``FITS``), so a tick reads about a day of history, not
  four weeks: see ``_forecast_series``.
- ``persistence``: the latest prices and PUE held over the horizon, demand on the simulator's daily pattern.

Either way, energy prices stored for intervals ahead of the current one (a market's cleared day-ahead prices)
replace the forecast for the periods they cover (``stored_ahead``, one query): they are known, not forecast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import (
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Prefetch,
    Q,
    Value,
)

from fleet.hysteresis import unit_limits
from sites.choices import HardwareKind
from sites.models import EnergyPrice, HardwareModel, MarketPrice, Site, SiteInventory, WeatherReading
from sites.querysets import LatestEnergyPrice, LatestTemperature
from sites.simulation import INFERENCE_REGIONS, floor_to_step, hall_pue_grid, pue, simulate_inference_demand
from sites.units import INTERVAL_MINUTES
from sla.choices import ContractStatus
from sla.models import Contract, Placement

from . import engine, forecast
from .credit_pricing import shortfall_prices
from .grid_inputs import grid_inputs

# The live plan's fine period; fleet dispatch's hourly ramp budget counts these periods (sites.units).
STEP_MINUTES = INTERVAL_MINUTES
STEP = timedelta(minutes=STEP_MINUTES)
DAY_STEPS = 1440 // STEP_MINUTES
DEFAULT_TEMPERATURE_C = 20.0  # used (and flagged) when a site has never reported weather
# Fits are refitted hourly (per worker process); in between, a tick reads only the values the kept fit needs.
FITS = forecast.FitCache(refit_steps=60 // STEP_MINUTES, tail_steps=DAY_STEPS + 1)
# What a refit reads: the four weeks the ridge trains on plus the day its seasonal lags reach back.
TRAINING_WINDOW = timedelta(days=forecast.TRAINING_DAYS + 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SiteReadings(LatestEnergyPrice, LatestTemperature):
    """What `_read_sites` annotates on each site: its latest energy price and temperature at the run's moment."""


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    ObservedSite: TypeAlias = WithAnnotations[Site, SiteReadings]


class StaleInputs(Exception):
    """The inputs are too old (or missing) to act on; the run is skipped and says why."""


@dataclass(frozen=True)
class Inputs:
    problem: engine.Problem
    snapshot: dict
    sites: tuple[ObservedSite, ...]
    hardware: tuple  # sites.models.HardwareModel rows, in the problem's order
    contracts: tuple[Contract, ...]


def engine_site(site: Site) -> engine.Site:
    """A site row as the engine sees it (maintenance and offline sites are unavailable)."""
    return engine.Site(
        code=site.code,
        power_capacity_kw=float(site.power_capacity_kw),
        region=site.market_region,
        renewable_share=float(site.renewable_share),
        grid_carbon_kg_per_mwh=float(site.grid_carbon_kg_per_mwh),
        available=site.is_available,
    )


def engine_hardware(hw) -> engine.HardwareModel:
    """A catalogue row (sites.models.HardwareModel) as the engine sees it, with its warm-up per start: a miner's
    boot (``MINER_WARMUP_MINUTES``) or a GPU node's model load (``INFERENCE_WARMUP_MINUTES``)."""
    knobs = settings.ENERGYARB
    warmup = knobs["MINER_WARMUP_MINUTES"] if hw.kind == HardwareKind.MINER else knobs["INFERENCE_WARMUP_MINUTES"]
    return engine.HardwareModel(
        code=hw.code,
        kind=hw.kind,
        power_kw=float(hw.power_kw_per_unit),
        hashrate_th_s=float(hw.hashrate_th_per_s or 0),
        tokens_per_s=float(hw.tokens_per_s or 0),
        warmup_minutes=float(warmup),
    )


def _market_at(at: datetime) -> MarketPrice | None:
    return MarketPrice.objects.filter(interval_start__lte=at).order_by("-interval_start").first()


def _unit_limits(sites, hardware, period_starts, at: datetime) -> engine.UnitLimits | None:
    """What dispatch may do to the registered devices (minimum on/off times, restart caps), for the engine."""
    arrays = unit_limits(
        site_ids=[s.pk for s in sites], hardware_ids=[h.pk for h in hardware], period_starts=period_starts, now=at
    )
    return engine.UnitLimits(*arrays) if arrays is not None else None


def build_inputs(*, at: datetime, strategy: str = "lp") -> Inputs:
    """The current problem: a rolling horizon starting at the 5-minute interval containing `at`.

    Raises StaleInputs when a site that may run has no price younger than MAX_DATA_AGE_MINUTES, or when
    the market price is that old: acting on stale prices is worse than not acting.
    """
    interval = floor_to_step(at, STEP_MINUTES)
    sites = _read_sites(at)
    hardware_rows = {inv.hardware_model.code: inv.hardware_model for site in sites for inv in site.inventories.all()}
    hardware = tuple(hardware_rows[code] for code in sorted(hardware_rows))
    market = _fresh_market(sites, at)
    now = _observed(sites, hardware)
    # Rolling horizon: fine 5-minute steps for the hour about to be applied, then hourly steps, so switching
    # costs are weighed against how long a change will pay. Period 0 holds the observed values; later periods the
    # forecast (see the module docstring).
    knobs = settings.ENERGYARB
    period_hours, period_starts = engine.rolling_periods(
        interval, fine_steps=12, fine_minutes=STEP_MINUTES, horizon_hours=knobs["HORIZON_HOURS"]
    )
    # Period boundaries in 5-minute steps from the current interval: [0, 1, ..., 12, 24, ...].
    steps = np.maximum(np.rint(np.asarray(period_hours) * 60 / STEP_MINUTES), 1)
    bounds = np.concatenate([[0], np.cumsum(steps)]).astype(int)
    outlook = plan_horizon(
        at=at,
        interval=interval,
        bounds=bounds,
        sites=sites,
        prices=np.array(now.prices),
        pues=np.array(now.pues),
        temperatures=now.temperatures,
        market=market,
        method=forecast_setting(),
        machines=tuple((hw.cooling_type, hw.kind) for hw in hardware),
    )
    outlook = stored_ahead(outlook, interval=interval, bounds=bounds, sites=sites)
    contracts, commitments = commitments_at(at=at, site_codes={site.code for site in sites if site.is_available})
    problem = engine.Problem(
        sites=tuple(engine_site(site) for site in sites),
        hardware=tuple(engine_hardware(hw) for hw in hardware),
        inventory_units=now.inventory,
        period_hours=period_hours,
        pue=outlook.pue,
        hall_pue=outlook.hall_pue,
        energy_price_usd_per_mwh=outlook.energy_price,
        market=engine.Market(
            hashprice_usd_per_ph_day=outlook.hashprice,
            inference_price_usd_per_mtok=outlook.inference_price,
            inference_demand_mtok_per_h=outlook.demand,
        ),
        commitments=commitments,
        previous_units=now.previous,
        settings=engine.Settings(
            switching_cost_usd_per_unit=knobs["SWITCHING_COST_USD_PER_UNIT"],
            carbon_price_usd_per_t=knobs["CARBON_PRICE_USD_PER_T"],
            ramp_limit_fraction_per_hour=knobs["RAMP_LIMIT_FRACTION_PER_HOUR"],
            stop_warmup_share=engine.ROLLING_PLAN_STOP_WARMUP_SHARE,  # a rolling plan: stops pay their restart too
            integer=True,
            time_limit_s=knobs["SOLVER_TIME_LIMIT_S"],
        ),
        period_starts=period_starts,
        unit_limits=_unit_limits(sites, hardware, period_starts, at),
    )
    if (grid := grid_inputs(problem, contracts, at)) is not None:  # open grid events (optimizer/grid_inputs.py)
        problem = replace(problem, grid=grid)
    snapshot = _snapshot(
        interval=interval,
        strategy=strategy,
        market=market,
        sites=sites,
        hardware=hardware,
        now=now,
        outlook=outlook,
        commitments=commitments,
    )
    return Inputs(problem=problem, snapshot=snapshot, sites=sites, hardware=hardware, contracts=contracts)


def _read_sites(at: datetime) -> tuple[ObservedSite, ...]:
    """Every site with its latest energy price and temperature and its inventory (two queries), by code."""
    inventories = SiteInventory.objects.select_related("hardware_model").order_by("hardware_model__code")
    sites = tuple(
        Site.objects.with_latest_energy_price(at)
        .with_latest_temperature(at)
        .prefetch_related(Prefetch("inventories", queryset=inventories))
        .order_by("code")
    )
    if not sites:
        raise StaleInputs("No sites: run `manage.py seed_sites` first.")
    return sites


def _fresh_market(sites: tuple[ObservedSite, ...], at: datetime) -> MarketPrice:
    """The market price in force at ``at``; StaleInputs when it, or an available site's energy price, is missing or
    older than MAX_DATA_AGE_MINUTES."""
    max_age = timedelta(minutes=settings.ENERGYARB["MAX_DATA_AGE_MINUTES"])
    problems = []
    for site in sites:
        if not site.is_available:
            continue
        if site.latest_price_at is None:
            problems.append(f"{site.name} has no energy price")
        elif at - site.latest_price_at > max_age:
            problems.append(f"{site.name}'s energy price is {_age(at - site.latest_price_at)} old")
    market = _market_at(at)
    if market is None:
        problems.append("no market price")
    elif at - market.interval_start > max_age:
        problems.append(f"the market price is {_age(at - market.interval_start)} old")
    if problems or market is None:
        raise StaleInputs(f"Inputs older than {settings.ENERGYARB['MAX_DATA_AGE_MINUTES']} min: " + "; ".join(problems))
    return market


@dataclass(frozen=True, eq=False)
class _Observed:
    """What each site holds and shows now: units available and running ``[S, H]``, temperature, PUE, price."""

    inventory: np.ndarray
    previous: np.ndarray
    temperatures: list[float | None]
    pues: list[float]
    prices: list[float]


def _observed(sites: tuple[ObservedSite, ...], hardware: tuple) -> _Observed:
    hw_index = {hw.code: h for h, hw in enumerate(hardware)}
    inventory = np.zeros((len(sites), len(hardware)))
    previous = np.zeros((len(sites), len(hardware)))
    temperatures: list[float | None] = []
    pues: list[float] = []
    prices: list[float] = []
    for s, site in enumerate(sites):
        for inv in site.inventories.all():
            inventory[s, hw_index[inv.hardware_model.code]] = inv.units_available
            previous[s, hw_index[inv.hardware_model.code]] = inv.units_running
        temperature = float(site.latest_temperature_c) if site.latest_temperature_c is not None else None
        temperatures.append(temperature)
        pues.append(float(pue(site.cooling_type, DEFAULT_TEMPERATURE_C if temperature is None else temperature)))
        prices.append(float(site.latest_price_usd_per_mwh) if site.latest_price_usd_per_mwh is not None else 0.0)
    return _Observed(inventory=inventory, previous=previous, temperatures=temperatures, pues=pues, prices=prices)


def _snapshot(
    *,
    interval: datetime,
    strategy: str,
    market: MarketPrice,
    sites: tuple[ObservedSite, ...],
    hardware: tuple,
    now: _Observed,
    outlook: HorizonValues,
    commitments: tuple[engine.Commitment, ...],
) -> dict:
    """The run's stored inputs: compact and JSON-ready (the run's admin page and the advisor read it)."""
    knobs = settings.ENERGYARB
    return {
        "interval_start": interval.isoformat(),
        "strategy": strategy,
        "market": {
            "interval_start": market.interval_start.isoformat(),
            "hashprice_usd_per_ph_day": float(market.hashprice_usd_per_ph_day),
            "inference_price_usd_per_mtok": float(market.inference_price_usd_per_mtok),
            "inference_demand_mtok_per_h": {
                region: round(float(values[0]), 1) for region, values in outlook.demand.items()
            },
        },
        "sites": {
            site.code: {
                "status": site.status,
                "energy_price_usd_per_mwh": now.prices[s],
                "price_at": site.latest_price_at.isoformat() if site.latest_price_at else None,
                "temperature_c": now.temperatures[s],
                "pue": round(now.pues[s], 4),
                "hall_pue": _hall_pue_now(outlook, s, hardware),
            }
            for s, site in enumerate(sites)
        },
        "previous_units": {
            site.code: {hw.code: int(now.previous[s, h]) for h, hw in enumerate(hardware) if now.previous[s, h]}
            for s, site in enumerate(sites)
        },
        "commitments": [{"contract": c.id, "tier": c.tier, "capacity_kw": c.capacity_kw} for c in commitments],
        "settings": {
            "switching_cost_usd_per_unit": knobs["SWITCHING_COST_USD_PER_UNIT"],
            "carbon_price_usd_per_t": knobs["CARBON_PRICE_USD_PER_T"],
        },
        "forecast": outlook.record(sites),
    }


def forecast_setting() -> str:
    """settings.ENERGYARB["FORECAST"], checked: "ridge" or "persistence"."""
    method = settings.ENERGYARB.get("FORECAST", forecast.RIDGE)
    if method not in forecast.FORECASTS:
        raise ImproperlyConfigured(
            f"OPTIMIZER_FORECAST must be one of {', '.join(forecast.FORECASTS)}, not {method!r}."
        )
    return method


@dataclass(frozen=True, eq=False)
class HorizonValues:
    """Per planning period: what the engine plans on. Period 0 holds the observed values."""

    method: str  # the setting: "ridge" or "persistence"
    energy_price: np.ndarray  # [S, T] USD/MWh
    pue: np.ndarray  # [S, T] of each site's own hall
    hall_pue: np.ndarray | None  # [S, H, T] of each machine's hall (a mining hall, a chilled GPU room, a tank)
    hashprice: np.ndarray  # [T] USD per PH/s per day
    inference_price: np.ndarray  # [T] USD/Mtok
    demand: dict[str, np.ndarray]  # region -> [T] Mtok/h
    models: dict[str, str]  # series -> the model its later periods came from ("ridge", "persistence", ...)

    def record(self, sites: tuple[ObservedSite, ...]) -> dict:
        """The snapshot's "forecast": which model each series used, a sentence saying so, and the values."""
        held = sorted(key for key, model in self.models.items() if model == forecast.PERSISTENCE)
        learned = sorted(key for key, model in self.models.items() if model == forecast.RIDGE)
        if self.method == forecast.PERSISTENCE:
            used = forecast.PERSISTENCE
            note = "Planned on persistence: the latest prices and PUE held over the horizon (OPTIMIZER_FORECAST)."
        elif not held:
            used = forecast.RIDGE
            note = "Planned on the ridge forecast learned from stored history; the current interval on observed values."
        else:
            used = forecast.PERSISTENCE if not learned else "mixed"
            note = (
                f"Persistence (latest value held) for {forecast.describe_series(held)}: under two days of stored "
                "history, too little to learn a daily shape from."
            )
            if learned:
                note += f" The ridge forecast for {forecast.describe_series(learned)}."
        weather = sorted(key for key, model in self.models.items() if model == "weather forecast")
        if weather:
            note += f" PUE from stored weather forecasts for {forecast.describe_series(weather)}."
        ahead = sorted(key for key, model in self.models.items() if model == STORED_AHEAD)
        if ahead:
            series = forecast.describe_series(ahead)
            note += f" Stored prices ahead (cleared day-ahead) where they cover a period for {series}."
        codes = [site.code for site in sites]
        return {
            "setting": self.method,
            "used": used,
            "note": note,
            "models": dict(sorted(self.models.items())),
            "periods": {
                "energy_price_usd_per_mwh": {c: _rounded(v, 2) for c, v in zip(codes, self.energy_price, strict=True)},
                "pue": {c: _rounded(v, 4) for c, v in zip(codes, self.pue, strict=True)},
                "hashprice_usd_per_ph_day": _rounded(self.hashprice, 4),
                "inference_price_usd_per_mtok": _rounded(self.inference_price, 4),
                "inference_demand_mtok_per_h": {r: _rounded(v, 1) for r, v in sorted(self.demand.items())},
            },
        }


def _rounded(values: np.ndarray, places: int) -> list[float]:
    return [round(float(v), places) for v in values]


def plan_horizon(
    *,
    at: datetime,
    interval: datetime,
    bounds: np.ndarray,
    sites: tuple[ObservedSite, ...],
    prices: np.ndarray,
    pues: np.ndarray,
    temperatures: list[float | None],
    market: MarketPrice,
    method: str,
    machines: Sequence[tuple[str, str]] = (),
) -> HorizonValues:
    """Values per period (``bounds``: period boundaries in 5-minute steps from ``interval``) on ``method``.

    ``prices``, ``pues``, ``temperatures`` and ``market`` are the observed current values: period 0 uses them as
    they are. ``machines`` (each hardware model's cooling type and kind) gives every machine its hall's PUE.
    Query cost with ridge: one query of EnergyPrice, one of MarketPrice (each repeated once when a kept fit no
    longer matches the stored history) and one of WeatherReading; none with persistence.
    """
    knobs = settings.ENERGYARB
    n_periods, steps = len(bounds) - 1, int(bounds[-1])
    hashprice, token_price = float(market.hashprice_usd_per_ph_day), float(market.inference_price_usd_per_mtok)
    held = np.array([DEFAULT_TEMPERATURE_C if t is None else t for t in temperatures], dtype=float)
    if method == forecast.PERSISTENCE:
        demand = simulate_inference_demand(interval, steps, STEP_MINUTES, seed=knobs["SIMULATOR_SEED"])
        return HorizonValues(
            method=method,
            energy_price=np.repeat(prices[:, None], n_periods, axis=1),
            pue=np.repeat(pues[:, None], n_periods, axis=1),
            hall_pue=_hall_periods(sites, machines, np.repeat(held[:, None], steps, axis=1), bounds),
            hashprice=np.full(n_periods, hashprice),
            inference_price=np.full(n_periods, token_price),
            demand={region: values[bounds[:-1]] for region, values in demand.items()},
            models={},
        )
    horizon = _Horizon(at=at, interval=interval, bounds=bounds)
    energy = _energy_periods(horizon, sites, prices)
    hashprices, token_prices = _market_periods(horizon, hashprice, token_price)
    demand = _demand_periods(horizon, seed=knobs["SIMULATOR_SEED"])
    pue_periods, paths_c = _pue_periods(horizon, sites, pues, held)
    return HorizonValues(
        method=method,
        energy_price=energy,
        pue=pue_periods,
        hall_pue=_hall_periods(sites, machines, paths_c, bounds),
        hashprice=hashprices,
        inference_price=token_prices,
        demand=demand,
        models=horizon.models,
    )


@dataclass
class _Horizon:
    """The ridge horizon being built: its period bounds (5-minute steps from ``interval``) and the model each
    series used so far."""

    at: datetime
    interval: datetime
    bounds: np.ndarray
    models: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.bounds[-1])

    def periods(self, path: np.ndarray | None, now: float, lower: float | None = None) -> np.ndarray:
        """Per-period means of a 5-minute ``path``, period 0 the observed ``now`` (all ``now`` without a path)."""
        if path is None:  # nothing stored in the window: the current value held
            return np.full(len(self.bounds) - 1, now)
        values = forecast.period_means(path if lower is None else np.maximum(path, lower), self.bounds)
        values[0] = now  # the interval in progress: the observed value, whatever the model says
        return values

    def series(
        self, keys: list[str], load: Callable[[Ranges], Mapping[str, tuple[np.ndarray, np.ndarray]]]
    ) -> dict[str, np.ndarray | None]:
        return _forecast_series(keys, load, self.at, self.interval, self.steps, self.models)


STORED_AHEAD = "stored prices ahead"
STORED_AHEAD_LOOKBACK = timedelta(days=1)  # the longest stored row that may still cover the next step


def stored_ahead(
    outlook: HorizonValues, *, interval: datetime, bounds: np.ndarray, sites: tuple[ObservedSite, ...]
) -> HorizonValues:
    """Energy prices stored for intervals after the current one (a market's cleared day-ahead prices) replace the
    forecast, whatever its method, for the 5-minute steps they cover; a period partly covered mixes the two by
    steps. A stored row covers ``[interval_start, interval_start + interval_minutes)`` (an hourly day-ahead
    price: twelve steps), also when it started before the next step (the hour in progress: up to
    ``STORED_AHEAD_LOOKBACK`` before); where rows overlap, the one that started last holds. Period 0 stays the
    observed price. One query.
    """
    steps, first = int(bounds[-1]), int(bounds[1])
    next_step = interval + STEP * first
    rows = EnergyPrice.objects.filter(
        Q(interval_start__gte=next_step)
        | Q(interval_start__gte=next_step - STORED_AHEAD_LOOKBACK, interval_minutes__gt=STEP_MINUTES),
        site_id__in=[site.pk for site in sites],
        interval_start__lt=interval + STEP * steps,
    )
    offsets, site_ids, values, minutes = _offset_columns(
        rows, "interval_start", interval, "site_id", "price_usd_per_mwh", "interval_minutes"
    )
    if not len(offsets):
        return outlook
    energy, models = outlook.energy_price.copy(), dict(outlook.models)
    for s, site in enumerate(sites):
        mine = site_ids == site.pk
        if not mine.any():
            continue
        order = np.argsort(offsets[mine], kind="stable")
        starts, prices = offsets[mine][order], values[mine][order]
        lengths = np.maximum(-(-minutes[mine][order] // STEP_MINUTES), 1).astype(np.int64)  # whole steps, up
        path = np.full(steps, np.nan)
        for start, length, value in zip(starts, lengths, prices, strict=True):  # a later start paints over
            path[max(start, first) : min(start + length, steps)] = value
        for t in range(1, len(bounds) - 1):
            window = path[bounds[t] : bounds[t + 1]]
            covered = ~np.isnan(window)
            if covered.any():
                energy[s, t] = (window[covered].sum() + (~covered).sum() * energy[s, t]) / window.size
        models[f"energy_price_usd_per_mwh.{site.code}"] = STORED_AHEAD
    return replace(outlook, energy_price=energy, models=models)


def _energy_periods(horizon: _Horizon, sites: tuple[ObservedSite, ...], prices: np.ndarray) -> np.ndarray:
    """Energy price per site and period ``[S, T]``: one query of stored 5-minute prices."""
    site_keys = {site.pk: f"energy_price_usd_per_mwh.{site.code}" for site in sites}

    def energy_rows(ranges: Ranges) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        rows = EnergyPrice.objects.filter(_within("interval_start", ranges), site_id__in=list(site_keys))
        offsets, site_ids, values = _offset_columns(
            rows, "interval_start", ranges[0][0], "site_id", "price_usd_per_mwh"
        )
        return _grouped(offsets, site_ids, values, site_keys)

    paths = horizon.series(list(site_keys.values()), energy_rows)
    return np.stack([horizon.periods(paths[site_keys[site.pk]], prices[s]) for s, site in enumerate(sites)])


def _market_periods(horizon: _Horizon, hashprice: float, token_price: float) -> tuple[np.ndarray, np.ndarray]:
    """Hashprice and inference price per period: one query of stored market prices."""
    market_keys = ("hashprice_usd_per_ph_day", "inference_price_usd_per_mtok")

    def market_rows(ranges: Ranges) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        rows = MarketPrice.objects.filter(_within("interval_start", ranges))
        offsets, hashprices, token_prices = _offset_columns(
            rows, "interval_start", ranges[0][0], "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok"
        )
        return {market_keys[0]: (offsets, hashprices), market_keys[1]: (offsets, token_prices)}

    paths = horizon.series(list(market_keys), market_rows)
    return horizon.periods(paths[market_keys[0]], hashprice, 0.0), horizon.periods(
        paths[market_keys[1]], token_price, 0.0
    )


def _demand_periods(horizon: _Horizon, *, seed: int) -> dict[str, np.ndarray]:
    """Regional demand per period. Nothing stores it; its history is the simulator's (what optimizer.inputs
    planned on so far), and the forecast sees only its past, as in the backtest."""
    current = _absolute_step(horizon.interval)
    demand_keys = {f"inference_demand_mtok_per_h.{region}": region for region in INFERENCE_REGIONS}

    def demand_rows(ranges: Ranges) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        count = current - _absolute_step(ranges[0][0]) + 1  # simulated, so the whole span (a gap saves nothing)
        simulated = simulate_inference_demand(ranges[0][0], count, STEP_MINUTES, seed=seed)
        return {key: (np.arange(count), simulated[region]) for key, region in demand_keys.items()}

    paths = horizon.series(list(demand_keys), demand_rows)
    demand: dict[str, np.ndarray] = {}
    for key, region in demand_keys.items():
        path = paths[key]
        if path is None:  # never: the simulator gives every region its whole span
            raise RuntimeError(f"no simulated {key}")
        demand[region] = horizon.periods(path, float(path[0]), 0.0)
    return demand


def _pue_periods(
    horizon: _Horizon, sites: tuple[ObservedSite, ...], pues: np.ndarray, held: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """PUE per site and period ``[S, T]``: from stored weather forecasts (readings after `at`) where there are
    any, else the current PUE held; one query. Also the temperature path ``[S, steps]`` (degC) it came from."""
    steps, interval = horizon.steps, horizon.interval
    pue_periods = np.repeat(pues[:, None], len(horizon.bounds) - 1, axis=1)
    paths_c = np.repeat(held[:, None], steps, axis=1)  # the current temperature held
    upcoming = WeatherReading.objects.filter(
        site_id__in=[site.pk for site in sites], observed_at__gt=horizon.at, observed_at__lt=interval + STEP * steps
    )
    offsets, site_ids, temperatures = _offset_columns(upcoming, "observed_at", interval, "site_id", "temperature_c")
    readings = _grouped(offsets, site_ids, temperatures, {site.pk: site.pk for site in sites})
    for s, site in enumerate(sites):
        if site.pk not in readings:
            continue
        offsets_ahead, values = readings[site.pk]
        path = paths_c[s]
        for k in np.argsort(offsets_ahead, kind="stable"):
            path[max(int(offsets_ahead[k]), 1) :] = values[k]  # a reading holds until the next one
        pue_periods[s] = horizon.periods(np.asarray(pue(site.cooling_type, path), dtype=float), pues[s])
        horizon.models[f"pue.{site.code}"] = "weather forecast"
    return pue_periods, paths_c


def _hall_pue_now(outlook: HorizonValues, s: int, hardware: tuple) -> dict[str, float]:
    """The snapshot's PUE of each machine's hall at site ``s`` now (empty without halls)."""
    if outlook.hall_pue is None:
        return {}
    return {hw.code: round(float(outlook.hall_pue[s, h, 0]), 4) for h, hw in enumerate(hardware)}


def _hall_periods(
    sites: Sequence[Site], machines: Sequence[tuple[str, str]], paths_c: np.ndarray, bounds: np.ndarray
) -> np.ndarray | None:
    """``[S, H, T]`` hall PUE per period: the mean over each period of the PUE at the temperature path (degC per
    5-minute step, the current reading first, so period 0 holds the observed value); None without machines."""
    if not machines:
        return None
    per_step = hall_pue_grid([site.cooling_type for site in sites], machines, paths_c)  # [S, H, steps]
    sums = np.concatenate([np.zeros((*per_step.shape[:2], 1)), np.cumsum(per_step, axis=2)], axis=2)
    bounds = np.asarray(bounds, dtype=int)
    means: np.ndarray = (sums[:, :, bounds[1:]] - sums[:, :, bounds[:-1]]) / np.diff(bounds)
    means[:, :, 0] = per_step[:, :, 0]
    return means


def _absolute_step(moment: datetime) -> int:
    """5-minute steps since the Unix epoch: the clock the forecast's daily and weekly terms see."""
    return int((moment - _EPOCH) // STEP)


def _offset_columns(queryset, time_field: str, since: datetime, *fields: str) -> tuple[np.ndarray, ...]:
    """Columns of ``queryset``: the 5-minute steps from ``since`` to ``time_field``, then ``fields`` as floats.

    The offset is read as a duration: the database hands it back several times faster than an aware datetime
    (about 1 against 5 microseconds a row on PostgreSQL), which is what four weeks of ten sites' prices cost.
    """
    offset = ExpressionWrapper(F(time_field) - Value(since, output_field=DateTimeField()), output_field=DurationField())
    rows = list(queryset.order_by().annotate(offset=offset).values_list("offset", *fields))
    if not rows:
        return (np.empty(0, dtype=np.int64), *(np.empty(0) for _ in fields))
    deltas, *values = zip(*rows, strict=True)
    step_s = STEP_MINUTES * 60
    steps = np.fromiter((d.days * DAY_STEPS + d.seconds // step_s for d in deltas), dtype=np.int64, count=len(rows))
    return (steps, *(np.array(column, dtype=float) for column in values))


def _grouped(offsets: np.ndarray, groups: np.ndarray, values: np.ndarray, keys: Mapping) -> dict:
    """``{keys[group]: (offsets, values)}`` for every group of ``keys`` that has rows."""
    result = {}
    for group, key in keys.items():
        mask = groups == group
        if mask.any():
            result[key] = (offsets[mask], values[mask])
    return result


def _on_grid(offsets: np.ndarray, values: np.ndarray, last: int) -> tuple[np.ndarray, int, np.ndarray] | None:
    """Values from the first stored step to ``last`` on the 5-minute grid, each missing step holding the value
    before it (what the optimizer would have acted on): ``(values, first offset, stored mask)``; None without
    any row."""
    keep = offsets <= last
    if not keep.any():
        return None
    offsets, values = offsets[keep], values[keep]
    first = int(offsets.min())
    grid = np.full(last - first + 1, np.nan)
    grid[offsets - first] = values
    stored = ~np.isnan(grid)
    filled = np.where(stored, np.arange(grid.size), 0)
    np.maximum.accumulate(filled, out=filled)
    return grid[filled], first, stored


Ranges = list[tuple[datetime, datetime]]  # inclusive time ranges, oldest first


def _within(field: str, ranges: Ranges) -> Q:
    condition = Q()
    for start, end in ranges:
        condition |= Q(**{f"{field}__range": (start, end)})
    return condition


def _forecast_series(
    keys: list[str],
    load: Callable[[Ranges], Mapping[str, tuple[np.ndarray, np.ndarray]]],
    at: datetime,
    interval: datetime,
    steps: int,
    models: dict[str, str],
) -> dict[str, np.ndarray | None]:
    """A path of ``steps`` 5-minute values from ``interval`` per series (``path[0]``: the latest stored value;
    None for a series with no stored value in the window), recording each series' model in ``models``.

    ``load(ranges)`` reads every series of one table over ``ranges`` (one query). When each series has a fit kept
    from an earlier tick (``FITS``, under an hour old), only what that fit needs is read: the values a day before
    the horizon (its seasonal lags) and the last two hours (the current value); where these overlap the values the
    fit was trained on they must be unchanged. Otherwise, or when they changed, the training window (29 days) is
    read and the stale series refitted. Cost on PostgreSQL for ten sites' prices: a few ms a tick, and a few
    tenths of a second on the refit tick once an hour (bench/optimizer_tick.py).
    """
    horizon = STEP * (steps - 1)
    lags = (interval - timedelta(days=1), interval - timedelta(days=1) + horizon)
    latest = (interval - STEP * (2 * FITS.refit_steps - 1), at)
    recent = [lags, latest] if lags[1] + STEP < latest[0] else [(lags[0], at)]
    current = _absolute_step(interval)
    if all(FITS.fresh(key, current + 1) for key in keys):
        paths = _forecast_window(keys, load, recent, interval, steps, models, refit=False)
        if paths is not None:
            return paths
    training = [(interval - TRAINING_WINDOW + STEP, at)]
    refitted = _forecast_window(keys, load, training, interval, steps, models, refit=True)
    if refitted is None:  # never: a refit window gives up on nothing
        raise RuntimeError("a refitted forecast window gave no series")
    return refitted


def _forecast_window(
    keys: list[str],
    load: Callable[[Ranges], Mapping[str, tuple[np.ndarray, np.ndarray]]],
    ranges: Ranges,
    interval: datetime,
    steps: int,
    models: dict[str, str],
    *,
    refit: bool,
) -> dict[str, np.ndarray | None] | None:
    """``_forecast_series`` on what ``ranges`` hold; None when a kept fit does not match it and ``refit`` is off.

    Steps between the ranges, and any missing step, hold the value before them (``_on_grid``): a kept fit reads
    only the steps the ranges cover.
    """
    origin = _absolute_step(ranges[0][0])
    last = _absolute_step(interval) - origin
    loaded = load(ranges)
    paths: dict[str, np.ndarray | None] = {}
    for key in keys:
        series = _on_grid(*loaded[key], last) if key in loaded else None
        if series is None:
            paths[key], models[key] = None, forecast.PERSISTENCE
            continue
        values, first, observed = series
        usable, fit = FITS.lookup(key, values, origin + first, observed)
        if not usable:
            if not refit:
                return None
            fit = FITS.refit(key, values, STEP_MINUTES, origin + first)
        paths[key], models[key] = forecast.forecast_path(
            values, steps - 1, STEP_MINUTES, fit=fit, origin=origin + first
        )
    return paths


# A kWh short of N-1 costs this share of what an unserved kWh costs (price + penalty): far above what a standby's
# energy costs (the standby is kept), and low enough that serving a contract whose N-1 cannot be had (its other site
# offline) still beats leaving it unserved, as long as energy costs under half the kWh's value.
N_MINUS_1_SHARE = 0.5


def commitments_at(*, at: datetime, site_codes: set[str]) -> tuple[tuple[Contract, ...], tuple[engine.Commitment, ...]]:
    """Active contracts running now, as engine commitments served on the sites they are placed on, each shortfall
    priced from its month so far (optimizer.credit_pricing)."""
    current = Placement.objects.current(at).select_related("site")
    contracts = tuple(
        Contract.objects.filter(status=ContractStatus.ACTIVE, starts_at__lte=at, ends_at__gt=at)
        .select_related("tier")
        .prefetch_related("tier__credit_rules", Prefetch("placements", queryset=current, to_attr="current_placements"))
        .order_by("pk")
    )
    shortfall = shortfall_prices(contracts, at=at, resale_usd_per_kwh=token_resale_usd_per_kwh(at)) if contracts else {}
    commitments = []
    for contract in contracts:
        # Served only where it is placed; placed only on sites that are all offline, it cannot be served at all
        # (an empty tuple), rather than anywhere (None is kept for a contract without placements).
        placed = tuple(sorted({p.site.code for p in contract.current_placements} & site_codes))
        price = shortfall[contract.pk]
        commitments.append(
            engine.Commitment(
                id=contract.pk,
                tier=contract.tier.code,
                capacity_kw=float(contract.capacity_kw),
                price_usd_per_kwh=float(contract.quoted_price_usd_per_kwh),
                penalty_usd_per_kwh=price.penalty,
                n_minus_1=contract.tier.requires_n_minus_1,
                allowed_sites=placed if contract.current_placements else None,
                min_sites=contract.tier.min_sites,
                # N-1 is a term of the tier (docs/economics.md): a kWh short of it costs half of what an unserved
                # kWh costs, whatever the month's credits so far.
                n_minus_1_usd_per_kwh=N_MINUS_1_SHARE * (float(contract.quoted_price_usd_per_kwh) + price.penalty),
            )
        )
    return contracts, tuple(commitments)


def token_resale_usd_per_kwh(at: datetime) -> float:
    """What a kWh of the best inference hardware earns on the token market at the newest token price (USD/kWh)."""
    market = _market_at(at)
    if market is None:
        return 0.0
    per_kw = [
        float(tokens) / float(kw)
        for tokens, kw in HardwareModel.objects.filter(kind=HardwareKind.INFERENCE, tokens_per_s__gt=0).values_list(
            "tokens_per_s", "power_kw_per_unit"
        )
        if tokens is not None  # always, by the filter
    ]
    return float(market.inference_price_usd_per_mtok) * max(per_kw, default=0.0) * 3600 / 1e6


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
