"""How the heuristics (``greedy``, ``seed``) respect grid programs: simple rules, not an optimization.

``lp`` prices every grid term in its objective (``grid.py``). The heuristics follow fixed rules instead, so that a
comparison (lp vs greedy vs seed) measures planning, not blindness to the programs:

- **Events.** In a period an event covers, the site's load stays within the event's cap (facility kW at the site's
  PUE, or IT kW for live events). ``greedy`` keeps contract kW in tier order: Premium always (above the cap if it
  must: the event is then under-delivered, as ``lp`` does), Standard and Flexible shed only while the kWh shed
  stay within the month's remaining downtime allowance (``GridInputs.allowance_kwh``), Spot-tier contracts shed
  freely; what is left of the cap goes to Spot-market inference first, then to miners, so miners are curtailed
  first. ``seed`` scales its fixed allocation down to the cap, as it does to the site's power.
- **Coincident peaks.** A unit drawing facility kW in a period costs ``probability x rate / peaks_per_year`` per
  kW (the expected charge, ``grid.CoincidentPeak``). ``greedy`` runs Spot-market inference and miners only while
  their margin exceeds that charge; it sheds a Spot, Standard or Flexible contract's kW (the last two within the
  allowance) where the charge per kW exceeds what the kW earns in the period. Premium is never shed. ``seed``
  ignores prices by design, the charge included.
- **Reserves.** Neither heuristic plans reserves; ``evaluate`` scores their pinned units and sells only the
  capacity that running load can hold (held <= load that can be shed within the product's response time;
  Reg-Down within the headroom), so they never sell capacity they do not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import grid, halls
from .problem import Problem

TIER_ORDER = ("premium", "standard", "flexible", "spot")  # contract kW are kept in this order, first to last


@dataclass(frozen=True)
class Limits:
    """``[S, T]`` arrays: the event caps (site IT kW for facility-kW events, IT kW for IT-kW events; infinite
    outside events), the expected coincident-peak charge in USD per facility kW drawn in each period, and where an
    event caps the load."""

    facility_cap: np.ndarray
    it_cap: np.ndarray
    cp_usd_per_kw: np.ndarray
    event: np.ndarray  # True where an event caps the site's load


def limits(problem: Problem) -> Limits:
    """The grid limits of ``problem`` (none without grid inputs)."""
    shape = (len(problem.sites), problem.period_hours.shape[0])
    if problem.grid is None:
        return Limits(np.full(shape, np.inf), np.full(shape, np.inf), np.zeros(shape), np.zeros(shape, dtype=bool))
    facility_cap, it_cap = grid.event_caps_it_kw(problem)
    charge = np.zeros(shape)
    peak = problem.grid.peak
    if peak is not None:
        per_kw = peak.expected_usd_per_kw()
        for code in peak.sites:
            charge[problem.site_codes.index(code)] = per_kw
    return Limits(facility_cap, it_cap, charge, np.isfinite(facility_cap) | np.isfinite(it_cap))


Share = tuple[int, list[int], float]  # commitment index, the sites it is kept at, IT kW at each


def _rank(tier: str) -> int:
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else 0  # an unknown tier is kept like Premium


def contract_kw(problem: Problem, lim: Limits, shares: Sequence[Share]) -> np.ndarray:
    """``[S, T]`` inference IT kW kept running for contracts once the rules above have shed what they may."""
    n_t = problem.period_hours.shape[0]
    hours = problem.period_hours
    kept = np.zeros((len(problem.sites), n_t))
    if problem.grid is None:  # nothing to shed: every share in every period
        for _, sites, share in shares:
            kept[sites] += share
        return kept
    allowance = {c: float(problem.grid.allowance_kwh.get(str(problem.commitments[c].id), 0.0)) for c, _, _ in shares}
    cap = np.minimum(lim.facility_cap, lim.it_cap)
    cp_it = lim.cp_usd_per_kw * halls.inference_pue(problem)  # per IT kW of inference
    ordered = sorted(shares, key=lambda share: _rank(problem.commitments[share[0]].tier))
    for t in range(n_t):
        for c, sites, share in ordered:
            commitment = problem.commitments[c]
            for s in sites:
                keep = share
                if commitment.tier in grid.SHEDDABLE_TIERS or commitment.tier == "spot":
                    if cp_it[s, t] > commitment.price_usd_per_kwh * hours[t]:
                        keep = 0.0  # the expected peak charge exceeds what the kW earn
                    keep = min(keep, max(cap[s, t] - kept[s, t], 0.0))
                    if commitment.tier in grid.SHEDDABLE_TIERS:  # never beyond the month's allowance
                        keep = max(keep, share - max(allowance[c], 0.0) / hours[t])
                        allowance[c] -= (share - keep) * hours[t]
                kept[s, t] += keep
    return kept
