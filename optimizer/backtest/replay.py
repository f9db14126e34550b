"""The replay: forecasts, the rolling horizon, each strategy interval by interval, and the realized accounting."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from .. import engine
from ..engine import mara
from ..forecast import mape, pinball_loss
from ..streams import by_stream
from .day_ahead import with_day_ahead_known
from .history import INTERVAL_HOURS, STEP_MINUTES, History, iso
from .worlds import BacktestInputError, World

STRATEGIES = engine.STRATEGIES
INTERVALS_PER_HOUR = 60 // STEP_MINUTES
PERFECT_TIME_LIMIT_S = 900.0  # the bound is one big solve: a week of ten sites takes ~40 s


# Forecasts.


@dataclass(frozen=True, eq=False)
class Outlook:
    """Values per planning period: a forecast, or (``realized_outlook``) what happened."""

    energy_price_usd_per_mwh: np.ndarray  # [S, T]
    pue: np.ndarray  # [S, T]
    hashprice_usd_per_ph_day: np.ndarray  # [T]
    inference_price_usd_per_mtok: np.ndarray  # [T]
    inference_demand_mtok_per_h: Mapping[str, np.ndarray]  # region -> [T]
    hall_factor: np.ndarray | None = None  # [S, H, T] each machine's hall PUE over its site's; None = site PUE

    def problem(
        self,
        world: World,
        period_hours: np.ndarray,
        previous_units: np.ndarray | None,
        starts: Sequence[datetime] | None = None,
    ) -> engine.Problem:
        return world.problem(
            period_starts=starts,
            period_hours=period_hours,
            energy_price_usd_per_mwh=self.energy_price_usd_per_mwh,
            pue=self.pue,
            hashprice_usd_per_ph_day=self.hashprice_usd_per_ph_day,
            inference_price_usd_per_mtok=self.inference_price_usd_per_mtok,
            inference_demand_mtok_per_h=self.inference_demand_mtok_per_h,
            previous_units=previous_units,
            # a forecast PUE near 1 with a hall below its site's would read below 1: a hall's PUE is at least 1
            hall_pue=None if self.hall_factor is None else np.maximum(self.pue[:, None, :] * self.hall_factor, 1.0),
        )


def with_halls(outlook: Outlook, observed: History) -> Outlook:
    """The outlook with each machine's hall PUE: the last observed ratio of hall to site PUE held over the
    horizon (a forecast of the site's PUE moves its halls alike); unchanged if it has one or the world none."""
    if outlook.hall_factor is not None or observed.hall_factor is None:
        return outlook
    periods = outlook.pue.shape[1]
    return replace(outlook, hall_factor=np.repeat(observed.hall_factor[:, :, -1:], periods, axis=2))


# A forecast receives the history observed so far, whose last interval is the one being decided (its prices are
# published, as the live optimizer sees them), and the period bounds in intervals from that one ([T + 1],
# bounds[0] = 0, e.g. [0, 1, ..., 12, 24, ...]); it returns an Outlook of T periods. It is only ever handed the
# past, so no forecast can peek at the future. A learned forecast plugs in here.
Forecast = Callable[[History, np.ndarray], Outlook]


def persistence_forecast(observed: History, bounds: np.ndarray) -> Outlook:
    """The last observed values held over the whole horizon: the live optimizer's forecast (optimizer.inputs)."""
    periods = len(bounds) - 1

    def hold(values: np.ndarray) -> np.ndarray:
        return np.repeat(values[..., -1:], periods, axis=-1)

    return Outlook(
        energy_price_usd_per_mwh=hold(observed.energy_price_usd_per_mwh),
        pue=hold(observed.pue),
        hashprice_usd_per_ph_day=hold(observed.hashprice_usd_per_ph_day),
        inference_price_usd_per_mtok=hold(observed.inference_price_usd_per_mtok),
        inference_demand_mtok_per_h={r: hold(v) for r, v in observed.inference_demand_mtok_per_h.items()},
    )


def forecast_name(forecast: Forecast) -> str:
    """How a forecast is named in the summary: ``persistence``, ``ridge`` (``RidgeForecast.name``) or its type."""
    if forecast is persistence_forecast:
        return "persistence"
    return str(getattr(forecast, "name", None) or getattr(forecast, "__name__", None) or type(forecast).__name__)


# Forecast errors: MAPE leaves out actuals within this distance of zero (energy prices cross zero with solar surplus,
# where a percentage error means nothing); pinball loss is taken at the median, the quantile a point forecast is.
MAPE_FLOOR = {"energy_price_usd_per_mwh": 5.0}
PINBALL_QUANTILE = 0.5


class ForecastErrors:
    """Forecast against realized values per planning period, pooled over the replay, per series.

    Each tick's outlook is compared period by period (period 0, the interval being decided, is known and left out)
    with the mean of the realized values over the same intervals; periods reaching past the window are left out.
    """

    SERIES = (
        "energy_price_usd_per_mwh",
        "pue",
        "hashprice_usd_per_ph_day",
        "inference_price_usd_per_mtok",
        "inference_demand_mtok_per_h",
    )

    def __init__(self, history: History) -> None:
        def cumulative(values: np.ndarray) -> np.ndarray:
            values = np.atleast_2d(np.asarray(values, dtype=float))
            return np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1)

        demand = history.inference_demand_mtok_per_h
        self._regions = tuple(sorted(demand))
        self._sums = {
            "energy_price_usd_per_mwh": cumulative(history.energy_price_usd_per_mwh),
            "pue": cumulative(history.pue),
            "hashprice_usd_per_ph_day": cumulative(history.hashprice_usd_per_ph_day),
            "inference_price_usd_per_mtok": cumulative(history.inference_price_usd_per_mtok),
        }
        if self._regions:
            self._sums["inference_demand_mtok_per_h"] = cumulative(np.vstack([demand[r] for r in self._regions]))
        self._total = len(history)
        self._pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in self._sums}

    def add(self, t: int, bounds: np.ndarray, outlook: Outlook) -> None:
        """Score the outlook made at interval ``t`` over its periods 1.. that end inside the window."""
        ends = t + bounds[1:]
        valid = np.flatnonzero(ends <= self._total)
        valid = valid[valid >= 1]
        if valid.size == 0:
            return
        lo, hi = t + bounds[valid], t + bounds[valid + 1]
        forecast = {
            "energy_price_usd_per_mwh": outlook.energy_price_usd_per_mwh,
            "pue": outlook.pue,
            "hashprice_usd_per_ph_day": outlook.hashprice_usd_per_ph_day,
            "inference_price_usd_per_mtok": outlook.inference_price_usd_per_mtok,
        }
        if self._regions:
            forecast["inference_demand_mtok_per_h"] = np.vstack(
                [outlook.inference_demand_mtok_per_h[r] for r in self._regions]
            )
        for name, sums in self._sums.items():
            actual = (sums[:, hi] - sums[:, lo]) / (hi - lo)
            predicted = np.atleast_2d(np.asarray(forecast[name], dtype=float))[:, valid]
            self._pairs[name].append((actual, predicted))

    def summary(self) -> dict:
        """Per series: MAPE (percent), pinball loss at the median (series units), MAE, and the points scored."""
        result = {}
        for name, pairs in self._pairs.items():
            if not pairs:
                continue
            actual = np.concatenate([a.ravel() for a, _ in pairs])
            predicted = np.concatenate([p.ravel() for _, p in pairs])
            floor = MAPE_FLOOR.get(name, 1e-6)
            error = mape(actual, predicted, floor=floor)
            result[name] = {
                "mape_pct": None if np.isnan(error) else round(error, 3),
                "pinball_loss_q50": round(pinball_loss(actual, predicted, PINBALL_QUANTILE), 6),
                "mae": round(float(np.mean(np.abs(actual - predicted))), 6),
                "points": int(actual.size),
            }
            if floor > 1e-6:
                result[name]["mape_floor"] = floor
        return result


