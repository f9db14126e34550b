"""The books by stream: what a run earns and pays over its horizon, USD per hour, split by the streams of
`optimizer/streams.py` (the backtest's scores use the same split), so they add up to the run's profit.

Event payments are what the plan earns for the reduction it delivers against each event's baseline at the
program's rate (engine/grid.py); completing the event settles it again on the load it drew
(`grid.EventPerformance`). Penalties are credits owed beyond a tier's allowance and event shortfalls; the
coincident-peak charge is the expected charge of the load planned in likely peaks, and the charge avoided is the
memo beside the streams.
"""

from __future__ import annotations

from .engine import Solution
from .streams import MEMO, by_stream


def solution_streams(solution: Solution, hours: float = 1.0, digits: int | None = None) -> dict[str, float]:
    """USD per stream of one solution (per hour over a horizon of `hours`; over its whole horizon by default)."""
    totals, grid = solution.totals, solution.grid_books
    return by_stream(
        mining=totals.mining_revenue_usd,
        spot_inference=totals.inference_revenue_usd,
        sla_contracts=totals.contract_revenue_usd,
        as_capacity=grid.get("as_capacity_usd", 0.0),
        event_payments=grid.get("event_payment_usd", 0.0),
        penalties=totals.penalty_usd - grid.get("sla_credit_waived_usd", 0.0) + grid.get("event_penalty_usd", 0.0),
        energy_cost=totals.energy_cost_usd,
        cp_charge=grid.get("cp_expected_charge_usd", 0.0),
        other_costs=totals.carbon_cost_usd + totals.switching_cost_usd,
        per=max(hours, 1e-9),
        digits=digits,
    )


def run_books(solution: Solution, hours: float) -> dict[str, float]:
    """USD/h per stream of one solution over a horizon of `hours`, and the memo (`cp_charges_avoided`) beside
    them: the streams add up to the run's profit per hour, the memo is not one of them."""
    avoided = solution.grid_books.get("cp_charge_avoided_usd", 0.0)
    return {**solution_streams(solution, hours, 2), MEMO.key: round(avoided / max(hours, 1e-9), 2)}


def site_books(solution: Solution, period_hours: float) -> dict:
    """What the plan's first period (the one applied) earns and pays per site: ``{"sites": {code: streams USD/h},
    "fleet": streams USD/h, "switching_usd": {code: USD}}``. A site earns its mining, Spot inference and SLA contract
    revenue (contracts attributed by the site's share of placed kW) and pays its energy and carbon; penalties and the
    grid programs' money belong to the fleet's contracts and enrolments, so they are the ``fleet`` line. Starting
    and stopping machines is paid once, not per hour: ``switching_usd``, the USD of the changes this plan made."""
    ledger, grid = solution.ledger, solution.grid_ledger
    per = max(period_hours, 1e-9)

    def first(name: str) -> float:
        values = grid.get(name)
        return float(values[0]) if values is not None and len(values) else 0.0

    sites = {
        code: by_stream(
            mining=float(ledger.mining_revenue_usd[s, 0]),
            spot_inference=float(ledger.inference_revenue_usd[s, 0]),
            sla_contracts=float(ledger.contract_revenue_usd[s, 0]),
            energy_cost=float(ledger.energy_cost_usd[s, 0]),
            other_costs=float(ledger.carbon_cost_usd[s, 0]),
            per=per,
            digits=2,
        )
        for s, code in enumerate(solution.site_codes)
    }
    fleet = by_stream(
        mining=0.0,
        spot_inference=0.0,
        sla_contracts=0.0,
        energy_cost=0.0,
        as_capacity=first("as_capacity_usd"),
        event_payments=first("event_payment_usd"),
        penalties=float(ledger.penalty_usd[0]) - first("sla_credit_waived_usd") + first("event_penalty_usd"),
        cp_charge=first("cp_expected_charge_usd"),
        per=per,
        digits=2,
    )
    switching = {code: round(float(ledger.switching_cost_usd[s, 0]), 2) for s, code in enumerate(solution.site_codes)}
    return {"sites": sites, "fleet": fleet, "switching_usd": switching}
