"""The dashboard's books panel: each applied run's books by stream (``details["books"]``), oldest first, and each
site's revenue by stream over the last 24 h as its plans were applied (``details["site_books"]``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings

from sites.models import Site

from ..choices import RunStatus
from ..models import OptimizationRun
from ..streams import LABELS, MEMO, STREAM_KEYS, STREAMS, profit

SITE_REVENUE_HOURS = 24.0


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


def revenue_by_site(*, now: datetime, hours: float = SITE_REVENUE_HOURS) -> dict:
    """USD by stream per site over the last ``hours``, as applied: each applied run's first-period books per site
    (``details["site_books"]``, USD/h) times the hours its plan was in force in the window (from its finish to the
    next applied run's, at most its horizon, never past now), and the switching it paid once, if applied in the
    window. Penalties and grid money are the ``fleet`` line. Two queries whatever the number of sites or runs (the
    runs, then the site names); summed here."""
    start = now - timedelta(hours=hours)
    lookback = start - timedelta(hours=float(settings.ENERGYARB["HORIZON_HOURS"]))
    runs = [
        (finished, horizon, books)
        for finished, horizon, books in OptimizationRun.objects.filter(
            status=RunStatus.SUCCEEDED, is_applied=True, finished_at__gt=lookback, finished_at__lte=now
        )
        .order_by("finished_at", "id")
        .values_list("finished_at", "details__horizon_hours", "details__site_books")
        if finished is not None  # the filter says so; for the type checker
    ]
    sites: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(STREAM_KEYS, 0.0))
    fleet = dict.fromkeys(STREAM_KEYS, 0.0)
    covered = 0.0
    next_finish = [finished for finished, _, _ in runs[1:]] + [now] * bool(runs)
    for (finished, horizon, books), following in zip(runs, next_finish, strict=True):
        ends = min(now, following, finished + timedelta(hours=float(horizon or 0.0)))
        in_force = (ends - max(finished, start)).total_seconds() / 3600.0
        if not books or in_force <= 0:
            continue
        covered += in_force
        for code, streams in (books.get("sites") or {}).items():
            _add(sites[code], streams, in_force)
        _add(fleet, books.get("fleet") or {}, in_force)
        if finished >= start:  # starts and stops are paid once, when the plan is applied
            for code, usd in (books.get("switching_usd") or {}).items():
                sites[code]["other_costs"] -= float(usd)
    names = dict(Site.objects.filter(code__in=list(sites)).values_list("code", "name"))
    rows = [_site_row(code, names.get(code, code), usd) for code, usd in sites.items()]
    rows.sort(key=lambda row: (-row["revenue_usd"], row["name"]))
    return {
        "hours": hours,
        "covered_hours": round(covered, 3),
        "streams": list(STREAM_KEYS),
        "labels": {key: LABELS[key] for key in STREAM_KEYS},
        "sites": rows,
        "fleet": {key: round(value, 2) for key, value in fleet.items()},
        "profit_usd": round(sum(row["profit_usd"] for row in rows) + profit(fleet), 2),
    }


def _add(total: dict[str, float], streams: dict, hours: float) -> None:
    for key in STREAM_KEYS:
        total[key] += float(streams.get(key, 0.0)) * hours


def _site_row(code: str, name: str, usd: dict[str, float]) -> dict:
    revenue = sum(usd[stream.key] for stream in STREAMS if not stream.cost)
    return {
        "site": code,
        "name": name,
        "usd": {key: round(value, 2) for key, value in usd.items()},
        "revenue_usd": round(revenue, 2),
        "energy_cost_usd": round(-usd["energy_cost"], 2),
        "profit_usd": round(profit(usd), 2),
    }