def realized_outlook(history: History) -> Outlook:
    """One period per interval with the realized values: what ``perfect`` and the accounting see."""
    return Outlook(
        energy_price_usd_per_mwh=history.energy_price_usd_per_mwh,
        pue=history.pue,
        hashprice_usd_per_ph_day=history.hashprice_usd_per_ph_day,
        inference_price_usd_per_mtok=history.inference_price_usd_per_mtok,
        inference_demand_mtok_per_h=history.inference_demand_mtok_per_h,
        hall_factor=history.hall_factor,
    )


@dataclass(frozen=True)
class Horizon:
    """The lp rolling horizon: ``fine_steps`` 5-minute periods, then ``coarse_hours`` periods up to ``hours``.

    The defaults are the live optimizer's (12 fine steps, HORIZON_HOURS = 6 h, hourly tail). ``replan_every``
    k > 1 applies the first k fine periods of each plan before solving again: k times fewer solves, but periods
    1..k-1 are acted on with information up to k - 1 intervals old.
    """

    fine_steps: int = 12
    hours: float = 6.0
    coarse_hours: float = 1.0
    replan_every: int = 1

    def __post_init__(self) -> None:
        if self.fine_steps < 1 or not 1 <= self.replan_every <= self.fine_steps:
            raise BacktestInputError("the horizon needs fine_steps >= 1 and 1 <= replan_every <= fine_steps")
        for name in ("hours", "coarse_hours"):
            intervals = getattr(self, name) * INTERVALS_PER_HOUR
            if intervals < 1 or abs(intervals - round(intervals)) > 1e-9:
                raise BacktestInputError(f"horizon {name} must be a positive whole number of 5-minute intervals")
        if round(self.hours * INTERVALS_PER_HOUR) < self.fine_steps:
            raise BacktestInputError("the horizon must be at least as long as its fine steps")

    def bounds(self) -> np.ndarray:
        """Period bounds in intervals from now: ``[0, 1, ..., fine_steps, +coarse, ..., hours x 12]``."""
        total = round(self.hours * INTERVALS_PER_HOUR)
        coarse = round(self.coarse_hours * INTERVALS_PER_HOUR)
        bounds = list(range(self.fine_steps + 1))
        while bounds[-1] < total:
            bounds.append(min(bounds[-1] + coarse, total))
        return np.array(bounds)

    def describe(self) -> str:
        """E.g. "12 x 5 min + 5 x 60 min (6 h), re-planned every interval"."""
        steps = np.diff(self.bounds()) * STEP_MINUTES
        groups: list[list[int]] = []
        for minutes in steps.tolist():
            if groups and groups[-1][1] == minutes:
                groups[-1][0] += 1
            else:
                groups.append([1, minutes])
        periods = " + ".join(f"{count} x {minutes} min" for count, minutes in groups)
        every = "every interval" if self.replan_every == 1 else f"every {self.replan_every} intervals"
        return f"{periods} ({steps.sum() / 60:g} h), re-planned {every}"


