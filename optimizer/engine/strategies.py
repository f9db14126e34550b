"""Strategies compared in the backtest: ``lp`` (the engine), ``greedy``, ``seed`` and ``perfect``.

``greedy`` and ``seed`` produce integer allocations ``[S, H, T]``; ``run_strategy`` scores them with
``evaluate`` (units pinned, spot sales and contract placement optimized) so every strategy is measured by the
same accounting. ``perfect`` is the engine run on realized prices: the upper bound a strategy is judged against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import halls, heuristic_grid, starts
from .formulation import SECONDS_PER_HOUR, TOKENS_PER_MTOK
from .problem import Problem
from .solution import Solution
from .solve import evaluate, solve

STRATEGIES = ("lp", "greedy", "seed", "perfect")

# The original's per-site constants (cooling_efficiency, energy_cost_multiplier), as its MULTI_SITE_CONFIG had
# them. Its "optimization" used nothing else: the allocation ignores every price.
ORIGINAL_SITE_PROFILES: dict[str, tuple[float, float]] = {
    "site_1_nordic": (0.95, 0.6),
    "site_2_canada": (0.85, 0.7),
    "site_3_norway": (0.90, 0.5),
    "site_4_singapore": (0.40, 1.4),
    "site_5_texas": (0.60, 0.8),
    "site_6_ireland": (0.80, 0.9),
    "site_7_japan": (0.70, 1.2),
    "site_8_australia": (0.65, 1.0),
    "site_9_chile": (0.75, 0.7),
    "site_10_germany": (0.80, 1.1),
}
_DEFAULT_PROFILE = ORIGINAL_SITE_PROFILES["site_1_nordic"]  # the hackathon's single site ran the first profile


def _profile(code: str, profiles: Mapping[str, tuple[float, float]] | None) -> tuple[float, float]:
    if profiles and code in profiles:
        return profiles[code]
    if code in ORIGINAL_SITE_PROFILES:
        return ORIGINAL_SITE_PROFILES[code]
    lowered = code.lower()
    for key, value in ORIGINAL_SITE_PROFILES.items():
        if key.split("_", 2)[2] in lowered:  # "site_5_texas" matches "texas", "tx-texas-1", ...
            return value
    return _DEFAULT_PROFILE


def seed(problem: Problem, profiles: Mapping[str, tuple[float, float]] | None = None) -> np.ndarray:
    """The original hackathon's fixed formula, kept only for comparison.

    Per site: ``gpu = int(50 x cooling_efficiency / energy_multiplier)``, ``asic = int(30 x (1 -
    cooling_efficiency))``, ``immersion = 10 if cooling_efficiency > 0.7 else 5``, nothing else, whatever the
    prices. Made feasible only as far as it must be: clipped to inventory, scaled down to the site's power (and
    to a grid event's cap while it lasts), zero at offline sites, and started no faster than the ramp limit.
    """
    n_sites, n_hw, n_t = problem.shape
    codes = [h.code.lower() for h in problem.hardware]
    target = np.zeros((n_sites, n_hw))
    for s, site in enumerate(problem.sites):
        ce, mult = _profile(site.code, profiles)
        wanted = {"gpu": int(50 * ce / mult), "asic": int(30 * (1 - ce)), "immersion": 10 if ce > 0.7 else 5}
        for h, code in enumerate(codes):
            # "gpu" matches the hackathon's "gpu" as well as the catalogue's "inference_gpu" or "gpu_compute".
            words = code.replace("-", "_").split("_")
            target[s, h] = next((n for key, n in wanted.items() if key in words), 0)
    target = np.minimum(target, problem.inventory_units)
    units = np.zeros((n_sites, n_hw, n_t))
    capacity_it = np.array([s.power_capacity_kw for s in problem.sites])[:, None] / problem.pue  # [S, T] IT kW
    unit_kw = halls.site_it_kw_per_unit(problem)  # [S, H, T] in the site's IT kW (each machine at its hall's PUE)
    lim = heuristic_grid.limits(problem)  # an event's cap is a lower power limit while it lasts
    room = np.minimum(capacity_it, lim.facility_cap)  # [S, T] site IT kW
    kw = np.array([h.power_kw for h in problem.hardware])
    for t in range(n_t):
        load, it_load = (target * unit_kw[:, :, t]).sum(axis=1), target @ kw
        scale = np.minimum(1.0, np.divide(room[:, t], load, out=np.ones(n_sites), where=load > 0))
        it_scale = np.divide(lim.it_cap[:, t], it_load, out=np.ones(n_sites), where=it_load > 0)
        units[:, :, t] = np.floor(target * np.minimum(scale, it_scale)[:, None] + 1e-9)
    return _ramp_and_offline(problem, units)


def _ramp_and_offline(problem: Problem, units: np.ndarray) -> np.ndarray:
    """Zero offline sites and clamp every start to the ramp limit, period by period."""
    available = np.array([s.available for s in problem.sites])
    units = units * available[:, None, None]
    ramp = starts.start_limits(problem)  # [T, S, H]
    if ramp is None:
        return units
    prev = problem.previous_units
    for t in range(units.shape[2]):
        if prev is not None:
            units[:, :, t] = np.minimum(units[:, :, t], np.floor(prev + ramp[t] + 1e-9))
        prev = units[:, :, t]
    return units


def _commitment_shares(problem: Problem) -> list[heuristic_grid.Share]:
    """Where greedy keeps each contract's inference kW: evenly over the first eligible sites (N-1 by doubling up)."""
    shares: list[heuristic_grid.Share] = []
    inference = [h for h, hw in enumerate(problem.hardware) if hw.kind == "inference"]
    eligible_site = [
        site.available and problem.inventory_units[s, inference].sum() > 0 for s, site in enumerate(problem.sites)
    ]
    for i, c in enumerate(problem.commitments):
        allowed = set(c.allowed_sites) if c.allowed_sites is not None else set(problem.site_codes)
        candidates = [s for s, site in enumerate(problem.sites) if site.code in allowed and eligible_site[s]]
        want = max(c.min_sites, 2 if c.n_minus_1 else 1)
        chosen = candidates[:want]
        if not chosen:
            continue
        # N-1 over k sites needs capacity / (k - 1) at each; otherwise an even split.
        share = c.capacity_kw / (len(chosen) - 1) if c.n_minus_1 and len(chosen) > 1 else c.capacity_kw / len(chosen)
        shares.append((i, chosen, share))
    return shares


