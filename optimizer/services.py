"""Writes of the decision world: queue, run, store and apply optimizations.

Every entry point (the periodic task, `manage.py optimize`, the admin action, the API) goes through
`request_optimization` or `optimize_now`; both end in `execute_run`, which
- claims the run with a compare-and-swap (queued -> running); the partial unique constraint
  `optimizer_optimizationrun_one_running` makes a second concurrent claim fail in the database, so only one
  optimization runs at a time across every worker and beat;
- refuses to act on stale inputs (the run is kept as `skipped`, with the reason);
- stores the plan and applies it (units running per site) in one transaction: a run is applied whole or not
  at all;
- then re-places contracts left short and moves SLA placements to other sites where the plan says that pays
  more than the move costs (`migrate_after_run`; the rule and the cost are in sla.services.migration).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.utils import timezone

from core.auth import signed_in
from sites.models import Site, SiteInventory
from sites.services import set_site_status
from sites.signals import allocation_applied
from sla.services import (
    DeliveryRow,
    FailoverReport,
    PlacementMove,
    fail_over_site,
    move_placements,
    record_deliveries,
    replace_lost_capacity,
)

from . import engine
from .books import run_books, site_books
from .choices import RunStatus, RunTrigger, Strategy
from .engine.halls import unit_pue
from .grid_inputs import record_event_plans
from .inputs import Inputs, StaleInputs, build_inputs
from .migration_pricing import MigrationDecision, decide_migrations, price_migrations, site_energy_usd_per_it_kwh
from .models import Allocation, OptimizationRun

logger = logging.getLogger(__name__)


def request_optimization(*, trigger: str, strategy: str = Strategy.LP, actor=None) -> OptimizationRun:
    """Queue a run and hand it to a worker once the surrounding transaction commits."""
    from .tasks import run_optimization

    if strategy not in Strategy.values:
        raise ValueError(f"Unknown strategy {strategy!r}.")
    run = OptimizationRun.objects.create(trigger=trigger, strategy=strategy, requested_by=signed_in(actor))
    run_optimization.delay_on_commit(run_id=run.pk)
    return run


def optimize_now(
    *, trigger: str, strategy: str = Strategy.LP, actor=None, at: datetime | None = None
) -> OptimizationRun:
    """Create a run and execute it in this process (commands, periodic task)."""
    run = OptimizationRun.objects.create(trigger=trigger, strategy=strategy, requested_by=signed_in(actor))
    return execute_run(run_id=run.pk, at=at)


# run_optimization expires after 240 s: a run still queued well past that will never be picked up (its message
# expired, or was lost with a broker outage).
QUEUED_RUN_LIFETIME = timedelta(minutes=10)


def fail_abandoned_runs(*, now: datetime) -> int:
    """Mark as failed any run still 'running' whose lease expired (its worker died: a working worker renews it,
    `RunLease`), and as skipped any run still 'queued' past QUEUED_RUN_LIFETIME (its task will never run it).

    Without this, a killed worker would hold the one-running slot: the next runs were skipped for the task's hard
    time limit (about 330 s, no plan meanwhile); with the lease, for at most OPTIMIZER_RUN_LEASE_S.
    """
    failed = (
        OptimizationRun.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
        .update(status=RunStatus.FAILED, finished_at=now, error="Abandoned: its worker stopped renewing its lease.")
    )  # fmt: skip
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)  # a run claimed before leases existed
    failed += OptimizationRun.objects.filter(
        status=RunStatus.RUNNING, lease_expires_at__isnull=True, started_at__lt=now - limit
    ).update(status=RunStatus.FAILED, finished_at=now, error="Abandoned: its worker stopped before finishing.")
    never_started = OptimizationRun.objects.filter(
        status=RunStatus.QUEUED, queued_at__lt=now - QUEUED_RUN_LIFETIME
    ).update(
        status=RunStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        error="Never started: its task expired or was lost (broker outage?) before a worker took it.",
    )
    return failed + never_started


def run_lease() -> timedelta:
    return timedelta(seconds=settings.OPTIMIZER_RUN_LEASE_S)


class RunLease:
    """While a run is worked on, renew its lease every third of OPTIMIZER_RUN_LEASE_S from a daemon thread (one
    UPDATE on its own connection); a killed worker stops renewing, so `fail_abandoned_runs` frees the running slot
    once the lease has expired, and the next period's run proceeds."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"run-{run_id}-lease", daemon=True)

    def __enter__(self) -> RunLease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        every = run_lease().total_seconds() / 3
        try:
            while not self._stop.wait(every):
                OptimizationRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(
                    lease_expires_at=timezone.now() + run_lease()
                )
        except DatabaseError:  # the database is down: the lease lapses, as it would with the worker
            logger.warning("Run %s: its lease could not be renewed", self.run_id)
        finally:
            connections.close_all()  # this thread's connection


