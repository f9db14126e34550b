"""The dashboard's books panel: each applied run's books by stream (``details["books"]``), oldest first."""

from __future__ import annotations

from ..books import STREAMS
from ..choices import RunStatus
from ..models import OptimizationRun


def books_by_run(*, limit: int = 48) -> dict:
    """``{"streams": [...], "runs": [{id, finished_at, trigger, books: {stream: USD/h}}]}``; one query."""
    runs = list(
        OptimizationRun.objects.filter(status=RunStatus.SUCCEEDED, is_applied=True, details__has_key="books")
        .order_by("-finished_at", "-id")
        .values("id", "finished_at", "trigger", "details__books")[:limit]
    )
    return {
        "streams": list(STREAMS),
        "runs": [
            {
                "id": run["id"],
                "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
                "trigger": run["trigger"],
                "books": {name: float((run["details__books"] or {}).get(name, 0.0)) for name in STREAMS},
            }
            for run in reversed(runs)
        ],
    }
