"""Optimization runs on the dashboard: the reasoning panel's summary and the revenue and profit history."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.db import driver_rows

from ..choices import RunStatus
from ..models import OptimizationRun
from .formatting import _f, _iso
from .reads import _run_history_shape

RUN_HISTORY_HOURS = 48
RUN_HISTORY_LIMIT = 600  # a run every 5 minutes for 48 h is 576
# Run fields the dashboard never reads: the input snapshot (tens of kB on a real fleet) and Claude's proposal.
UNREAD_RUN_FIELDS = ("inputs", "advisor_proposal")
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
        # A plan the guard refused (time limit, or worse than the plan in force): the page shows it as an alert.
        "alert": f"Run #{run.pk} was not applied: {run.error}" if run.status == RunStatus.REJECTED else "",
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
    rows = driver_rows(_run_history_shape().filter(queued_at__gte=now - timedelta(hours=hours))[:limit])
    rows.reverse()
    return {
        "id": [row[0] for row in rows],
        "t": [_iso(row[1]) for row in rows],
        "revenue_usd_per_h": [_f(row[2]) for row in rows],
        "profit_usd_per_h": [_f(row[3]) for row in rows],
    }