# Results.


@dataclass(frozen=True)
class Score:
    """Realized money of an allocation over a window (USD; the API's units for mara)."""

    mining_revenue: float
    inference_revenue: float
    contract_revenue: float
    energy_cost: float  # IT kW x PUE x price: cooling included
    carbon_cost: float
    switching_cost: float
    sla_penalty: float
    sla_shortfall_kwh: float  # committed kWh not served
    n_minus_1_shortfall_kwh: float  # committed kWh not covered had the largest site been lost
    profit_per_interval: np.ndarray = field(repr=False)  # [N]
    # Grid programs (a world's ``grid``; 0 without): capacity paid, event payments and penalties, the (expected)
    # coincident-peak charge on the load drawn, and the charge avoided against the load before each likely peak.
    as_capacity: float = 0.0
    event_payments: float = 0.0
    event_penalty: float = 0.0
    cp_charge: float = 0.0
    cp_avoided: float = 0.0
    # Of sla_penalty: the steering price of kWh short of N-1. The customer was served and is owed nothing: it is
    # what the plan was charged for its exposure, not a credit (docs/economics.md, "N-1").
    n_minus_1_exposure: float = 0.0

    @property
    def revenue(self) -> float:
        return self.mining_revenue + self.inference_revenue + self.contract_revenue

    @property
    def grid_net(self) -> float:
        return self.as_capacity + self.event_payments - self.event_penalty - self.cp_charge

    @property
    def profit(self) -> float:
        costs = self.energy_cost + self.carbon_cost + self.switching_cost + self.sla_penalty
        return self.revenue - costs + self.grid_net

    def streams(self) -> dict[str, float]:
        """Profit by stream (optimizer/streams.py; they add up to ``profit``). The coincident-peak charge avoided is
        beside them (summary.json ``cp_charge_avoided``), not in them: it is money not paid."""
        return by_stream(
            mining=self.mining_revenue,
            spot_inference=self.inference_revenue,
            sla_contracts=self.contract_revenue,
            as_capacity=self.as_capacity,
            event_payments=self.event_payments,
            penalties=self.sla_penalty + self.event_penalty,
            energy_cost=self.energy_cost,
            cp_charge=self.cp_charge,
            other_costs=self.carbon_cost + self.switching_cost,
        )