@dataclass(frozen=True)
class _Fleet:
    """Per-unit figures greedy reads every period (``[H]``, or ``[S, H, T]`` where the hall's PUE matters)."""

    kw: np.ndarray
    is_inf: np.ndarray
    tokens: np.ndarray  # Mtok per unit-hour (inference)
    hash_ph: np.ndarray  # PH/s per unit (miners)
    unit_kw: np.ndarray  # [S, H, T] site IT kW per unit
    facility_kw: np.ndarray  # [S, H, T] facility kW per unit
    reserve_order: list[int]  # commitment hardware: the fewest tokens per kW first (committed kW sell no tokens)

    @classmethod
    def of(cls, problem: Problem) -> _Fleet:
        kw = np.array([h.power_kw for h in problem.hardware])
        is_inf = np.array([h.kind == "inference" for h in problem.hardware])
        tokens = np.array([h.tokens_per_s for h in problem.hardware]) * SECONDS_PER_HOUR / TOKENS_PER_MTOK * is_inf
        order = [int(h) for h in np.argsort(tokens / kw, kind="stable") if is_inf[h]]
        return cls(
            kw=kw,
            is_inf=is_inf,
            tokens=tokens,
            hash_ph=np.array([h.hashrate_th_s for h in problem.hardware]) / 1000.0 * ~is_inf,
            unit_kw=halls.site_it_kw_per_unit(problem),
            facility_kw=kw[None, :, None] * halls.unit_pue(problem),
            reserve_order=order,
        )


