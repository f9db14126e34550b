"""The dashboard's books panel: each applied run's books by stream (``details["books"]``), oldest first."""

from __future__ import annotations

from ..choices import RunStatus
from ..models import OptimizationRun
from ..streams import LABELS, MEMO, STREAM_KEYS


def books_by_run(*, limit: int = 48) -> dict:
    """``{"streams": [...], "labels": {stream: label}, "memo": "cp_charges_avoided", "runs": [{id, finished_at,
    trigger, books: {stream: USD/h, memo: USD/h}}]}``; one query. Runs stored before a stream existed read 0."""
    runs = list(
        OptimizationRun.objects.filter(status=RunStatus.SUCCEEDED, is_applied=True, details__has_key="books")
        .order_by("-finished_at", "-id")
        .values("id", "finished_at", "trigger", "details__books")[:limit]
    )
    keys = (*STREAM_KEYS, MEMO.key)
    return {
        "streams": list(STREAM_KEYS),
        "labels": dict(LABELS),
        "memo": MEMO.key,
        "runs": [
            {
                "id": run["id"],
                "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
                "trigger": run["trigger"],
                "books": {name: float((run["details__books"] or {}).get(name, 0.0)) for name in keys},
            }
            for run in reversed(runs)
        ],
    }