def _claim(run_id: int, now: datetime) -> str:
    """queued -> running (with a lease), or say why not: 'claimed' | 'busy' | 'gone'."""
    try:
        with transaction.atomic():
            claimed = OptimizationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, started_at=now, lease_expires_at=now + run_lease()
            )
    except IntegrityError:
        return "busy"
    return "claimed" if claimed else "gone"


def _finish(run_id: int, status: str, **fields) -> None:
    run = OptimizationRun.objects.get(pk=run_id)
    now = timezone.now()
    run.status = status
    run.finished_at = max(now, run.started_at or now)
    run.started_at = run.started_at or run.finished_at
    for name, value in fields.items():
        setattr(run, name, value)
    run.save()


def execute_run(*, run_id: int, at: datetime | None = None) -> OptimizationRun:
    """Run a queued optimization to its end (succeeded, skipped or failed); never raises for a domain reason."""
    now = timezone.now()
    at = at or now
    fail_abandoned_runs(now=now)
    outcome = _claim(run_id, now)
    if outcome == "busy":
        OptimizationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.SKIPPED,
            started_at=now,
            finished_at=now,
            error="Another optimization was running; this one was skipped.",
        )
        return OptimizationRun.objects.get(pk=run_id)
    if outcome == "gone":
        logger.info("Run %s was not queued any more; nothing to do.", run_id)
        return OptimizationRun.objects.get(pk=run_id)
    with RunLease(run_id):
        return _work(run_id, at)