def greedy(problem: Problem) -> np.ndarray:
    """Profit per watt, site by site: a strong but myopic integer heuristic.

    Each period, sites in order: first keep enough inference running for contracts (evenly over the first
    eligible sites, N-1 by doubling up), then fill the remaining IT kW with the model that earns the most per kW
    at that period's prices, as long as it earns anything, within inventory, the ramp limit and what is left of
    the region's inference demand. No look-ahead, no switching cost, no contract placement beyond the first sites.
    Grid programs by the rules of ``heuristic_grid``: event caps (miners curtailed first, then Spot inference,
    contracts only as their tier allows) and the expected coincident-peak charge counted as a cost.
    """
    n_sites, n_hw, n_t = problem.shape
    fleet = _Fleet.of(problem)
    lim = heuristic_grid.limits(problem)
    kept_kw = heuristic_grid.contract_kw(problem, lim, _commitment_shares(problem))
    limits = starts.start_limits(problem)
    ramp = limits if limits is not None else np.full((n_t, n_sites, n_hw), np.inf)  # [T, S, H]
    units = np.zeros((n_sites, n_hw, n_t))
    prev = problem.previous_units
    demand = problem.market.inference_demand_mtok_per_h
    carbon = problem.carbon_t_per_mwh * problem.settings.carbon_price_usd_per_t  # [S] USD per MWh
    for t in range(n_t):
        left = {r: float(v[t]) for r, v in demand.items()}
        earns = fleet.tokens * problem.market.inference_price_usd_per_mtok[t]
        earns = earns + fleet.hash_ph * problem.market.hashprice_usd_per_ph_day[t] / 24.0  # USD per unit-hour
        energy = fleet.facility_kw[:, :, t] / 1000.0 * (problem.energy_price_usd_per_mwh[:, t] + carbon)[:, None]
        peak = fleet.facility_kw[:, :, t] * (lim.cp_usd_per_kw[:, t] / problem.period_hours[t])[:, None]
        margin = earns[None, :] - energy - peak  # [S, H] USD per unit-hour, the expected peak charge included
        for s, site in enumerate(problem.sites):
            if not site.available:
                continue
            limit = problem.inventory_units[s].copy()
            if prev is not None:
                limit = np.minimum(limit, np.floor(prev[s] + ramp[t, s] + 1e-9))
            units[s, :, t] = _greedy_site(problem, fleet, lim, (s, t), limit, kept_kw[s, t], margin[s], left)
        prev = units[:, :, t]
    return units


def _greedy_site(
    problem: Problem,
    fleet: _Fleet,
    lim: heuristic_grid.Limits,
    at: tuple[int, int],
    limit: np.ndarray,
    need: float,
    margin: np.ndarray,
    left: dict[str, float],
) -> np.ndarray:
    """Site s's units in period t: ``need`` IT kW of contract inference, then the best ``margin`` (USD per
    unit-hour) per kW within the site's power and any event cap (``left``, the region's token demand still unsold,
    is consumed)."""
    s, t = at
    site = problem.sites[s]
    site_kw, kw = fleet.unit_kw[s, :, t], fleet.kw
    power_left = site.power_capacity_kw / problem.pue[s, t]  # site IT kW
    row = np.zeros(len(kw))
    for h in fleet.reserve_order:  # contracts first, above an event's cap only as far as their tier allows
        if need <= 1e-9:
            break
        n = min(limit[h], np.ceil(need / kw[h] - 1e-9), np.floor(power_left / site_kw[h] + 1e-9))
        row[h] += n
        power_left -= n * site_kw[h]
        need -= n * kw[h]
    capped = bool(lim.event[s, t])
    if capped:  # what the event's cap leaves goes to inference first: miners are curtailed first
        facility_left = lim.facility_cap[s, t] - float(row @ site_kw)
        it_left = lim.it_cap[s, t] - float(row @ kw)
        order = np.lexsort((-margin / site_kw, ~fleet.is_inf))
    else:
        order = np.argsort(-margin / site_kw, kind="stable")
    for h in order:
        if margin[h] <= 0:
            continue
        n = min(limit[h] - row[h], np.floor(power_left / site_kw[h] + 1e-9))
        if capped:
            room = min(max(facility_left, 0.0) / site_kw[h], max(it_left, 0.0) / kw[h])
            n = min(n, np.floor(room + 1e-9))
        if fleet.is_inf[h] and fleet.tokens[h] > 0 and site.region in left:
            with np.errstate(over="ignore"):  # a vanishing token rate just means "no demand limit"
                n = min(n, np.floor(left[site.region] / fleet.tokens[h] + 1e-9))
            left[site.region] -= max(n, 0) * fleet.tokens[h]
        n = max(n, 0.0)
        row[h] += n
        power_left -= n * site_kw[h]
        if capped:
            facility_left -= n * site_kw[h]
            it_left -= n * kw[h]
    return row


def perfect(problem: Problem) -> Solution:
    """The engine over realized prices (pass a problem built from what actually happened): the upper bound."""
    return solve(problem)


def run_strategy(name: str, problem: Problem, *, warm_start: Solution | None = None) -> Solution:
    """One strategy's plan for ``problem`` as a scored ``Solution`` (``lp`` and ``perfect`` solve it directly)."""
    if name == "lp":
        return solve(problem, warm_start=warm_start)
    if name == "perfect":
        return perfect(problem)
    if name == "greedy":
        return evaluate(problem, greedy(problem))
    if name == "seed":
        return evaluate(problem, seed(problem))
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
