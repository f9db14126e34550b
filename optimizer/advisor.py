"""Claude as an advisor on an applied optimization run: a narrative, and adjustments it cannot force.

``advise_run(run_id=...)`` is called by the Celery task ``optimizer.tasks.advise_optimization``, never inside a
web request. It

1. claims the run: compare-and-swap ``advisor_status`` not_requested | unavailable -> pending (a pending claim
   older than the task's hard time limit is taken over: its worker died). ``advised_at`` holds the claim time
   and is the token of the final compare-and-swap, so only the claimant records a verdict;
2. rebuilds the run's problem (``rebuild_problem``, below) and writes a compact summary of the state and of the
   plan (``summarize_run``: a few hundred tokens, a line per site, not JSON dumps);
3. asks Claude through ``optimizer.clients.claude`` for a narrative and, through the ``propose_adjustments``
   tool, for integer changes to the units running now;
4. judges a proposal (``judge_adjustments``): the adjusted allocation replaces the first period of the engine's
   plan, is checked against every hard constraint with ``engine.allocation_violations`` and re-scored over
   the run's horizon with ``engine.evaluate``, side by side with the engine's plan scored the same way;
5. records the verdict next to the narrative and, only when the adjustment is feasible and not worse and the
   run is still the latest applied run, applies it (``SiteInventory.units_running`` and the run's
   ``Allocation`` rows) in the same transaction.

No key, a timeout, HTTP 5xx / 529, a connection failure, an unusable reply or a problem that cannot be rebuilt
leave the engine's plan in force and set ``advisor_status`` to ``unavailable`` with the reason in
``advisor_verdict``. A narrative without a tool call (or with an empty one) is ``no_proposal``.

Rebuilding the run's problem. The engine's ``Problem`` is not stored with a run, so it is rebuilt:
``build_inputs(at=run.started_at)`` supplies the structure (sites, hardware, inventory, commitments, the
regional demand of the run's interval, settings), then everything the run saw that may have moved since is put
back from the run's own record: energy prices, PUE (recomputed exactly from the stored temperature; the stored
value is rounded) and market prices from ``run.inputs``; for the later periods, the values the run planned on
(``run.inputs["forecast"]["periods"]``: the forecast of prices, PUE and regional demand), or, for a run stored
before forecasts were recorded, the first period's values held over the horizon; the allocation running before the
run from
``run.inputs["previous_units"]`` when present, else from the allocation of the run applied before it (zeros
when there was none). Physical limits (capacity, inventory, maintenance) are today's: an accepted adjustment is
applied now. The engine's plan beyond the first period is not stored either: it is re-solved with the run's
strategy, and its first period is replaced by the run's stored allocation, which is what actually runs.

Why "first period + the engine's tail" rather than "the allocation held for the whole horizon": the plan
changes over the horizon (inference follows regional demand), and only its first period is applied before the
next run re-decides. Scoring a held allocation would reward proposals suited to the average of the next hours
rather than to now. With the tail fixed to the engine's, the comparison isolates exactly what the adjustment
changes, switching costs in and out included, and "not worse" is judged against the engine's own objective.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sites.models import SiteInventory
from sites.simulation import pue as pue_at

from . import engine
from .choices import AdvisorStatus, RunStatus
from .clients import claude
from .clients.claude import Adjustment, AdvisorReplyInvalid, AdvisorUnavailable
from .inputs import DEFAULT_TEMPERATURE_C, Inputs, StaleInputs, build_inputs
from .models import Allocation, OptimizationRun

logger = logging.getLogger(__name__)

ALLOCATION_FIELDS = ["units_running", "it_power_kw", "facility_power_kw", "revenue_usd_per_h", "energy_cost_usd_per_h"]
MAX_BINDING_LINES = 6
MAX_VIOLATIONS_SHOWN = 5
# "Not worse": the adjusted plan's profit may trail the engine's by solver noise only (USD over the horizon).
NOT_WORSE_TOLERANCE_USD = 1e-6
NOT_WORSE_TOLERANCE_REL = 1e-9

SYSTEM_PROMPT = (
    "You advise the operators of energyarb, a fleet of data centers that decides every 5 minutes how many units "
    "of each hardware model run at each site: Bitcoin miners or AI-inference machines. The aim is the highest "
    "profit (mining + inference + SLA contract revenue minus energy incl. cooling, carbon, switching costs and SLA "
    "penalties) while every commitment is served. The plan you are shown comes from an exact MILP solver and is "
    "usually optimal, so most of the time the right answer is an explanation and no proposal. Any proposal you "
    "make is checked against every constraint and re-scored by the solver, and applied only if it is feasible and "
    "not worse. Be concrete and brief; use site and hardware codes exactly as given."
)

TASK_PROMPT = (
    "In at most 120 words, explain this plan to an operator: what runs where and why, and what limits profit. "
    "Then, only if you see a change to the units running now that raises profit over the horizon without breaking "
    "power (IT kW x PUE <= capacity), inventory (running <= available) or a commitment, call propose_adjustments "
    "with integer unit deltas; otherwise do not call it."
)


class CannotRebuild(Exception):
    """The run's problem or plan cannot be reconstructed faithfully; no proposal can be judged on it."""


