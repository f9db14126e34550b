"""Periodic and on-demand optimization runs."""

import logging

from celery import shared_task

from .advisor import advice_soft_time_limit_s, advice_time_limit_s, advise_run
from .choices import RunTrigger
from .clients.claude import AdvisorUnavailable

logger = logging.getLogger(__name__)


@shared_task(name="optimizer.tasks.run_optimization", expires=240, acks_late=True)
def run_optimization(run_id: int | None = None, trigger: str = RunTrigger.SCHEDULE) -> dict:
    """Execute a queued run, or create and execute one for `trigger` (beat's schedule, or a site back online:
    `sites.signals.replan_requested`, connected in optimizer.receivers); one at a time, fleet-wide."""
    from .models import OptimizationRun
    from .services import execute_run, optimize_now

    if run_id is None:
        run = optimize_now(trigger=RunTrigger(trigger))
    elif not OptimizationRun.objects.filter(pk=run_id).exists():
        logger.warning("Optimization run %s does not exist; nothing to do.", run_id)
        return {"run": run_id, "status": "missing"}
    else:
        run = execute_run(run_id=run_id)
    return {"run": run.pk, "status": run.status, "profit_usd_per_h": str(run.profit_usd_per_h)}


@shared_task(name="optimizer.tasks.replan_for_grid_event", bind=True, max_retries=120, expires=300, acks_late=True)
def replan_for_grid_event(self, event_id: int, status: str = "") -> dict:
    """Re-plan now for a grid event (queue `grid`, served by its own worker so it never waits behind a scheduled
    run's queue). While another run holds the one-running slot, retry every half second instead of being skipped:
    the event must be planned for."""
    from .choices import RunStatus
    from .models import OptimizationRun
    from .services import optimize_now

    if OptimizationRun.objects.filter(status=RunStatus.RUNNING).exists():
        raise self.retry(countdown=0.5)
    run = optimize_now(trigger=RunTrigger.GRID)
    if run.status == RunStatus.SKIPPED and "Another optimization" in run.error:
        raise self.retry(countdown=0.5)
    return {"event": event_id, "event_status": status, "run": run.pk, "status": run.status}


# --- Claude advisor (optimizer/advisor.py) -------------------------------------------------------------------
# The anthropic SDK (about 2 s to import) is imported only when a request is sent, not by these modules.


@shared_task(
    name="optimizer.tasks.advise_optimization",
    bind=True,
    # One retry, later, and only for a transient failure (timeout, 5xx, 529 overloaded, 429, connection):
    # advise_run re-raises AdvisorUnavailable only while a retry is left, and only when it is retryable.
    autoretry_for=(AdvisorUnavailable,),
    max_retries=1,
    retry_backoff=30,
    retry_backoff_max=60,
    retry_jitter=True,
    expires=240,  # advice on a plan the next run (every 5 min) has replaced is not worth asking for
    soft_time_limit=advice_soft_time_limit_s(),  # > ANTHROPIC_TIMEOUT_S + a re-solve and two scorings
    time_limit=advice_time_limit_s(),
    acks_late=True,
)
def advise_optimization(self, run_id: int) -> dict:
    """Ask Claude about an applied run; its proposal is applied only if feasible and not worse. Never in a request."""
    from .models import OptimizationRun

    if not OptimizationRun.objects.filter(pk=run_id).exists():
        logger.warning("Optimization run %s does not exist; no advice.", run_id)
        return {"run": run_id, "advisor_status": "missing"}
    run = advise_run(run_id=run_id, raise_retryable=self.request.retries < self.max_retries)
    return {"run": run.pk, "advisor_status": run.advisor_status, "verdict": run.advisor_verdict[:200]}


@shared_task(name="optimizer.tasks.prune_old_runs", expires=6 * 3600)
def prune_old_runs() -> dict:
    """Delete finished runs older than ENERGYARB["RETENTION_DAYS"] with their allocations (daily; never by a GET)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from .services import prune_old_runs as prune

    before = timezone.now() - timedelta(days=settings.ENERGYARB["RETENTION_DAYS"])
    counts = prune(before=before)
    logger.info("Pruned optimization runs older than %s: %s", before.isoformat(), counts)
    return {"before": before.isoformat(), **counts}