def _work(run_id: int, at: datetime) -> OptimizationRun:
    """The claimed run: build its inputs, solve, store and apply (see execute_run)."""
    run = OptimizationRun.objects.get(pk=run_id)
    try:
        inputs = build_inputs(at=at, strategy=run.strategy)
    except StaleInputs as exc:
        _finish(run_id, RunStatus.SKIPPED, error=str(exc), explanation=f"Not applied: {exc}")
        return OptimizationRun.objects.get(pk=run_id)
    except Exception as exc:  # e.g. no hardware at all: fail the run rather than leave it holding the running slot
        logger.exception("Optimization run %s could not build its inputs", run_id)
        _finish(run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return OptimizationRun.objects.get(pk=run_id)
    try:
        started = time.perf_counter()
        solution = engine.run_strategy(run.strategy, inputs.problem)
        if not solution.ok and not solution.status.startswith("error: no plan within the time limit"):
            raise RuntimeError(f"The solver found no plan ({solution.status}).")
        verdict = engine.judge_plan(inputs.problem, solution)
        if not verdict.apply:
            refuse_plan(run_id=run_id, inputs=inputs, solution=solution, verdict=verdict, started=started)
            return OptimizationRun.objects.get(pk=run_id)
        # Pricing the moves re-solves the engine: done here, before the transaction that writes the plan, so the
        # site locks that transaction takes (to re-place and move placements) are held only for the writes.
        decisions = price_migrations(problem=inputs.problem)
        store_and_apply(
            run_id=run_id,
            inputs=inputs,
            solution=solution,
            seconds=time.perf_counter() - started,
            decisions=decisions,
        )
        if settings.ANTHROPIC_API_KEY:
            from .tasks import advise_optimization

            # Claude reviews the applied plan on a worker, never inside a request; the plan stands meanwhile.
            advise_optimization.delay_on_commit(run_id)
    except Exception as exc:  # the run records any failure; the previous allocation stays in force
        logger.exception("Optimization run %s failed", run_id)
        _finish(run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", inputs=inputs.snapshot)
    return OptimizationRun.objects.get(pk=run_id)


def refuse_plan(
    *, run_id: int, inputs: Inputs, solution: engine.Solution, verdict: engine.Verdict, started: float
) -> None:
    """Record a plan the guard refused (``engine.judge_plan``): the run is ``rejected``, nothing is written to the
    sites, and the reason stands in the run's error, explanation and details (the admin and the dashboard alert on
    it: ``OptimizationRun.objects.alerting``)."""
    logger.warning("Optimization run %s not applied: %s", run_id, verdict.reason)
    hours = float(inputs.problem.period_hours.sum())
    _finish(
        run_id,
        RunStatus.REJECTED,
        solve_seconds=time.perf_counter() - started,
        objective_usd_per_h=None if not solution.ok else _usd(solution.objective_usd / hours),
        is_applied=False,
        error=verdict.reason,
        inputs=inputs.snapshot,
        details={"status": solution.status, "mip_gap": solution.mip_gap, "guard": verdict.as_dict()},
        explanation="\n".join([f"Not applied: {verdict.reason}", *solution.explanation[:2]]),
    )


def _dec(value: float, places: int) -> Decimal:
    """A float (numpy or not) as a Decimal with `places` decimals."""
    return Decimal(repr(round(float(value), places))).quantize(Decimal(1).scaleb(-places))


def _usd(value: float) -> Decimal:
    return _dec(value, 2)


def store_and_apply(
    *,
    run_id: int,
    inputs: Inputs,
    solution: engine.Solution,
    seconds: float,
    decisions: list[MigrationDecision] | Exception | None = None,
) -> None:
    """Store the run's allocations and economics and make its first period the running state, atomically.

    The rows and the run's details are computed first; the transaction only writes: allocations, units running
    (inventory rows locked), then, in a savepoint, `migrate_after_run` with the moves priced before
    (``decisions``, from `price_migrations`; None prices them here): re-placements and moves take the site locks
    (the admission locks customers' bookings wait on) at the end, for their writes; deliveries and the run last.
    An error in the migrations is recorded in `details["migrations"]`, and the plan applies.
    """
    units = np.rint(solution.first_period_units).astype(int)
    rows = _allocation_rows(run_id, inputs, solution, units)
    details = _run_details(solution)
    with transaction.atomic():
        Allocation.objects.bulk_create(rows)
        _set_units_running(inputs, units)
        migrations = _migrate_after_apply(inputs.problem, decisions)
        # grid events: planned kW, downtime of shed contracts
        record_event_plans(inputs.problem, solution, now=timezone.now())
        _record_plan_deliveries(inputs, solution, migrations)
        _announce_applied(run_id, inputs.sites, inputs.hardware, units)
        _finish_applied(run_id, inputs, solution, seconds, {**details, "migrations": migrations})


def _allocation_rows(run_id: int, inputs: Inputs, solution: engine.Solution, units: np.ndarray) -> list[Allocation]:
    """One row per site and model running in the first period, with its share of the site's money per hour."""
    problem, ledger = inputs.problem, solution.ledger
    kw = np.array([hw.power_kw for hw in problem.hardware])
    pue = unit_pue(problem)[:, :, 0]  # [S, H] each machine at its hall's PUE
    price = problem.energy_price_usd_per_mwh[:, 0]
    first_hours = float(problem.period_hours[0])
    rows = []
    for s, site in enumerate(inputs.sites):
        for h, hw in enumerate(inputs.hardware):
            if units[s, h] <= 0:
                continue
            it_kw = units[s, h] * kw[h]
            share = it_kw / max(ledger.it_kw[s, 0], 1e-9)
            site_revenue = (
                ledger.mining_revenue_usd[s, 0] + ledger.inference_revenue_usd[s, 0] + ledger.contract_revenue_usd[s, 0]
            )
            rows.append(
                Allocation(
                    run_id=run_id,
                    site=site,
                    hardware_model=hw,
                    units_running=int(units[s, h]),
                    it_power_kw=_dec(it_kw, 3),
                    facility_power_kw=_dec(it_kw * pue[s, h], 3),
                    revenue_usd_per_h=_dec(site_revenue * share / first_hours, 4),
                    energy_cost_usd_per_h=_dec(it_kw * pue[s, h] * price[s] / 1000, 4),
                )
            )
    return rows


def _set_units_running(inputs: Inputs, units: np.ndarray) -> None:
    """The first period becomes the running state (inventory rows locked, never above what is available)."""
    inventories = list(
        SiteInventory.objects.select_for_update().filter(site__in=inputs.sites).select_related("hardware_model")
    )
    site_index = {site.pk: s for s, site in enumerate(inputs.sites)}
    hw_index = {hw.pk: h for h, hw in enumerate(inputs.hardware)}
    for inventory in inventories:
        inventory.units_running = min(
            int(units[site_index[inventory.site_id], hw_index[inventory.hardware_model_id]]), inventory.units_available
        )
    SiteInventory.objects.bulk_update(inventories, ["units_running"])


def _record_plan_deliveries(inputs: Inputs, solution: engine.Solution, migrations: dict) -> None:
    """Uptime is measured from what the applied plan delivers, not from what was promised: for each contract
    running now, the kW the plan serves from now to the interval's end (the plan before it counts until now:
    time-weighted), less what the cut-overs of the moves just decided leave unserved (sla computes uptime)."""
    problem = inputs.problem
    served = {str(c.id): sum(c.placements_kw.values()) for c in solution.commitments}
    cutover = migrations.get("cutover_kw_minutes", {})
    interval_start = problem.period_starts[0] if problem.period_starts else timezone.now()
    applied_at = timezone.now()
    record_deliveries(
        rows=[
            DeliveryRow(
                contract_id=contract.pk,
                interval_start=interval_start,
                interval_minutes=round(float(problem.period_hours[0]) * 60),
                committed_kw=contract.capacity_kw,
                delivered_kw=min(_dec(served.get(key, 0.0), 3), contract.capacity_kw),
                applied_at=applied_at,
                unserved_kw_minutes=_dec(cutover.get(key, 0.0), 3),
            )
            for contract in inputs.contracts
            for key in (str(contract.pk),)
        ]
    )


def _run_details(solution: engine.Solution) -> dict:
    """The run's breakdown for staff, the dashboard and the advisor (JSON-ready; migrations are added after)."""
    return {
        "status": solution.status,
        "mip_gap": solution.mip_gap,
        "sites": [
            {
                "site": b.site,
                "mining_revenue_usd": round(b.mining_revenue_usd, 2),
                "inference_revenue_usd": round(b.inference_revenue_usd, 2),
                "contract_revenue_usd": round(b.contract_revenue_usd, 2),
                "energy_cost_usd": round(b.energy_cost_usd, 2),
                "carbon_cost_usd": round(b.carbon_cost_usd, 2),
                "switching_cost_usd": round(b.switching_cost_usd, 2),
                "profit_usd": round(b.profit_usd, 2),
                "it_kw": round(b.it_kw, 1),
                "facility_kw": round(b.facility_kw, 1),
            }
            for b in solution.site_breakdown
        ],
        "binding": [
            {
                "name": b.name,
                "kind": b.kind,
                "shadow_price_usd_per_h": round(b.shadow_price_usd_per_h, 2),
                "per": b.per,
                "text": b.text,
            }
            for b in solution.binding
        ],
        "commitments": [
            {
                "contract": c.id,
                "tier": c.tier,
                "capacity_kw": c.capacity_kw,
                "placements_kw": c.placements_kw,
                "unserved_kw": round(c.unserved_kw, 3),
                "n_minus_1_shortfall_kw": round(c.n_minus_1_shortfall_kw, 3),
            }
            for c in solution.commitments
        ],
        "shortfalls": [
            {"constraint": f.constraint, "commitment": f.commitment, "kw": f.kw} for f in solution.shortfalls
        ],
    }


def _finish_applied(run_id: int, inputs: Inputs, solution: engine.Solution, seconds: float, details: dict) -> None:
    """The run succeeded and is applied: its economics per hour, details and explanation."""
    hours = float(inputs.problem.period_hours.sum())
    totals = solution.totals
    migrations = details["migrations"]
    moved = [d["reason"] for d in migrations.get("decisions", ()) if d["moved"]]
    replaced = [f"Re-placed {kw} kW of contract {c} on {site}." for c, site, kw in migrations.get("replaced", ())]
    _finish(
        run_id,
        RunStatus.SUCCEEDED,
        solve_seconds=seconds,
        objective_usd_per_h=_usd(solution.objective_usd / hours),
        revenue_usd_per_h=_usd(totals.revenue_usd / hours),
        energy_cost_usd_per_h=_usd(totals.energy_cost_usd / hours),
        carbon_cost_usd_per_h=_usd(totals.carbon_cost_usd / hours),
        penalty_usd_per_h=_usd(totals.penalty_usd / hours),
        is_applied=True,
        inputs=inputs.snapshot,
        # USD/h by stream (optimizer/books.py): over the horizon, and per site in the first period (the dashboard)
        details={
            **details,
            "horizon_hours": hours,
            "books": run_books(solution, hours),
            "site_books": site_books(solution, float(inputs.problem.period_hours[0])),
        },
        explanation="\n".join(
            [
                # The engine's status and profit over the horizon, then what that horizon was planned on.
                *solution.explanation[:2],
                *_forecast_lines(inputs.snapshot),
                *solution.explanation[2:],
                *replaced,
                *(f"Contract placement: {m}." for m in moved),
            ]
        ),
    )


def _announce_applied(run_id: int, sites, hardware, units: np.ndarray) -> None:
    """After commit, tell the layers below (the fleet's dispatch) which units now run: plain data only."""
    plan = {s.code: {h.code: int(units[i, j]) for j, h in enumerate(hardware)} for i, s in enumerate(sites)}
    applied_at = timezone.now()
    transaction.on_commit(
        lambda: allocation_applied.send_robust(sender=OptimizationRun, run_id=run_id, applied_at=applied_at, units=plan)
    )


def _forecast_lines(snapshot: dict) -> list[str]:
    """The sentence saying what the run's horizon was planned on (``inputs.HorizonValues.record``), if recorded."""
    forecast = snapshot.get("forecast") or {}
    note = forecast.get("note")
    if not note:
        return []
    setting = forecast.get("setting")
    return [f"Forecast ({setting}): {note}" if setting else f"Forecast: {note}"]


# Migrations: after a run is applied, the optimizer moves the running placements priced worth it
# (optimizer.migration_pricing; docs/scenarios.md).


def migrate_after_run(
    *,
    problem: engine.Problem,
    now: datetime | None = None,
    actor=None,
    decisions: list[MigrationDecision] | Exception | None = None,
) -> dict:
    """What follows an applied plan: re-place lost capacity, then move placements where that pays.

    1. ``replace_lost_capacity``: contracts running short (Spot preempted, a failover without room) get their gap
       on sites with room, cheapest IT kWh of this plan first;
    2. ``decide_migrations`` on the plan's problem (or the ``decisions`` priced before, outside the transaction,
       by ``price_migrations``), and ``move_placements`` for the moves worth it (re-checked under the admission
       locks: room, dwell time, distinct sites).
    Returns a JSON-ready summary (stored in the run's details).
    """
    if isinstance(decisions, Exception):  # pricing failed before the transaction: record it, change nothing
        raise decisions
    now = now or timezone.now()
    unit = site_energy_usd_per_it_kwh(problem)
    replaced = replace_lost_capacity(
        now=now,
        site_cost={code: float(unit[s]) for s, code in enumerate(problem.site_codes)},
        actor=actor,
        reason="re-placed by the optimizer: capacity is free again",
    )
    if decisions is None:
        decisions = decide_migrations(problem=problem, now=now)
    report = move_placements(
        moves=[
            PlacementMove(
                placement_id=d.placement_id,
                to_site=d.to_site,
                kind=d.kind,
                reason=d.reason,
                downtime_minutes=d.cost.downtime_minutes,
            )
            for d in decisions
            if d.worth_it
        ],
        now=now,
        actor=actor,
    )
    refused = dict(report.refused)
    return {
        "cutover_kw_minutes": {
            str(contract): float(kw_min) for contract, kw_min in report.cutover_kw_minutes().items()
        },
        "replaced": [[contract, site, float(kw)] for contract, site, kw in replaced.placed],
        "still_short": [[contract, float(kw)] for contract, kw in replaced.short],
        "decisions": [
            {
                **d.as_dict(),
                "moved": d.worth_it and d.placement_id not in refused,
                "refused": refused.get(d.placement_id, ""),
            }
            for d in decisions
        ],
    }


def _migrate_after_apply(problem: engine.Problem, decisions: list[MigrationDecision] | Exception | None) -> dict:
    """``migrate_after_run`` in a savepoint: a failure there is logged and recorded, and the plan still applies."""
    try:
        with transaction.atomic():
            return migrate_after_run(problem=problem, decisions=decisions)
    except Exception as exc:
        logger.exception("Placement migrations after a run failed")
        return {"error": f"{type(exc).__name__}: {exc}"}


RUN_PRUNE_BATCH_SIZE = 500  # runs per DELETE (each cascades to its allocations: sites x hardware rows)


def prune_old_runs(*, before: datetime) -> dict[str, int]:
    """Delete finished runs queued before `before`, with their allocations; the run in force is always kept.

    Called by the daily retention task (never by a request). Queued and running runs are never touched, and
    the newest applied run stays whatever its age: the dashboard and the advisor read it. Idempotent.
    Cost: one DELETE per 500 runs (plus the cascade to their allocations).
    """
    if timezone.is_naive(before):
        raise ValueError("`before` must be an aware datetime.")
    in_force: OptimizationRun | None = OptimizationRun.objects.latest_applied()
    old = OptimizationRun.objects.filter(
        queued_at__lt=before, status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)
    )
    if in_force is not None:
        old = old.exclude(pk=in_force.pk)
    runs = allocations = 0
    while ids := list(old.order_by().values_list("pk", flat=True)[:RUN_PRUNE_BATCH_SIZE]):
        with transaction.atomic():
            _, per_model = OptimizationRun.objects.filter(pk__in=ids).delete()
        runs += per_model.get(OptimizationRun._meta.label, 0)
        allocations += per_model.get(Allocation._meta.label, 0)
    return {"runs": runs, "allocations": allocations}


@transaction.atomic
def start_site_maintenance(*, site: Site, actor=None, reason: str = "") -> FailoverReport | None:
    """Put a site into maintenance, move its SLA placements elsewhere (Premium first), and re-plan the fleet.

    Returns the failover report, or None when the site was already in maintenance (nothing changes).
    """
    if not set_site_status(site=site, status="maintenance", reason=reason or "maintenance", actor=actor):
        return None
    report = fail_over_site(site=site, actor=actor, reason=reason or "site maintenance")
    request_optimization(trigger=RunTrigger.ADMIN, actor=actor)
    return report


__all__ = [
    "MigrationDecision",
    "RunTrigger",
    "decide_migrations",
    "execute_run",
    "fail_abandoned_runs",
    "migrate_after_run",
    "optimize_now",
    "price_migrations",
    "prune_old_runs",
    "request_optimization",
]