def advice_soft_time_limit_s() -> int:
    """Soft time limit of the advisor task: one Claude request (all attempts), a re-solve and two scorings."""
    solver_s = float(settings.ENERGYARB["SOLVER_TIME_LIMIT_S"])
    return math.ceil(claude.request_seconds_at_most() + 3 * solver_s + 30)


def advice_time_limit_s() -> int:
    """Hard time limit of the advisor task; a pending claim older than this belonged to a dead worker."""
    return advice_soft_time_limit_s() + 30


# ----------------------------------------------------------------------------------------------- the service


def advise_run(*, run_id: int, raise_retryable: bool = False) -> OptimizationRun:
    """Ask Claude about an applied run, judge its proposal, record the verdict, apply it if it earns its place.

    Never raises for a domain reason: a bug or the task's soft time limit is recorded as ``unavailable`` too.
    The one exception: when ``raise_retryable`` is set (the task has a retry left), a transient
    ``AdvisorUnavailable`` (timeout, 5xx, 529, 429, connection) is recorded, then re-raised so the task retries
    once. Raises ``OptimizationRun.DoesNotExist`` for an unknown id. A run that was not applied is not advised.
    Query cost: a handful of reads and writes plus ``build_inputs`` (about ten queries).
    """
    run = OptimizationRun.objects.get(pk=run_id)
    if run.status != RunStatus.SUCCEEDED or not run.is_applied:
        logger.info("Run %s has no applied plan (%s); no advice.", run_id, run.status)
        return run
    claimed_at = _claim(run_id, timezone.now())
    if claimed_at is None:
        logger.info("Advice on run %s is already done or in progress.", run_id)
        return OptimizationRun.objects.get(pk=run_id)
    record = _Recorder(run_id=run_id, claimed_at=claimed_at)
    try:
        _advise(run, record)
    except AdvisorUnavailable as exc:
        retrying = exc.retryable and raise_retryable
        again = " Retrying once." if retrying else ""
        record.unavailable(f"Claude unavailable: {exc.reason}. The engine's plan stays in force.{again}")
        if retrying:
            raise
    except AdvisorReplyInvalid as exc:
        record.unavailable(
            f"Claude's reply was unusable: {exc.reason}. The engine's plan stays in force.", narrative=exc.narrative
        )
    except CannotRebuild as exc:
        record.unavailable(f"Advice not possible: {exc}. The engine's plan stays in force.")
    except Exception as exc:  # a bug or the soft time limit must not leave the claim pending
        logger.exception("Advice on run %s failed", run_id)
        record.unavailable(f"Advice failed: {type(exc).__name__}: {exc}. The engine's plan stays in force.")
    return OptimizationRun.objects.get(pk=run_id)


def _claim(run_id: int, now: datetime) -> datetime | None:
    """not_requested | unavailable | abandoned pending -> pending; returns the claim time (the CAS token)."""
    abandoned = now - timedelta(seconds=advice_time_limit_s() + 30)
    claimable = Q(advisor_status__in=(AdvisorStatus.NOT_REQUESTED, AdvisorStatus.UNAVAILABLE)) | Q(
        advisor_status=AdvisorStatus.PENDING, advised_at__lt=abandoned
    )
    claimed = OptimizationRun.objects.filter(claimable, pk=run_id).update(
        advisor_status=AdvisorStatus.PENDING, advised_at=now
    )
    return now if claimed else None