@dataclass(frozen=True, eq=False)
class Bound:
    """The perfect-foresight plan of a window, applied and scored like any strategy's."""

    units: np.ndarray  # [S, H, N]
    score: Score
    seconds: float
    notes: tuple[str, ...] = ()
    upper_profit: float | None = None  # proven: no allocation of the window earns more (None: score.profit)
    baseline: Score | None = None  # the do-nothing allocation of the window (``do_nothing_baseline``)

    @property
    def ceiling(self) -> float:
        """What capture is measured against: the proven upper bound, never below the perfect plan's profit."""
        return self.score.profit if self.upper_profit is None else max(self.upper_profit, self.score.profit)


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One strategy replayed over a window, next to the perfect-foresight bound of the same window."""

    strategy: str
    world: World
    interval_starts: tuple[datetime, ...]
    units: np.ndarray  # [S, H, N] applied whole units
    score: Score
    bound: Bound
    solve_seconds: float  # wall time of the strategy's planning over the window (build + solve)
    solver_statuses: dict[str, int] = field(default_factory=dict)  # lp: how its solves ended
    horizon: Horizon | None = None  # lp only
    notes: tuple[str, ...] = ()
    forecast: str | None = None  # lp only: the forecast it planned on
    forecast_errors: dict | None = None  # lp only: ForecastErrors.summary()

    @property
    def capture_ratio(self) -> float | None:
        """profit / the proven upper bound of the window (``Bound.ceiling``), so no strategy, perfect included, ever
        exceeds 1; None when the bound earns nothing (a ratio would be meaningless)."""
        bound = self.bound.ceiling
        return self.score.profit / bound if bound > 0 else None

    @property
    def controllable_margin(self) -> float | None:
        """What decisions can earn in this window: the proven upper bound less the do-nothing baseline's profit."""
        baseline = self.bound.baseline
        return None if baseline is None else self.bound.ceiling - baseline.profit

    @property
    def margin_capture(self) -> float | None:
        """(profit - baseline) / controllable margin: the share of what perfect foresight earns above doing nothing
        that the strategy earned (1 = all of it, 0 = no better than doing nothing, negative = worse); None without a
        margin. Revenue every strategy earns alike (the SLA book, demand-bound inference) cancels out of it."""
        margin, baseline = self.controllable_margin, self.bound.baseline
        if margin is None or baseline is None or margin <= 1e-9:
            return None
        return (self.score.profit - baseline.profit) / margin

    def summary(self) -> dict:
        """summary.json: the figures the issue asks for first, then the breakdown and how the run was made."""
        score, bound = self.score, self.bound.score
        return {
            "revenue": score.revenue,
            "energy_cost": score.energy_cost,
            "profit": score.profit,
            "perfect_profit": bound.profit,
            "perfect_upper_bound": self.bound.ceiling,
            "capture_ratio": self.capture_ratio,
            "baseline_profit": None if self.bound.baseline is None else self.bound.baseline.profit,
            "controllable_margin": self.controllable_margin,
            "margin_capture": self.margin_capture,
            "sla_shortfall_kwh": score.sla_shortfall_kwh,
            "sla_credits": score.sla_penalty - score.n_minus_1_exposure,
            "n_minus_1_exposure": score.n_minus_1_exposure,
            "streams": score.streams(),
            "cp_charge_avoided": score.cp_avoided,
            "solve_seconds": round(self.solve_seconds, 3),
            "strategy": self.strategy,
            "format": self.world.format,
            "money_unit": self.world.money_unit,
            "world": self.world.name,
            "intervals": len(self.interval_starts),
            "start": iso(self.interval_starts[0]),
            "end": iso(self.interval_starts[-1] + timedelta(minutes=STEP_MINUTES)),
            "mining_revenue": score.mining_revenue,
            "inference_revenue": score.inference_revenue,
            "contract_revenue": score.contract_revenue,
            "carbon_cost": score.carbon_cost,
            "switching_cost": score.switching_cost,
            "sla_penalty": score.sla_penalty,
            "as_capacity_revenue": score.as_capacity,
            "event_payments": score.event_payments,
            "event_penalty": score.event_penalty,
            "cp_charge": score.cp_charge,
            "perfect_streams": bound.streams(),
            "n_minus_1_shortfall_kwh": score.n_minus_1_shortfall_kwh,
            "perfect_revenue": bound.revenue,
            "perfect_energy_cost": bound.energy_cost,
            "perfect_solve_seconds": round(self.bound.seconds, 3),
            "horizon": self.horizon.describe() if self.horizon else None,
            "forecast": self.forecast,
            "forecast_errors": self.forecast_errors,
            "solver_statuses": dict(sorted(self.solver_statuses.items())),
            "notes": [*self.bound.notes, *self.notes],
        }


