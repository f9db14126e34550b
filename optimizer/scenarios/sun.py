"""The follow-the-sun scenario: spot inference by region and hour against a time-blind allocation."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np

from .. import engine
from ..books import solution_streams
from .world import ScenarioResult, _checked, _hour_labels, _start, build_world, sold_by_region


def follow_the_sun(*, hours: int = 24, start: datetime | None = None) -> ScenarioResult:
    """A UTC day: spot inference by region and hour, against a time-blind allocation.

    time-blind = one allocation for the whole day, planned on the day's average prices and demand and sized for
    each site's highest PUE of the day (so it is feasible every hour), then scored hour by hour on the real demand.
    """
    began = time.perf_counter()
    start = _start(start, day=True)
    world = build_world(start=start, hours=hours)
    problem = world.problem()
    aware = _checked(engine.solve(problem), "time-aware")
    flat = engine.Problem(
        sites=problem.sites,
        hardware=problem.hardware,
        inventory_units=problem.inventory_units,
        period_hours=np.array([float(problem.period_hours.sum())]),
        pue=problem.pue.max(axis=1, keepdims=True),
        hall_pue=None if problem.hall_pue is None else problem.hall_pue.max(axis=2, keepdims=True),
        energy_price_usd_per_mwh=problem.energy_price_usd_per_mwh.mean(axis=1, keepdims=True),
        market=engine.Market(
            hashprice_usd_per_ph_day=np.array([problem.market.hashprice_usd_per_ph_day.mean()]),
            inference_price_usd_per_mtok=np.array([problem.market.inference_price_usd_per_mtok.mean()]),
            inference_demand_mtok_per_h={
                r: np.array([v.mean()]) for r, v in problem.market.inference_demand_mtok_per_h.items()
            },
        ),
        commitments=problem.commitments,
        settings=problem.settings,
    )
    fixed = _checked(engine.solve(flat), "time-blind").units
    blind = _checked(engine.evaluate(problem, np.repeat(fixed, hours, axis=2)), "time-blind accounting")
    sold, sold_blind = sold_by_region(problem, aware), sold_by_region(problem, blind)
    demand = problem.market.inference_demand_mtok_per_h
    labels = _hour_labels(world)
    rows = []
    for t, label in enumerate(labels):
        row: dict[str, str | float] = {"hour_utc": label}
        for r in engine.REGIONS:
            row[f"{r}_mtok_after"] = float(sold[r][t])
        for r in engine.REGIONS:
            row[f"{r}_mtok_before"] = float(sold_blind[r][t])
        row["inference_usd_before"] = float(blind.ledger.inference_revenue_usd[:, t].sum())
        row["inference_usd_after"] = float(aware.ledger.inference_revenue_usd[:, t].sum())
        rows.append(row)
    summary: dict = {}
    for r in engine.REGIONS:
        summary[f"{r}_peak_hour_utc"] = labels[int(np.argmax(sold[r]))]
        summary[f"{r}_demand_peak_hour_utc"] = labels[int(np.argmax(demand[r]))]
    summary.update(
        {
            "inference_revenue_time_blind_usd": blind.totals.inference_revenue_usd,
            "inference_revenue_time_aware_usd": aware.totals.inference_revenue_usd,
            "revenue_time_blind_usd": blind.totals.revenue_usd,
            "revenue_time_aware_usd": aware.totals.revenue_usd,
            "profit_time_blind_usd": blind.totals.profit_usd,
            "profit_time_aware_usd": aware.totals.profit_usd,
            "profit_gain_usd": aware.totals.profit_usd - blind.totals.profit_usd,
        }
    )
    return ScenarioResult(
        scenario="follow-the-sun",
        title=f"Follow the sun: {hours} h from {start:%Y-%m-%d %H:%M} UTC",
        start=start,
        hours=hours,
        rows=rows,
        summary=summary,
        streams={"time-blind": solution_streams(blind), "time-aware": solution_streams(aware)},
        chart={
            "title": "Spot inference sold by region (time-aware plan)",
            "x_label": "hour (UTC)",
            "y_label": "million tokens per hour",
            "x": labels,
            "lines": {r: sold[r].tolist() for r in engine.REGIONS},
        },
        notes=["before = time-blind allocation (one allocation from daily averages); after = time-aware plan."],
        seconds=time.perf_counter() - began,
    )
