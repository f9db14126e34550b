"""The renewable scenario: the same day planned without and with a carbon price."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np

from .. import engine
from ..books import solution_streams
from .world import ScenarioError, ScenarioResult, _checked, _start, build_world, co2_t, facility_mwh

HIGH_RENEWABLE_SHARE = 0.7  # a site at or above this renewable share counts as high-renewable


def renewable(
    *, carbon_price_usd_per_t: float = 80.0, hours: int = 24, start: datetime | None = None
) -> ScenarioResult:
    """The same day planned without and with a carbon price: CO2, high-renewable share, profit per tonne.

    Profit here is operating profit (revenue - energy - switching - penalties): the carbon price steers the plan
    but is not counted as money paid, so "profit given up" is what the cleaner plan really costs.
    """
    if carbon_price_usd_per_t < 0:
        raise ScenarioError("carbon price must be >= 0")
    began = time.perf_counter()
    start = _start(start)
    world = build_world(start=start, hours=hours)
    before_problem = world.problem(carbon_price_usd_per_t=0.0)
    after_problem = world.problem(carbon_price_usd_per_t=carbon_price_usd_per_t)
    before = _checked(engine.solve(before_problem), "carbon-blind")
    after = _checked(engine.solve(after_problem), "carbon-priced")
    co2_before, co2_after = co2_t(before_problem, before), co2_t(after_problem, after)
    mwh_before, mwh_after = facility_mwh(before_problem, before), facility_mwh(after_problem, after)
    high = np.array([s.renewable_share >= HIGH_RENEWABLE_SHARE for s in world.sites])

    def share(mwh: np.ndarray) -> float:
        return float(mwh[high].sum() / mwh.sum() * 100.0) if mwh.sum() > 0 else 0.0

    def operating(solution: engine.Solution) -> float:
        return solution.totals.profit_usd + solution.totals.carbon_cost_usd

    avoided = float(co2_before.sum() - co2_after.sum())
    given_up = operating(before) - operating(after)
    rows = [
        {
            "site": s.code,
            "renewable_pct": s.renewable_share * 100.0,
            "grid_kg_per_mwh": s.grid_carbon_kg_per_mwh,
            "mwh_before": float(mwh_before[i]),
            "mwh_after": float(mwh_after[i]),
            "co2_t_before": float(co2_before[i]),
            "co2_t_after": float(co2_after[i]),
        }
        for i, s in enumerate(world.sites)
    ]
    summary: dict[str, float | int | str] = {
        "carbon_price_usd_per_t": carbon_price_usd_per_t,
        "co2_t_before": float(co2_before.sum()),
        "co2_t_after": float(co2_after.sum()),
        "co2_t_avoided": avoided,
        "high_renewable_share_pct_before": share(mwh_before),
        "high_renewable_share_pct_after": share(mwh_after),
        # What each facility MWh of the plan emits on average: the load moves to cleaner MWh.
        "kg_co2_per_mwh_before": float(co2_before.sum() * 1000.0 / max(mwh_before.sum(), 1e-9)),
        "kg_co2_per_mwh_after": float(co2_after.sum() * 1000.0 / max(mwh_after.sum(), 1e-9)),
        "profit_before_usd": operating(before),
        "profit_after_usd": operating(after),
        "profit_given_up_usd": given_up,
        "profit_given_up_usd_per_t": given_up / avoided if avoided > 1e-9 else 0.0,
    }
    return ScenarioResult(
        scenario="renewable",
        title=f"Carbon price {carbon_price_usd_per_t:g} USD/t over {hours} h",
        start=start,
        hours=hours,
        rows=rows,
        summary=summary,
        streams={"no carbon price": solution_streams(before), "carbon price": solution_streams(after)},
        chart={
            "title": f"CO2 by site, without and with {carbon_price_usd_per_t:g} USD/t",
            "x_label": "site",
            "y_label": "t CO2",
            "x": [s.code for s in world.sites],
            "lines": {"no carbon price": co2_before.tolist(), "carbon price": co2_after.tolist()},
            "kind": "bar",
        },
        notes=[
            f"high-renewable = renewable share >= {HIGH_RENEWABLE_SHARE:.0%}; "
            "profit is operating profit (the carbon price steers, it is not paid)."
        ],
        seconds=time.perf_counter() - began,
    )