# The replay.

Progress = Callable[[int], None]


def run_backtest(
    world: World,
    history: History,
    strategy: str,
    *,
    forecast: Forecast = persistence_forecast,
    horizon: Horizon | None = None,
    bound: Bound | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay ``strategy`` over ``history`` and score it next to the perfect-foresight bound.

    Pass ``bound`` (``perfect_bound(world, history)``) to compare several strategies on one window without
    solving the bound again. ``progress`` is called with the number of intervals just planned.
    """
    if strategy not in STRATEGIES:
        raise BacktestInputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    _check(world, history)
    bound = bound or perfect_bound(world, history)
    if bound.units.shape[2] != len(history):
        raise BacktestInputError("the bound was computed for another window")
    tick = progress or (lambda n: None)
    horizon = horizon or Horizon()
    statuses: Counter = Counter()
    notes: list[str] = []
    errors = ForecastErrors(history) if strategy == "lp" else None
    started = time.perf_counter()
    if strategy == "perfect":
        units, score, seconds = bound.units, bound.score, bound.seconds
        tick(len(history))
    else:
        if strategy == "lp":
            units = _replay_lp(world, history, forecast, horizon, statuses, notes, tick, errors)
        else:
            units = _replay_myopic(world, history, forecast, strategy, tick)
        seconds = time.perf_counter() - started
        score = score_units(world, history, units)
    return BacktestResult(
        strategy=strategy,
        world=world,
        interval_starts=history.interval_starts,
        units=units,
        score=score,
        bound=bound,
        solve_seconds=seconds,
        solver_statuses=dict(statuses),
        horizon=horizon if strategy == "lp" else None,
        notes=tuple(notes),
        forecast=forecast_name(forecast) if strategy == "lp" else None,
        forecast_errors=errors.summary() if errors is not None else None,
    )


def _check(world: World, history: History) -> None:
    if len(history) == 0:
        raise BacktestInputError("the price history has no interval in the requested window")
    if history.energy_price_usd_per_mwh.shape[0] != len(world.sites):
        raise BacktestInputError("the price history does not have one energy price series per site of the world")
    if world.format == "mara" and history.mara_rows is None:
        raise BacktestInputError("a mara world needs the hackathon API's price rows")


def perfect_bound(world: World, history: History) -> Bound:
    """The engine over the realized window in one integer solve (prices, PUE and demand as they happened)."""
    _check(world, history)
    started = time.perf_counter()
    settings = replace(world.settings, time_limit_s=max(world.settings.time_limit_s, PERFECT_TIME_LIMIT_S))
    problem = realized_outlook(history).problem(
        world, np.full(len(history), INTERVAL_HOURS), None, history.interval_starts
    )
    solution = engine.solve(replace(problem, settings=settings))
    if not solution.ok:
        raise BacktestInputError(f"the perfect-foresight bound could not be solved: {solution.status}")
    units = _apply(world, history, solution.units)
    notes = []
    if solution.status != "optimal" or solution.mip_gap > 1e-9:
        notes.append(f"perfect: {solution.status} within a MILP gap of {solution.mip_gap:.4%} of its LP bound")
    if world.format == "energyarb" and np.array_equal(units, solution.units):
        score = _score_solution(solution)  # the solve already scored these very units
    else:
        score = score_units(world, history, units)
    upper = _proven_upper_profit(problem, settings, score.profit, notes)
    baseline = do_nothing_baseline(world, history)
    seconds = time.perf_counter() - started
    return Bound(units=units, score=score, seconds=seconds, notes=tuple(notes), upper_profit=upper, baseline=baseline)


def do_nothing_baseline(world: World, history: History) -> Score:
    """The do-nothing baseline: the allocation the engine picks for the window's first interval on that interval's
    own values (what one live tick would apply), then held unchanged for the whole window whatever happens:
    no reaction to prices, weather or demand. It is dispatched like any plan (whole units, power at the realized
    PUE, offline sites) and scored like any strategy; the controllable margin is the bound above it."""
    first = realized_outlook(history.window(0, 1)).problem(
        world, np.array([INTERVAL_HOURS]), None, history.interval_starts[:1]
    )
    solution = engine.solve(first, explain=False)
    held = (
        np.repeat(solution.units[:, :, :1], len(history), axis=2)
        if solution.ok
        else np.zeros((*world.inventory_units.shape, len(history)))
    )
    return score_units(world, history, _apply(world, history, held))


def _proven_upper_profit(problem: engine.Problem, settings: engine.Settings, profit: float, notes: list[str]) -> float:
    """The most any allocation of the window can earn: the optimum of the LP relaxation of the perfect-foresight
    problem (fractional units allowed), or the perfect profit itself when that was solved as an LP.

    The integer perfect plan is only proven within ``mip_rel_gap`` of this, so a strategy can earn a little more
    than it (a capture ratio of 1.00009 was seen at the default 0.1 %); nothing can earn more than the relaxation,
    every strategy's allocation being feasible for it. One LP solve of the window, a fraction of the MILP's time.
    """
    if not settings.integer:
        return profit
    relaxed = engine.solve(replace(problem, settings=replace(settings, integer=False)))
    if relaxed.status != "optimal":
        notes.append(f"perfect: its LP relaxation ended {relaxed.status}; capture is against the perfect plan")
        return profit
    return max(profit, relaxed.objective_usd)


def _replay_lp(
    world: World,
    history: History,
    forecast: Forecast,
    horizon: Horizon,
    statuses: Counter,
    notes: list[str],
    tick: Progress,
    errors: ForecastErrors | None = None,
) -> np.ndarray:
    """The engine every interval on the forecast, warm-started, with the applied allocation as previous units, as
    the live plan: each stop also charged the warm-up of its restart (``ROLLING_PLAN_STOP_WARMUP_SHARE``).

    ``errors`` (if given) scores every outlook against what then happened; it never feeds back into the plan.
    """
    bounds = horizon.bounds()
    period_hours = np.diff(bounds) * INTERVAL_HOURS
    total = len(history)
    units = np.zeros((len(world.sites), len(world.hardware), total))
    previous: np.ndarray | None = None
    warm: engine.Solution | None = None
    failures = 0
    t = 0
    while t < total:
        observed = history.window(0, t + 1)
        outlook = with_day_ahead_known(world, history, t, bounds, with_halls(forecast(observed, bounds), observed))
        if errors is not None:
            errors.add(t, bounds, outlook)
        starts = [history.interval_starts[t] + timedelta(minutes=STEP_MINUTES * int(b)) for b in bounds[:-1]]
        problem = outlook.problem(world, period_hours, previous, starts)
        rolling = replace(problem.settings, stop_warmup_share=engine.ROLLING_PLAN_STOP_WARMUP_SHARE)
        solution = engine.solve(replace(problem, settings=rolling), warm_start=warm, explain=False)
        statuses[solution.status] += 1
        if solution.ok:
            plan, warm, steps = solution.units, solution, min(horizon.replan_every, total - t)
        else:  # never crash: hold what runs (zero at the start) and plan again next interval
            held = previous if previous is not None else np.zeros(units.shape[:2])
            plan, warm, steps, failures = held[:, :, None], None, 1, failures + 1
        for k in range(steps):
            units[:, :, t + k] = dispatch(world, history, t + k, previous, plan[:, :, k])
            previous = units[:, :, t + k]
        t += steps
        tick(steps)
    if failures:
        notes.append(f"lp: {failures} solve(s) found no plan; the previous allocation was held for those intervals")
    return units


def _replay_myopic(world: World, history: History, forecast: Forecast, strategy: str, tick: Progress) -> np.ndarray:
    """greedy / seed once over the nowcast window: period t holds the forecast made at interval t for itself.

    Both decide each period from that period's values and the units they ran before, so one call over the window
    gives exactly what calling them interval by interval would.
    """
    now = np.array([0, 1])
    parts = [with_halls(forecast(history.window(0, t + 1), now), history.window(0, t + 1)) for t in range(len(history))]
    nowcast = Outlook(
        energy_price_usd_per_mwh=np.hstack([p.energy_price_usd_per_mwh for p in parts]),
        pue=np.hstack([p.pue for p in parts]),
        hashprice_usd_per_ph_day=np.concatenate([p.hashprice_usd_per_ph_day for p in parts]),
        inference_price_usd_per_mtok=np.concatenate([p.inference_price_usd_per_mtok for p in parts]),
        inference_demand_mtok_per_h={
            r: np.concatenate([p.inference_demand_mtok_per_h[r] for p in parts])
            for r in parts[0].inference_demand_mtok_per_h
        },
        hall_factor=None if history.hall_factor is None else np.concatenate([_halls(p) for p in parts], axis=2),
    )
    problem = nowcast.problem(world, np.full(len(history), INTERVAL_HOURS), None, history.interval_starts)
    planned = engine.greedy(problem) if strategy == "greedy" else engine.seed(problem)
    units = _apply(world, history, planned)
    tick(len(history))
    return units


def _halls(outlook: Outlook) -> np.ndarray:
    if outlook.hall_factor is None:
        raise ValueError("an outlook of a world with halls has hall PUE")
    return outlook.hall_factor


def _apply(world: World, history: History, planned: np.ndarray) -> np.ndarray:
    units = np.zeros(planned.shape)
    previous = None
    for t in range(planned.shape[2]):
        units[:, :, t] = dispatch(world, history, t, previous, planned[:, :, t])
        previous = units[:, :, t]
    return units


def dispatch(world: World, history: History, t: int, previous: np.ndarray | None, planned: np.ndarray) -> np.ndarray:
    """What can really run at interval ``t``: whole units within inventory, none at offline sites, no more starts
    than the ramp limit, and within each site's power with each machine at its hall's realized PUE (scaled down,
    rounding down).

    A plan made with the interval's own values passes unchanged; only periods planned ahead (``replan_every`` > 1,
    or a forecast that is not persistence) can meet a hotter, higher-PUE interval than they expected.
    """
    units = np.floor(np.clip(planned, 0.0, None) + 1e-6)
    units = np.minimum(units, world.inventory_units)
    units *= np.array([s.available for s in world.sites], dtype=float)[:, None]
    ramp = world.settings.ramp_limit_fraction
    if ramp is not None and previous is not None:
        units = np.minimum(units, np.floor(previous + np.maximum(ramp * world.inventory_units, 1.0) + 1e-9))
    kw = np.array([h.power_kw for h in world.hardware])
    hall_pue = history.pue[:, t, None] * (1.0 if history.hall_factor is None else history.hall_factor[:, :, t])
    facility_kw = (units * hall_pue) @ kw  # each machine at its hall's PUE
    capacity_kw = np.array([s.power_capacity_kw for s in world.sites])
    over = facility_kw > capacity_kw * (1 + 1e-9)
    if np.any(over):
        units[over] = np.floor(units[over] * (capacity_kw[over] / facility_kw[over])[:, None])
    return units


# Accounting.


def score_units(world: World, history: History, units: np.ndarray) -> Score:
    """Realized money of ``units`` ``[S, H, N]``: the API's arithmetic for mara, the engine's ``evaluate`` else.

    Every strategy starts from the same state: nothing running before the window, so the first interval's starts
    are free (the engine's convention without previous units).
    """
    if world.format == "mara":
        return _score_mara(world, history, units)
    problem = realized_outlook(history).problem(
        world, np.full(len(history), INTERVAL_HOURS), None, history.interval_starts
    )
    solution = engine.evaluate(problem, units)
    if not solution.ok:
        raise BacktestInputError("the allocation could not be scored: " + " ".join(solution.explanation))
    return _score_solution(solution)


def _score_solution(solution: engine.Solution) -> Score:
    """A Score from the engine's ledger of a window of 5-minute periods."""
    ledger, totals = solution.ledger, solution.totals
    per_site = (
        ledger.mining_revenue_usd
        + ledger.inference_revenue_usd
        + ledger.contract_revenue_usd
        - ledger.energy_cost_usd
        - ledger.carbon_cost_usd
        - ledger.switching_cost_usd
    )
    n1_kwh = sum(s.kw * INTERVAL_HOURS for s in solution.shortfalls if s.constraint.startswith("n_minus_1["))
    grid = {name: np.asarray(values, dtype=float) for name, values in solution.grid_ledger.items()}
    zero = np.zeros(per_site.shape[1])
    as_capacity, payments = grid.get("as_capacity_usd", zero), grid.get("event_payment_usd", zero)
    penalty, cp_charge = grid.get("event_penalty_usd", zero), grid.get("cp_expected_charge_usd", zero)
    return Score(
        mining_revenue=totals.mining_revenue_usd,
        inference_revenue=totals.inference_revenue_usd,
        contract_revenue=totals.contract_revenue_usd,
        energy_cost=totals.energy_cost_usd,
        carbon_cost=totals.carbon_cost_usd,
        switching_cost=totals.switching_cost_usd,
        sla_penalty=totals.penalty_usd,
        sla_shortfall_kwh=float(sum(c.unserved_kwh for c in solution.commitments)),
        n_minus_1_shortfall_kwh=float(n1_kwh),
        profit_per_interval=per_site.sum(axis=0) - ledger.penalty_usd + as_capacity + payments - penalty - cp_charge,
        as_capacity=float(as_capacity.sum()),
        event_payments=float(payments.sum()),
        event_penalty=float(penalty.sum()),
        cp_charge=float(cp_charge.sum()),
        cp_avoided=float(grid.get("cp_charge_avoided_usd", zero).sum()),
        n_minus_1_exposure=float(sum(c.n_minus_1_usd for c in solution.commitments)),
    )


def _score_mara(world: World, history: History, units: np.ndarray) -> Score:
    """GET /machines's arithmetic per interval, summed: revenue by machine type, cost = total watts x energy_price."""
    fields = [mara.API_FIELDS.get(code, code) for code in world.hardware_codes]
    inventory, power_w = world.mara_api
    miners = {mara.API_FIELDS.get(code, code) for code in inventory["miners"]}
    mining = inference = energy = 0.0
    profit = np.zeros(len(history))
    for t, row in enumerate(history.mara_rows or ()):  # a mara history has its rows (`_check`)
        allocation = {name: int(n) for name, n in zip(fields, units[0, :, t], strict=True)}
        report = mara.score_allocation(allocation, row, inventory=inventory, power_w=power_w)
        mining += sum(value for name, value in report.revenue.items() if name in miners)
        inference += sum(value for name, value in report.revenue.items() if name not in miners)
        energy += report.total_power_cost
        profit[t] = report.profit
    return Score(mining, inference, 0.0, energy, 0.0, 0.0, 0.0, 0.0, 0.0, profit)
