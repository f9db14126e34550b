"""What a kWh short costs each running contract now: credit risk from the month so far (optimizer.engine.credit_risk).

The engine prices a committed kWh not served at the contract's price plus a penalty; this module sets that penalty
per contract from its tier's credit bands and its month so far (every minute of its service window since the first
of the month counts, as in the monthly credits, sla.services.uptime), and the price of a lost N-1 spread as the
risk of a second failure, not as a shortfall.

One more rule: a firm (non-preemptible) contract's kWh is never cheaper to short than what it would earn sold on the
token market (`resale_usd_per_kwh`): its capacity is the customer's and is not resold, whatever the credit. The
floor is 1 % above the resale value (`RESALE_FLOOR_MARGIN`): at exactly the resale value serving the contract and
selling its kW as spot tokens tie, and the solver may then short the customer by the tie alone (it did once a start
began to cost its warm-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sla.models import Contract
from sla.services import month_bounds
from sla.services.uptime import served_kw_minutes

from .engine.credit_risk import CreditBand, marginal_credit_usd_per_kwh, n_minus_1_risk_usd_per_kwh

RESALE_FLOOR_MARGIN = 0.01  # a firm contract's kWh costs at least 1 % more to short than it would earn resold


@dataclass(frozen=True)
class ShortfallPrice:
    """USD per kWh: `penalty` for a committed kWh not served (on top of its price), `n_minus_1_risk` per kWh of
    N-1 spread lost; `marginal_credit` is the credit part of the penalty (before the resale floor)."""

    penalty: float
    n_minus_1_risk: float
    marginal_credit: float


def shortfall_prices(
    contracts: Sequence[Contract], *, at: datetime, resale_usd_per_kwh: float = 0.0
) -> dict[int, ShortfallPrice]:
    """Per contract pk; contracts need their tier with its credit rules prefetched. One grouped query."""
    start, end = month_bounds(at.date())
    served = served_kw_minutes((c.pk for c in contracts), start=start, end=at)
    prices = {}
    for contract in contracts:
        bands = [CreditBand(float(r.uptime_below_pct), float(r.credit_pct)) for r in contract.tier.credit_rules.all()]
        due_so_far = float(contract.due_kw_minutes_between(start, at))
        short_kwh = max(due_so_far - float(served.get(contract.pk, 0)), 0.0) / 60
        marginal = marginal_credit_usd_per_kwh(
            bands,
            charge_usd=float(contract.charge_usd_between(start, end)),
            due_kwh=float(contract.due_kw_minutes_between(start, end)) / 60,
            short_kwh=short_kwh,
        )
        resale = resale_usd_per_kwh * (1.0 + RESALE_FLOOR_MARGIN)
        floor = 0.0 if contract.tier.is_preemptible else resale - float(contract.quoted_price_usd_per_kwh)
        prices[contract.pk] = ShortfallPrice(
            penalty=max(marginal, floor, 0.0),
            n_minus_1_risk=n_minus_1_risk_usd_per_kwh(marginal),
            marginal_credit=marginal,
        )
    return prices