@dataclass
class _Recorder:
    """Writes the final advisor fields with a compare-and-swap on (pending, claim time)."""

    run_id: int
    claimed_at: datetime
    model: str = field(default_factory=lambda: settings.ANTHROPIC_MODEL)

    def write(self, status: str, *, verdict: str, narrative: str = "", proposal: dict | None = None) -> bool:
        written = OptimizationRun.objects.filter(
            pk=self.run_id, advisor_status=AdvisorStatus.PENDING, advised_at=self.claimed_at
        ).update(
            advisor_status=status,
            advisor_model=self.model[:80],
            advisor_narrative=narrative,
            advisor_proposal=proposal or {},
            advisor_verdict=verdict,
            advised_at=max(timezone.now(), self.claimed_at),
        )
        if not written:
            logger.warning("Advice on run %s was taken over by another worker; verdict dropped.", self.run_id)
        return bool(written)

    def unavailable(self, verdict: str, *, narrative: str = "") -> None:
        self.write(AdvisorStatus.UNAVAILABLE, verdict=verdict, narrative=narrative)


class _LostClaim(Exception):
    """Raised inside the apply transaction to roll it back when another worker owns the advice."""


def _advise(run: OptimizationRun, record: _Recorder) -> None:
    if not claude.is_configured():  # checked first: nothing is rebuilt or sent without a key
        raise AdvisorUnavailable("no ANTHROPIC_API_KEY is configured")
    rebuilt = rebuild_problem(run)
    problem = rebuilt.problem
    reply = claude.ask_for_advice(
        system=SYSTEM_PROMPT,
        prompt=summarize_run(run, rebuilt),
        site_codes=problem.site_codes,
        hardware_codes=problem.hardware_codes,
    )
    record.model = reply.model
    logger.info(
        "Advice on run %s from %s: %s input and %s output tokens, %s.",
        run.pk,
        reply.model,
        reply.input_tokens,
        reply.output_tokens,
        "no proposal" if not reply.proposal else f"{len(reply.proposal)} adjustments",
    )
    if not reply.proposal:
        verdict = "No adjustments proposed: the engine's plan stands."
        record.write(AdvisorStatus.NO_PROPOSAL, verdict=verdict, narrative=reply.narrative)
        return
    try:
        plan = engine_plan(run, rebuilt)
    except CannotRebuild as exc:
        judgement = Judgement(
            accepted=False,
            verdict=f"Rejected: the proposal cannot be verified ({exc}). The engine's plan stays in force.",
            record={"adjustments": [a.as_dict() for a in reply.proposal], "applied": False},
        )
    else:
        judgement = judge_adjustments(problem, plan, reply.proposal)
    try:
        with transaction.atomic():
            _record_judgement(run, rebuilt, judgement, reply.narrative, record)
    except _LostClaim:
        pass


def _record_judgement(
    run: OptimizationRun, rebuilt: RebuiltRun, judgement: Judgement, narrative: str, record: _Recorder
) -> None:
    """Inside a transaction: apply an accepted adjustment if the run is still in force, then record the verdict.

    The inventory rows are locked first, in the same order as ``services.store_and_apply`` locks them: a run
    being applied concurrently either committed before (it is then the latest and this advice is not applied)
    or waits for this transaction and overwrites the units after it, as the newer plan should.
    """
    status, verdict, proposal = AdvisorStatus.REJECTED, judgement.verdict, dict(judgement.record)
    if judgement.accepted:
        inventories = list(SiteInventory.objects.select_for_update().filter(site__in=rebuilt.inputs.sites))
        latest = OptimizationRun.objects.latest_applied()
        if latest is None or latest.pk != run.pk:
            newer = f"run {latest.pk}" if latest else "no run"
            verdict = (
                f"Not applied: {judgement.verdict}, but {newer} has replaced this run's plan since; "
                "the newer plan stays in force."
            )
        else:
            _apply(run, rebuilt, judgement, inventories)
            status, verdict = AdvisorStatus.ACCEPTED, f"Accepted and applied: {judgement.verdict}."
            proposal["applied"] = True
    if not record.write(status, verdict=verdict, narrative=narrative, proposal=proposal):
        raise _LostClaim


