"""Writes of the decision world: queue, run, store and apply optimizations.

Every entry point (the periodic task, `manage.py optimize`, the admin action, the API) goes through
`request_optimization` or `optimize_now`; both end in `execute_run`, which
- claims the run with a compare-and-swap (queued -> running); the partial unique constraint
  `optimizer_optimizationrun_one_running` makes a second concurrent claim fail in the database, so only one
  optimization runs at a time across every worker and beat;
- refuses to act on stale inputs (the run is kept as `skipped`, with the reason);
- stores the plan and applies it (units running per site) in one transaction: a run is applied whole or not
  at all.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sites.models import Site, SiteInventory
from sites.services import set_site_status
from sla.services import DeliveryRow, FailoverReport, fail_over_site, record_deliveries

from . import engine
from .choices import RunStatus, RunTrigger, Strategy
from .inputs import Inputs, StaleInputs, build_inputs
from .models import Allocation, OptimizationRun

logger = logging.getLogger(__name__)


def request_optimization(*, trigger: str, strategy: str = Strategy.LP, actor=None) -> OptimizationRun:
    """Queue a run and hand it to a worker once the surrounding transaction commits."""
    from .tasks import run_optimization

    if strategy not in Strategy.values:
        raise ValueError(f"Unknown strategy {strategy!r}.")
    run = OptimizationRun.objects.create(
        trigger=trigger, strategy=strategy, requested_by=actor if getattr(actor, "is_authenticated", False) else None
    )
    run_optimization.delay_on_commit(run_id=run.pk)
    return run


def optimize_now(
    *, trigger: str, strategy: str = Strategy.LP, actor=None, at: datetime | None = None
) -> OptimizationRun:
    """Create a run and execute it in this process (commands, periodic task)."""
    run = OptimizationRun.objects.create(
        trigger=trigger, strategy=strategy, requested_by=actor if getattr(actor, "is_authenticated", False) else None
    )
    return execute_run(run_id=run.pk, at=at)


# run_optimization expires after 240 s: a run still queued well past that will never be picked up (its message
# expired, or was lost with a broker outage).
QUEUED_RUN_LIFETIME = timedelta(minutes=10)


def fail_abandoned_runs(*, now: datetime) -> int:
    """Mark as failed any run still 'running' past the hard task time limit (its worker died), and as skipped
    any run still 'queued' past QUEUED_RUN_LIFETIME (its task will never run it).

    Without this, a killed worker would hold the one-running slot forever, and a lost message would leave a
    run 'queued' forever.
    """
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)
    failed = OptimizationRun.objects.filter(status=RunStatus.RUNNING, started_at__lt=now - limit).update(
        status=RunStatus.FAILED, finished_at=now, error="Abandoned: its worker stopped before finishing."
    )
    never_started = OptimizationRun.objects.filter(
        status=RunStatus.QUEUED, queued_at__lt=now - QUEUED_RUN_LIFETIME
    ).update(
        status=RunStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        error="Never started: its task expired or was lost (broker outage?) before a worker took it.",
    )
    return failed + never_started


def _claim(run_id: int, now: datetime) -> str:
    """queued -> running, or say why not: 'claimed' | 'busy' | 'gone'."""
    try:
        with transaction.atomic():
            claimed = OptimizationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, started_at=now
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
        if not solution.ok:
            raise RuntimeError(f"The solver found no plan ({solution.status}).")
        store_and_apply(run_id=run_id, inputs=inputs, solution=solution, seconds=time.perf_counter() - started)
        if settings.ANTHROPIC_API_KEY:
            from .tasks import advise_optimization

            # Claude reviews the applied plan on a worker, never inside a request; the plan stands meanwhile.
            advise_optimization.delay_on_commit(run_id)
    except Exception as exc:  # the run records any failure; the previous allocation stays in force
        logger.exception("Optimization run %s failed", run_id)
        _finish(run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", inputs=inputs.snapshot)
    return OptimizationRun.objects.get(pk=run_id)


def _dec(value: float, places: int) -> Decimal:
    """A float (numpy or not) as a Decimal with `places` decimals."""
    return Decimal(repr(round(float(value), places))).quantize(Decimal(1).scaleb(-places))


def _usd(value: float) -> Decimal:
    return _dec(value, 2)


@transaction.atomic
def store_and_apply(*, run_id: int, inputs: Inputs, solution: engine.Solution, seconds: float) -> None:
    """Store the run's allocations and economics and make its first period the running state, atomically."""
    problem = inputs.problem
    hours = float(problem.period_hours.sum())
    totals = solution.totals
    units = np.rint(solution.first_period_units).astype(int)
    kw = np.array([hw.power_kw for hw in problem.hardware])
    pue = problem.pue[:, 0]
    price = problem.energy_price_usd_per_mwh[:, 0]
    first_hours = float(problem.period_hours[0])
    ledger = solution.ledger
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
                    facility_power_kw=_dec(it_kw * pue[s], 3),
                    revenue_usd_per_h=_dec(site_revenue * share / first_hours, 4),
                    energy_cost_usd_per_h=_dec(it_kw * pue[s] * price[s] / 1000, 4),
                )
            )
    Allocation.objects.bulk_create(rows)
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
    # Uptime is measured from what the applied plan delivers, not from what was promised: for each contract
    # running now, the kW the plan serves in the interval being applied (sla computes uptime and credits).
    served = {str(c.id): sum(c.placements_kw.values()) for c in solution.commitments}
    interval_start = problem.period_starts[0] if problem.period_starts else timezone.now()
    record_deliveries(
        rows=[
            DeliveryRow(
                contract_id=contract.pk,
                interval_start=interval_start,
                interval_minutes=round(first_hours * 60),
                committed_kw=contract.capacity_kw,
                delivered_kw=min(_dec(served.get(str(contract.pk), 0.0), 3), contract.capacity_kw),
            )
            for contract in inputs.contracts
        ]
    )
    details = {
        "status": solution.status,
        "mip_gap": solution.mip_gap,
        "horizon_hours": hours,
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
        details=details,
        explanation="\n".join(solution.explanation),
    )


RUN_PRUNE_BATCH_SIZE = 500  # runs per DELETE (each cascades to its allocations: sites x hardware rows)


def prune_old_runs(*, before: datetime) -> dict[str, int]:
    """Delete finished runs queued before `before`, with their allocations; the run in force is always kept.

    Called by the daily retention task (never by a request). Queued and running runs are never touched, and
    the newest applied run stays whatever its age: the dashboard and the advisor read it. Idempotent.
    Cost: one DELETE per 500 runs (plus the cascade to their allocations).
    """
    if timezone.is_naive(before):
        raise ValueError("`before` must be an aware datetime.")
    in_force = OptimizationRun.objects.latest_applied()
    old = OptimizationRun.objects.filter(
        queued_at__lt=before, status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)
    ).exclude(pk=in_force.pk if in_force else None)
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
    "RunTrigger",
    "execute_run",
    "fail_abandoned_runs",
    "optimize_now",
    "prune_old_runs",
    "request_optimization",
]
