"""What a kWh short costs a contract this month: the credit risk the engine prices shortfalls at.

Clouds credit a band of the month's charge when monthly uptime falls below a threshold (Premium: 10 % below 99.9,
25 % below 99, 100 % below 95), capped at the whole charge. The cost of one more kWh short is therefore not a
fixed multiple of the price: it depends on where the month so far stands among the bands. This module prices it
on the staircase made linear between its steps:

    projected uptime u = 100 x (1 - kWh short so far / kWh due in the whole month)   (every later minute served)
    next band t_j      = the highest threshold t_j <= u whose credit exceeds the credit already owed at u
    marginal price     = (credit_j - credit owed) % x month's charge / (kWh from the band above, t_j-1 or 100 %,
                         down to t_j)

each band's step spread evenly over the kWh between the band above it and it, so the prices summed over a whole
month add up to the credits, never past the charge; 0 once the month is credited in full (the cap). A clean month
of Premium costs 100 x price per kWh short (10 % of the charge over 0.1 % of its energy), a month past 99.9 %
16.7 x (15 % over 0.9 %), past 99 % 18.75 x (75 % over 4 %), a month below 95 % nothing more.

A Premium contract that loses its N-1 spread is still served: nothing is owed unless another site fails while it
is exposed. That risk is priced as expected credit: kWh exposed x the site failure rate per hour x the hours to
fail over x the marginal price (`n_minus_1_risk_usd_per_kwh`), not as a shortfall.

Pure: floats in, floats out; no Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Unplanned loss of a whole site: about four a year across the industry's surveyed sites (Uptime Institute
# outage surveys put serious site outages at a few per site-decade; we take a cautious 1 in 2,000 hours), and the
# failover that re-places the lost kW takes about half an hour (sla.services.failover runs on the next re-plan).
SITE_FAILURE_RATE_PER_HOUR = 1 / 2000
FAILOVER_HOURS = 0.5


@dataclass(frozen=True)
class CreditBand:
    """Uptime below `uptime_below_pct` earns `credit_pct` % of the month's charge back."""

    uptime_below_pct: float
    credit_pct: float


def credit_owed_pct(bands: Iterable[CreditBand], uptime_pct: float) -> float:
    """The band's credit for a month's uptime (largest applicable step), capped at 100 %."""
    owed = [band.credit_pct for band in bands if uptime_pct < band.uptime_below_pct]
    return min(max(owed, default=0.0), 100.0)


def marginal_credit_usd_per_kwh(
    bands: Iterable[CreditBand], *, charge_usd: float, due_kwh: float, short_kwh: float = 0.0
) -> float:
    """USD per further kWh short this month, from the month so far (see the module docstring).

    `charge_usd` is the month's charge, `due_kwh` the kWh owed over the whole month (capacity x every minute of
    its service window in it), `short_kwh` those already not served. 0 without bands, without energy due, or once
    the month is credited in full.
    """
    bands = sorted(bands, key=lambda band: band.uptime_below_pct, reverse=True)
    if not bands or due_kwh <= 0 or charge_usd <= 0:
        return 0.0
    uptime = 100.0 * (1.0 - min(max(short_kwh, 0.0), due_kwh) / due_kwh)
    owed = credit_owed_pct(bands, uptime)
    upper = 100.0
    for band in bands:
        credit = min(band.credit_pct, 100.0)
        if band.uptime_below_pct <= uptime and credit > owed:
            span_kwh = max((upper - band.uptime_below_pct) / 100.0 * due_kwh, 1e-9)
            return (credit - owed) / 100.0 * charge_usd / span_kwh
        upper = band.uptime_below_pct
    return 0.0


def n_minus_1_risk_usd_per_kwh(
    marginal_usd_per_kwh: float,
    *,
    failure_rate_per_hour: float = SITE_FAILURE_RATE_PER_HOUR,
    failover_hours: float = FAILOVER_HOURS,
) -> float:
    """Expected credit per kWh of N-1 spread lost: the customer is served, and owed something only if another site
    fails while exposed (rate per hour) and until failover re-places it."""
    return marginal_usd_per_kwh * failure_rate_per_hour * failover_hours