def _apply(run: OptimizationRun, rebuilt: RebuiltRun, judgement: Judgement, inventories: list) -> None:
    """Make the adjusted first period the running state: inventory units and the run's allocation rows.

    Row economics follow ``services.store_and_apply`` (site revenue shared by IT kW; energy = kW x PUE x price).
    The run's totals (``objective_usd_per_h`` ...) stay the engine's; the adjusted plan's score is in
    ``advisor_proposal``.
    """
    problem, solution, units = rebuilt.problem, judgement.solution, judgement.units_now
    if solution is None or units is None:
        raise ValueError("only an accepted judgement is applied")
    kw = np.array([hw.power_kw for hw in problem.hardware])
    pue0, price0, hours0 = problem.pue[:, 0], problem.energy_price_usd_per_mwh[:, 0], float(problem.period_hours[0])
    ledger = solution.ledger
    existing = {(a.site_id, a.hardware_model_id): a for a in Allocation.objects.filter(run=run)}
    create, update, delete = [], [], []
    for s, site in enumerate(rebuilt.inputs.sites):
        site_revenue = (
            ledger.mining_revenue_usd[s, 0] + ledger.inference_revenue_usd[s, 0] + ledger.contract_revenue_usd[s, 0]
        )
        for h, hardware in enumerate(rebuilt.inputs.hardware):
            row = existing.get((site.pk, hardware.pk))
            n = int(units[s, h])
            if n <= 0:
                if row is not None:
                    delete.append(row.pk)
                continue
            it_kw = n * kw[h]
            share = it_kw / max(ledger.it_kw[s, 0], 1e-9)
            values = {
                "units_running": n,
                "it_power_kw": _dec(it_kw, 3),
                "facility_power_kw": _dec(it_kw * pue0[s], 3),
                "revenue_usd_per_h": _dec(site_revenue * share / hours0, 4),
                "energy_cost_usd_per_h": _dec(it_kw * pue0[s] * price0[s] / 1000, 4),
            }
            if row is None:
                create.append(Allocation(run=run, site=site, hardware_model=hardware, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                update.append(row)
    Allocation.objects.filter(pk__in=delete).delete()
    Allocation.objects.bulk_update(update, ALLOCATION_FIELDS)
    Allocation.objects.bulk_create(create)
    site_index = {site.pk: s for s, site in enumerate(rebuilt.inputs.sites)}
    hw_index = {hw.pk: h for h, hw in enumerate(rebuilt.inputs.hardware)}
    for inventory in inventories:
        wanted = int(units[site_index[inventory.site_id], hw_index[inventory.hardware_model_id]])
        inventory.units_running = min(wanted, inventory.units_available)
    SiteInventory.objects.bulk_update(inventories, ["units_running"])


def _dec(value: float, places: int) -> Decimal:
    """A float as a Decimal with ``places`` decimals (the rounding of ``services.store_and_apply``)."""
    return Decimal(repr(round(float(value), places))).quantize(Decimal(1).scaleb(-places))


# ------------------------------------------------------------------------------------ rebuilding the problem


@dataclass(frozen=True)
class RebuiltRun:
    """The run's problem as it was solved, with the rows behind it and the allocation it applied."""

    problem: engine.Problem
    inputs: Inputs  # site and hardware rows in the problem's order
    units_now: np.ndarray  # [S, H] the run's stored allocation: what runs now


def rebuild_problem(run: OptimizationRun) -> RebuiltRun:
    """The engine problem of ``run`` (see the module docstring for what comes from where)."""
    if run.started_at is None:
        raise CannotRebuild("the run never started")
    try:
        inputs = build_inputs(at=run.started_at, strategy=run.strategy)
    except StaleInputs as exc:
        raise CannotRebuild(f"the run's inputs cannot be rebuilt: {exc}") from exc
    problem = inputs.problem
    snapshot = run.inputs or {}
    try:
        seen = snapshot["sites"]
        if set(seen) != set(problem.site_codes):
            changed = sorted(set(seen) ^ set(problem.site_codes))
            raise CannotRebuild(f"the sites changed since the run ({', '.join(changed)})")
        prices, pues = [], []
        for site in inputs.sites:
            entry = seen[site.code]
            temperature = entry["temperature_c"]
            value = float(pue_at(site.cooling_type, DEFAULT_TEMPERATURE_C if temperature is None else temperature))
            if abs(value - float(entry["pue"])) > 1e-4:
                raise CannotRebuild(f"{site.code}'s cooling changed since the run")
            pues.append(value)
            prices.append(float(entry["energy_price_usd_per_mwh"]))
        market = snapshot["market"]
        now = _Horizon(
            energy_price=np.array(prices)[:, None],
            pue=np.array(pues)[:, None],
            hashprice=np.array([float(market["hashprice_usd_per_ph_day"])]),
            inference_price=np.array([float(market["inference_price_usd_per_mtok"])]),
            demand=problem.market.inference_demand_mtok_per_h,
        )
        horizon = _planned_horizon(snapshot, problem, now)
    except (KeyError, TypeError, ValueError) as exc:
        raise CannotRebuild(f"the run's stored inputs are incomplete ({type(exc).__name__}: {exc})") from exc
    problem = dataclasses.replace(
        problem,
        pue=horizon.pue,
        energy_price_usd_per_mwh=horizon.energy_price,
        market=engine.Market(
            hashprice_usd_per_ph_day=horizon.hashprice,
            inference_price_usd_per_mtok=horizon.inference_price,
            inference_demand_mtok_per_h=horizon.demand,
        ),
        previous_units=_previous_units(run, problem),
    )
    rows = run.allocations.values_list("site__code", "hardware_model__code", "units_running")
    return RebuiltRun(problem=problem, inputs=inputs, units_now=_grid(problem, rows))


@dataclass(frozen=True, eq=False)
class _Horizon:
    """Per-period values of a rebuilt problem: ``[S, T]`` energy price and PUE, ``[T]`` market prices, and the
    regional demand ``{region: [T]}``."""

    energy_price: np.ndarray
    pue: np.ndarray
    hashprice: np.ndarray
    inference_price: np.ndarray
    demand: Mapping[str, np.ndarray]


def _planned_horizon(snapshot: dict, problem: engine.Problem, now: _Horizon) -> _Horizon:
    """What the run planned on, period by period; ``now`` holds the first period's values (one column each).

    With the run's recorded forecast (``snapshot["forecast"]["periods"]``, see ``inputs.HorizonValues.record``),
    its values for the later periods. The first period stays ``now`` (exact where the record is rounded: the PUE is
    recomputed from the temperature; the record's first period is these observed values by construction), as do
    later periods that held the current PUE, and the demand's first period stays the rebuilt inputs' (the
    simulator's, unrounded). A run stored before forecasts were
    recorded keeps ``now`` held over the horizon, with the rebuilt inputs' demand, as the advisor did then.
    Raises CannotRebuild when the record does not fit the rebuilt problem (its horizon or its regions changed);
    KeyError, TypeError or ValueError when the record is malformed.
    """
    n_periods = problem.shape[2]
    regions = problem.market.inference_demand_mtok_per_h
    periods = (snapshot.get("forecast") or {}).get("periods")
    if not periods:
        return _Horizon(
            energy_price=np.repeat(now.energy_price, n_periods, axis=1),
            pue=np.repeat(now.pue, n_periods, axis=1),
            hashprice=np.repeat(now.hashprice, n_periods),
            inference_price=np.repeat(now.inference_price, n_periods),
            demand=regions,
        )
    stored_demand = periods["inference_demand_mtok_per_h"]
    if set(stored_demand) != set(regions):
        changed = sorted(set(stored_demand) ^ set(regions))
        raise CannotRebuild(f"the inference regions changed since the run ({', '.join(changed)})")
    energy = [periods["energy_price_usd_per_mwh"][code] for code in problem.site_codes]
    pue = [periods["pue"][code] for code in problem.site_codes]
    hashprice, inference_price = periods["hashprice_usd_per_ph_day"], periods["inference_price_usd_per_mtok"]
    demand = {region: stored_demand[region] for region in regions}
    lengths = sorted({len(values) for values in (*energy, *pue, hashprice, inference_price, *demand.values())})
    if lengths != [n_periods]:
        stored = "/".join(map(str, lengths))
        raise CannotRebuild(f"the planning horizon changed since the run ({stored} periods stored, {n_periods} now)")
    horizon = _Horizon(
        energy_price=np.array(energy, dtype=float).reshape(len(energy), n_periods),
        pue=np.array(pue, dtype=float).reshape(len(pue), n_periods),
        hashprice=np.array(hashprice, dtype=float),
        inference_price=np.array(inference_price, dtype=float),
        demand={region: np.array(values, dtype=float) for region, values in demand.items()},
    )
    # The record rounds PUE to 4 places: a period that held the current PUE gets the exact value back.
    held = np.abs(horizon.pue - np.round(now.pue, 4)) < 1e-9
    horizon.pue[held] = np.broadcast_to(now.pue, horizon.pue.shape)[held]
    horizon.energy_price[:, :1], horizon.pue[:, :1] = now.energy_price, now.pue
    horizon.hashprice[0], horizon.inference_price[0] = now.hashprice[0], now.inference_price[0]
    for region, values in horizon.demand.items():
        values[0] = regions[region][0]
    return horizon


def _previous_units(run: OptimizationRun, problem: engine.Problem) -> np.ndarray:
    """The allocation running before ``run``: stored with the run if it was, else the previous applied run's."""
    stored = (run.inputs or {}).get("previous_units")
    if isinstance(stored, dict):
        return _grid(problem, ((site, hw, n) for site, units in stored.items() for hw, n in units.items()))
    before = (
        OptimizationRun.objects.applied()
        .exclude(pk=run.pk)
        .filter(started_at__lt=run.started_at)
        .order_by("-started_at", "-id")
        .first()
    )
    if before is None:
        return np.zeros(problem.inventory_units.shape)
    rows = before.allocations.values_list("site__code", "hardware_model__code", "units_running")
    return _grid(problem, rows)


def _grid(problem: engine.Problem, rows: Iterable[tuple[str, str, float]]) -> np.ndarray:
    """``[S, H]`` units from (site code, hardware code, units) rows; codes the problem does not know are ignored."""
    sites = {code: s for s, code in enumerate(problem.site_codes)}
    hardware = {code: h for h, code in enumerate(problem.hardware_codes)}
    grid = np.zeros(problem.inventory_units.shape)
    for site, hw, units in rows:
        if site in sites and hw in hardware:
            grid[sites[site], hardware[hw]] = float(units)
    return grid


def engine_plan(run: OptimizationRun, rebuilt: RebuiltRun) -> np.ndarray:
    """``[S, H, T]``: the run's strategy re-solved, with its first period set to the allocation actually applied."""
    solution = engine.run_strategy(run.strategy, rebuilt.problem)
    if not solution.ok:
        raise CannotRebuild(f"the engine could not re-solve the run's problem ({solution.status})")
    plan = np.array(solution.units, dtype=float)
    plan[:, :, 0] = rebuilt.units_now
    return plan


# -------------------------------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Judgement:
    """The verdict on a proposal, the JSON stored with it, and (when accepted) what to apply."""

    accepted: bool
    verdict: str  # the full verdict of a rejection; for an acceptance, the finding the recorded verdict quotes
    record: dict
    units_now: np.ndarray | None = None  # [S, H] adjusted first period (accepted only)
    solution: engine.Solution | None = None  # the adjusted plan, scored (accepted only)


def judge_adjustments(problem: engine.Problem, plan: np.ndarray, adjustments: Sequence[Adjustment]) -> Judgement:
    """Feasible and not worse than ``plan``? Pure: no database.

    The adjustments (summed per site and hardware) change the first period of ``plan``; the result is checked
    against every hard constraint, then both plans are scored over the whole horizon by ``engine.evaluate``.
    """
    horizon_h = float(problem.period_hours.sum())
    record: dict = {"adjustments": [a.as_dict() for a in adjustments], "horizon_hours": horizon_h, "applied": False}
    delta = _grid(problem, ())
    for a in adjustments:
        delta[problem.site_codes.index(a.site), problem.hardware_codes.index(a.hardware)] += a.units_delta
    adjusted = np.array(plan, dtype=float)
    adjusted[:, :, 0] += delta
    violations = engine.allocation_violations(problem, adjusted)
    if violations:
        record["violations"] = list(violations)
        shown = "; ".join(violations[:MAX_VIOLATIONS_SHOWN])
        more = f" (and {len(violations) - MAX_VIOLATIONS_SHOWN} more)" if len(violations) > MAX_VIOLATIONS_SHOWN else ""
        n = len(violations)
        verdict = (
            f"Rejected: infeasible, it breaks {n} constraint{'s' if n > 1 else ''}: {shown}{more}. "
            "The engine's plan stays in force."
        )
        return Judgement(accepted=False, verdict=verdict, record=record)
    baseline = engine.evaluate(problem, plan)
    if not baseline.ok:
        return Judgement(
            accepted=False,
            verdict=f"Rejected: the run's own plan no longer scores ({baseline.status}: "
            f"{' '.join(baseline.explanation[1:3])}), so nothing can be compared. The engine's plan stays in force.",
            record=record,
        )
    scored = engine.evaluate(problem, adjusted)
    if not scored.ok:
        return Judgement(
            accepted=False,
            verdict=f"Rejected: the adjusted plan could not be scored ({scored.status}). "
            "The engine's plan stays in force.",
            record=record,
        )
    engine_usd, adjusted_usd = float(baseline.objective_usd), float(scored.objective_usd)
    difference = adjusted_usd - engine_usd
    record.update(
        engine_profit_usd=round(engine_usd, 4),
        adjusted_profit_usd=round(adjusted_usd, 4),
        difference_usd=round(difference, 4),
    )
    tolerance = NOT_WORSE_TOLERANCE_USD + NOT_WORSE_TOLERANCE_REL * abs(engine_usd)
    over = f"over the {horizon_h:g} h horizon"
    compare = f"({_cents(adjusted_usd)} against {_cents(engine_usd)})"
    if difference < -tolerance:
        verdict = (
            f"Rejected: feasible, but it earns {_cents(-difference)} less {over} than the engine's plan {compare}. "
            "The engine's plan stays in force."
        )
        return Judgement(accepted=False, verdict=verdict, record=record)
    if difference > tolerance:
        gain = f"earns {_cents(difference)} more {over} than the engine's plan"
    else:
        gain = f"earns the same {over} as the engine's plan"
    finding = f"feasible, and the adjusted plan {gain} {compare}"
    return Judgement(accepted=True, verdict=finding, record=record, units_now=adjusted[:, :, 0], solution=scored)


# ------------------------------------------------------------------------------------------------ summarizing


def summarize_run(run: OptimizationRun, rebuilt: RebuiltRun) -> str:
    """A compact account of the state and of the plan, for the prompt (a line per site; ~3,000 characters)."""
    problem, units = rebuilt.problem, rebuilt.units_now
    details, snapshot = run.details or {}, run.inputs or {}
    horizon_h = float(problem.period_hours.sum())
    first_min = float(problem.period_hours[0]) * 60
    kw = np.array([hw.power_kw for hw in problem.hardware])
    facility_kw = units @ kw * problem.pue[:, 0]
    profit_by_site = {entry["site"]: entry.get("profit_usd", 0.0) for entry in details.get("sites", [])}
    market = snapshot.get("market", {})
    gap = details.get("mip_gap")
    lines = [
        f"Run {run.pk}, interval {_interval_start(snapshot, run)}, strategy "
        f"{run.strategy}, solver {details.get('status', '?')}" + (f" (gap {gap:.2%})" if gap else "") + ".",
        f"Horizon {horizon_h:g} h in {problem.shape[2]} periods; the first ({first_min:g} min) is applied now.",
        f"Plan, USD/h averaged over the horizon: profit {_usd(run.profit_usd_per_h)} = revenue "
        f"{_usd(run.revenue_usd_per_h)} - energy {_usd(run.energy_cost_usd_per_h)} - carbon "
        f"{_usd(run.carbon_cost_usd_per_h)} - penalties {_usd(run.penalty_usd_per_h)}.",
        f"Market now: hashprice {_usd(problem.market.hashprice_usd_per_ph_day[0])}/PH/s/day; inference "
        f"{_usd(problem.market.inference_price_usd_per_mtok[0])}/Mtok; demand Mtok/h "
        + ", ".join(f"{r} {v:,.0f}" for r, v in market.get("inference_demand_mtok_per_h", {}).items())
        + ".",
        "Hardware (IT kW/unit, output/unit): "
        + "; ".join(
            f"{hw.code} {hw.power_kw:g} kW "
            + (f"{hw.hashrate_th_s:g} TH/s" if hw.kind == "miner" else f"{hw.tokens_per_s:,.0f} tok/s")
            for hw in problem.hardware
        )
        + ".",
        "Sites: region, energy USD/MWh, PUE, facility kW used/capacity; units running/available; profit USD/h:",
    ]
    for s, site in enumerate(problem.sites):
        stock = ", ".join(
            f"{hw} {units[s, h]:g}/{problem.inventory_units[s, h]:g}"
            for h, hw in enumerate(problem.hardware_codes)
            if problem.inventory_units[s, h] > 0
        )
        state = "" if site.available else " OFFLINE (maintenance)"
        lines.append(
            f"- {site.code}{state}: {site.region}, {problem.energy_price_usd_per_mwh[s, 0]:,.2f}, PUE "
            f"{problem.pue[s, 0]:.2f}, {facility_kw[s]:,.0f}/{site.power_capacity_kw:,.0f} kW; {stock or 'no units'}; "
            f"{_usd(profit_by_site.get(site.code, 0.0) / horizon_h)}/h"
        )
    binding = [entry["text"] for entry in details.get("binding", [])[:MAX_BINDING_LINES]]
    lines.append("Binding now: " + ("; ".join(binding) if binding else "nothing (no limit has a shadow price)") + ".")
    lines.extend(_commitment_lines(details.get("commitments", [])))
    knobs = problem.settings
    lines.append(
        f"Switching cost {_usd(knobs.switching_cost_usd_per_unit)} per unit started or stopped; carbon price "
        f"{_usd(knobs.carbon_price_usd_per_t)}/t."
    )
    lines.append(TASK_PROMPT)
    return "\n".join(lines)


MAX_SHORT_CONTRACT_LINES = 5  # contracts named one by one in the prompt: the shortest served


def _commitment_lines(commitments: list[dict]) -> list[str]:
    """The SLA book for the prompt, bounded whatever its size: per tier, its contracts, committed kW and what is
    short; per tier and site, the kW placed; then the ``MAX_SHORT_CONTRACT_LINES`` contracts furthest short."""
    if not commitments:
        return ["SLA commitments: none active."]
    tiers: dict[str, dict] = {}
    for c in commitments:
        tier = tiers.setdefault(c["tier"], {"n": 0, "kw": 0.0, "unserved": 0.0, "n1": 0.0, "sites": {}})
        tier["n"] += 1
        tier["kw"] += c["capacity_kw"]
        tier["unserved"] += c.get("unserved_kw") or 0.0
        tier["n1"] += c.get("n_minus_1_shortfall_kw") or 0.0
        for site, kw_ in c.get("placements_kw", {}).items():
            tier["sites"][site] = tier["sites"].get(site, 0.0) + kw_
    lines = ["SLA commitments per tier (IT kW on inference hardware; placed kW per site):"]
    for code, t in tiers.items():
        placed = ", ".join(f"{site} {kw_:,.0f}" for site, kw_ in sorted(t["sites"].items())) or "nowhere"
        short = f"; unserved {t['unserved']:,.0f} kW" if t["unserved"] else ""
        n1 = f"; N-1 short {t['n1']:,.0f} kW" if t["n1"] else ""
        lines.append(f"- {code}: {t['n']} contracts, {t['kw']:,.0f} kW: {placed}{short}{n1}")
    worst = sorted(
        (c for c in commitments if c.get("unserved_kw") or c.get("n_minus_1_shortfall_kw")),
        key=lambda c: -((c.get("unserved_kw") or 0.0) + (c.get("n_minus_1_shortfall_kw") or 0.0)),
    )
    for c in worst[:MAX_SHORT_CONTRACT_LINES]:
        lines.append(
            f"- short: {c['tier']} contract {c['contract']}, {c['capacity_kw']:,.0f} kW, unserved "
            f"{c.get('unserved_kw') or 0:,.0f} kW, N-1 short {c.get('n_minus_1_shortfall_kw') or 0:,.0f} kW"
        )
    if len(worst) > MAX_SHORT_CONTRACT_LINES:
        lines.append(f"- and {len(worst) - MAX_SHORT_CONTRACT_LINES} more contracts short.")
    return lines


def _interval_start(snapshot: dict, run: OptimizationRun) -> str:
    """The interval the run planned from: its snapshot's, else its start (unknown for a run that never started)."""
    if "interval_start" in snapshot:
        return snapshot["interval_start"]
    return run.started_at.isoformat() if run.started_at else "unknown"


def _usd(value: float | Decimal | None) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}${value:,.0f}" if value >= 100 else f"{sign}${value:,.2f}"


def _cents(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
