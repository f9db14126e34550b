"""The books by stream: what a run (or backtest) earns and pays, split the way the business is run.

Streams, USD per hour of the run's horizon: mining, spot inference, SLA contracts, ancillary-service capacity,
event payments, coincident-peak charges avoided, penalties (credits owed beyond a tier's allowance and event
shortfalls; negative). Event payments are what the plan earns for the reduction it delivers against each event's
baseline at the program's rate (engine/grid.py); completing the event settles it again on the load it drew
(`grid.EventPerformance`).
"""

from __future__ import annotations

from .engine import Solution

STREAMS = (
    "mining",
    "spot_inference",
    "sla_contracts",
    "as_capacity",
    "event_payments",
    "cp_charges_avoided",
    "penalties",
)


def run_books(solution: Solution, hours: float) -> dict[str, float]:
    """USD/h per stream of one solution over a horizon of `hours`."""
    totals, grid = solution.totals, solution.grid_books
    penalty = totals.penalty_usd - grid.get("sla_credit_waived_usd", 0.0) + grid.get("event_penalty_usd", 0.0)
    values = {
        "mining": totals.mining_revenue_usd,
        "spot_inference": totals.inference_revenue_usd,
        "sla_contracts": totals.contract_revenue_usd,
        "as_capacity": grid.get("as_capacity_usd", 0.0),
        "event_payments": grid.get("event_payment_usd", 0.0),
        "cp_charges_avoided": grid.get("cp_charge_avoided_usd", 0.0),
        "penalties": -penalty,
    }
    return {name: round(values[name] / max(hours, 1e-9), 2) for name in STREAMS}
