"""Output dataclasses of the engine, and the arithmetic that turns a solver's column vector into them.

The ledger recomputes every money flow from the primal values with plain numpy (units x economics), rather than
reading it back from the LP objective; the tests check that the ledger's total equals the solver's objective,
which catches a wrong coefficient in either place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import halls
from .formulation import Formulation
from .problem import REGIONS, Problem


@dataclass(frozen=True)
class SiteBreakdown:
    """Money per site over the horizon (USD), and its load in the first period (kW)."""

    site: str
    mining_revenue_usd: float
    inference_revenue_usd: float
    contract_revenue_usd: float  # commitment revenue, attributed by the site's share of placed kW
    energy_cost_usd: float
    carbon_cost_usd: float
    switching_cost_usd: float
    it_kw: float  # first period
    facility_kw: float  # first period, IT kW x PUE

    @property
    def revenue_usd(self) -> float:
        return self.mining_revenue_usd + self.inference_revenue_usd + self.contract_revenue_usd

    @property
    def profit_usd(self) -> float:
        return self.revenue_usd - self.energy_cost_usd - self.carbon_cost_usd - self.switching_cost_usd


@dataclass(frozen=True)
class Totals:
    """Fleet money (USD) over some periods; penalties live here because they belong to contracts, not sites."""

    mining_revenue_usd: float
    inference_revenue_usd: float
    contract_revenue_usd: float
    energy_cost_usd: float
    carbon_cost_usd: float
    switching_cost_usd: float  # paid: the switching cost per unit started or stopped, and each start's warm-up
    penalty_usd: float
    # Not money: a rolling plan's charge on each planned stop for the warm-up of its restart (an objective term,
    # starts.py), so the objective is ``profit_usd - stop_charge_usd``; no stream or book counts it.
    stop_charge_usd: float = 0.0

    @property
    def revenue_usd(self) -> float:
        return self.mining_revenue_usd + self.inference_revenue_usd + self.contract_revenue_usd

    @property
    def profit_usd(self) -> float:
        costs = self.energy_cost_usd + self.carbon_cost_usd + self.switching_cost_usd + self.penalty_usd
        return self.revenue_usd - costs

    @property
    def objective_usd(self) -> float:
        """What the plan maximised: the profit less the charge on planned stops."""
        return self.profit_usd - self.stop_charge_usd


@dataclass(frozen=True)
class CommitmentResult:
    """How one commitment is served: first-period placement, shortfalls, and its money over the horizon."""

    id: str | int
    tier: str
    capacity_kw: float
    placements_kw: dict[str, float]  # site code -> IT kW placed in the first period (sites with > 0 only)
    unserved_kw: float  # first period
    n_minus_1_shortfall_kw: float  # first period: kW not covered if the largest site is lost
    unserved_kwh: float  # horizon
    revenue_usd: float  # horizon
    penalty_usd: float  # horizon: credits for kWh not served (a kWh short of N-1 is served: no credit)
    n_minus_1_usd: float = 0.0  # horizon: the steering price of kWh short of N-1 (owed to nobody)


@dataclass(frozen=True)
class Shortfall:
    """A constraint the solver had to relax through its slack: the plan says what could not be met."""

    constraint: str  # e.g. "serve[commitment=12,period=0]"
    commitment: str | int
    period: int
    kw: float


@dataclass(frozen=True)
class BindingConstraint:
    """A constraint that limits profit in the first period, with its shadow price in plain units."""

    name: str  # e.g. "power[site=TX,period=0]"
    kind: str  # 'power' | 'inventory' | 'demand' | 'serve' | 'n_minus_1' | 'ramp'
    shadow_price_usd_per_h: float  # USD per hour that one more `per` would be worth (negative: costs)
    per: str  # 'MW' | 'unit' | 'Mtok/h' | 'kW'
    text: str
    site: str | None = None
    hardware: str | None = None
    region: str | None = None
    commitment: str | int | None = None


@dataclass(frozen=True, eq=False)
class WarmStart:
    """What the next solve of the same structure starts from (opaque to callers, picklable).

    The basis stays a ``highspy.HighsBasis`` in memory (no conversion on the hot path); pickling turns it into
    two int8 arrays, so a Celery worker can keep it in a cache between ticks.
    """

    signature: str  # fingerprint of the matrix and integrality: a warm start is used only when it matches
    col_value: np.ndarray  # primal values of the solve
    basis: Any = field(default=None, repr=False)  # highspy.HighsBasis of the LP (relaxation)

    def __getstate__(self) -> dict[str, object]:
        state: dict[str, object] = {"signature": self.signature, "col_value": self.col_value, "basis": None}
        if self.basis is not None:
            state["basis"] = (
                np.fromiter(map(int, self.basis.col_status), np.int8, len(self.basis.col_status)),
                np.fromiter(map(int, self.basis.row_status), np.int8, len(self.basis.row_status)),
            )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import highspy

        basis = None
        if state["basis"] is not None:
            statuses = {int(s): s for s in highspy.HighsBasisStatus.__members__.values()}
            basis = highspy.HighsBasis()
            basis.col_status = [statuses[v] for v in state["basis"][0].tolist()]
            basis.row_status = [statuses[v] for v in state["basis"][1].tolist()]
            basis.valid = True
        object.__setattr__(self, "signature", state["signature"])
        object.__setattr__(self, "col_value", state["col_value"])
        object.__setattr__(self, "basis", basis)


@dataclass(frozen=True, eq=False)
class Ledger:
    """Money and load per site and period, ``[S, T]`` arrays (penalty per period, ``[T]``)."""

    mining_revenue_usd: np.ndarray
    inference_revenue_usd: np.ndarray
    contract_revenue_usd: np.ndarray
    energy_cost_usd: np.ndarray
    carbon_cost_usd: np.ndarray
    switching_cost_usd: np.ndarray  # paid (the wear per unit moved, each start's warm-up)
    penalty_usd: np.ndarray
    it_kw: np.ndarray
    facility_kw: np.ndarray
    stop_charge_usd: np.ndarray  # not money: the objective's charge on planned stops (Totals.stop_charge_usd)

    def totals(self, periods: slice | list[int] | None = None) -> Totals:
        """Fleet totals over ``periods`` (default: the whole horizon)."""
        sel = slice(None) if periods is None else periods
        return Totals(
            mining_revenue_usd=float(self.mining_revenue_usd[:, sel].sum()),
            inference_revenue_usd=float(self.inference_revenue_usd[:, sel].sum()),
            contract_revenue_usd=float(self.contract_revenue_usd[:, sel].sum()),
            energy_cost_usd=float(self.energy_cost_usd[:, sel].sum()),
            carbon_cost_usd=float(self.carbon_cost_usd[:, sel].sum()),
            switching_cost_usd=float(self.switching_cost_usd[:, sel].sum()),
            penalty_usd=float(self.penalty_usd[sel].sum()),
            stop_charge_usd=float(self.stop_charge_usd[:, sel].sum()),
        )


@dataclass(frozen=True, eq=False)
class Solution:
    """The engine's answer. ``units[s, h, t]`` is the plan; period 0 is the allocation to apply now."""

    status: str  # 'optimal' | 'time_limit' | 'infeasible' | 'error: ...'
    objective_usd: float  # profit over the horizon (NaN when no plan was found)
    mip_gap: float  # relative MILP gap (0 for an LP)
    solve_seconds: float
    site_codes: tuple[str, ...]
    hardware_codes: tuple[str, ...]
    units: np.ndarray  # [S, H, T]
    ledger: Ledger
    site_breakdown: tuple[SiteBreakdown, ...]
    totals: Totals
    commitments: tuple[CommitmentResult, ...]
    shortfalls: tuple[Shortfall, ...]
    binding: tuple[BindingConstraint, ...]
    explanation: tuple[str, ...]
    grid_books: dict[str, float] = field(default_factory=dict)  # grid streams in USD (engine/grid.py books)
    grid_ledger: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the same per period ([T] USD)
    warm: WarmStart | None = field(default=None, repr=False)
    warm_started: bool = False  # True when the solve continued from ``warm_start``'s basis

    @property
    def ok(self) -> bool:
        """True when the plan is usable (optimal, or the best found within the time limit)."""
        return self.status in ("optimal", "time_limit")

    @property
    def first_period_units(self) -> np.ndarray:
        """``[S, H]`` units to run now."""
        return self.units[:, :, 0]

    def allocation(self, period: int = 0) -> dict[str, dict[str, float]]:
        """``{site: {hardware: units}}`` for one period (zeros included, so the shape is stable)."""
        grid = self.units[:, :, period]
        return {
            site: {hw: float(grid[s, h]) for h, hw in enumerate(self.hardware_codes)}
            for s, site in enumerate(self.site_codes)
        }


def compute_ledger(problem: Problem, form: Formulation, col: np.ndarray) -> Ledger:
    """Money per site and period from the primal values (USD; kW for load)."""
    cols = form.cols
    hours = problem.period_hours[None, :]  # [1, T]
    kw = np.array([h.power_kw for h in problem.hardware])
    x = cols["x"].take(col)  # [T, S, H]
    it_kw = (x * kw).sum(axis=2).T  # [S, T]
    facility_kw = halls.facility_kw(problem, x.transpose(1, 2, 0))  # each machine at its hall's PUE
    # Facility MWh = facility kW x h / 1000; energy USD = MWh x USD/MWh; carbon USD = MWh x USD/MWh of carbon.
    mwh = facility_kw * hours / 1000.0
    mining = np.einsum("tsh,th->st", x, form.mining_usd_per_unit_h) * hours
    n_sites, n_t = it_kw.shape
    inference = np.zeros((n_sites, n_t))
    if cols["sold"].size:
        # Region sales are shared among its sites by their unreserved (spot) token output.
        k = form.inference
        spot = x[:, :, k] * form.tokens_mtok_per_unit_h[k]  # [T, S, K] Mtok/h
        if cols["w"].size:
            spot[:, form.commit_sites, :] -= cols["w"].take(col) * form.tokens_mtok_per_unit_h[k]
        spot = np.clip(spot.sum(axis=2), 0.0, None)  # [T, S]
        region = np.array([REGIONS.index(s.region) for s in problem.sites])
        produced = np.zeros((n_t, len(REGIONS)))
        np.add.at(produced, (slice(None), region), spot)  # type: ignore[arg-type]  # numpy's stubs miss tuple indices
        share = np.divide(spot, produced[:, region], out=np.zeros_like(spot), where=produced[:, region] > 0)
        sold_usd = cols["sold"].take(col) * problem.market.inference_price_usd_per_mtok[:, None] * hours.T  # [T, R]
        inference = (share * sold_usd[:, region]).T
    switching = np.zeros((n_sites, n_t))
    stop_charge = np.zeros((n_sites, n_t))
    if form.switching:
        # Units started + stopped = |x_t - x_{t-1}| (x_{-1} = previous allocation; free without one).
        before = problem.previous_units[None] if problem.previous_units is not None else x[:1]
        moved = np.abs(np.diff(np.concatenate([before, x]), axis=0)).sum(axis=2).T  # [S, T]
        switching = moved * form.switching_usd_per_unit[None, :]
        if form.start_usd_per_unit is not None:  # warm-up lost by every unit started (starts.py)
            change = np.diff(np.concatenate([before, x]), axis=0)  # [T, S, H]
            switching = switching + np.einsum("tsh,th->st", np.clip(change, 0.0, None), form.start_usd_per_unit)
            if form.stop_usd_per_unit is not None:  # a rolling plan: each stop's restart warm-up (not paid)
                stop_charge = np.einsum("tsh,th->st", np.clip(-change, 0.0, None), form.stop_usd_per_unit)
    contract = np.zeros((n_sites, n_t))
    penalty = np.zeros(n_t)
    groups = form.book.groups
    if groups:
        cap = np.array([g.capacity_kw for g in groups])
        price = np.array([g.price_usd_per_kwh for g in groups])
        pen = np.array([g.penalty_usd_per_kwh for g in groups])
        unserved = np.clip(cols["u"].take(col), 0.0, None)  # [T, G]
        served_usd = (cap - unserved) * price * problem.period_hours[:, None]  # [T, G]
        y = np.clip(cols["y"].take(col), 0.0, None)  # [T, P]
        placed = np.zeros((n_t, len(cap)))
        np.add.at(placed, (slice(None), form.pair_commitment), y)  # type: ignore[arg-type]  # numpy's stubs miss tuple indices
        share = np.divide(
            y, placed[:, form.pair_commitment], out=np.zeros_like(y), where=placed[:, form.pair_commitment] > 0
        )
        np.add.at(contract.T, (slice(None), form.pair_site), share * served_usd[:, form.pair_commitment])  # type: ignore[arg-type]  # numpy's stubs miss tuple indices
        penalty = (unserved * pen).sum(axis=1) * problem.period_hours
        if form.n1_commitments.size:
            short = np.clip(cols["v"].take(col), 0.0, None)
            n1_price = np.array([g.n_minus_1_price for g in groups])[form.n1_commitments]
            penalty = penalty + (short * n1_price).sum(axis=1) * problem.period_hours
    return Ledger(
        mining_revenue_usd=mining,
        inference_revenue_usd=inference,
        contract_revenue_usd=contract,
        energy_cost_usd=mwh * problem.energy_price_usd_per_mwh,
        carbon_cost_usd=mwh * form.carbon_usd_per_mwh[:, None],
        switching_cost_usd=switching,
        penalty_usd=penalty,
        it_kw=it_kw,
        facility_kw=facility_kw,
        stop_charge_usd=stop_charge,
    )


def site_breakdown(problem: Problem, ledger: Ledger) -> tuple[SiteBreakdown, ...]:
    """Per-site horizon totals plus first-period load, in site order."""
    return tuple(
        SiteBreakdown(
            site=code,
            mining_revenue_usd=float(ledger.mining_revenue_usd[s].sum()),
            inference_revenue_usd=float(ledger.inference_revenue_usd[s].sum()),
            contract_revenue_usd=float(ledger.contract_revenue_usd[s].sum()),
            energy_cost_usd=float(ledger.energy_cost_usd[s].sum()),
            carbon_cost_usd=float(ledger.carbon_cost_usd[s].sum()),
            switching_cost_usd=float(ledger.switching_cost_usd[s].sum()),
            it_kw=float(ledger.it_kw[s, 0]),
            facility_kw=float(ledger.facility_kw[s, 0]),
        )
        for s, code in enumerate(problem.site_codes)
    )


def commitment_results(
    problem: Problem, form: Formulation, col: np.ndarray
) -> tuple[tuple[CommitmentResult, ...], tuple[Shortfall, ...]]:
    """Placement of each commitment in period 0, and every relaxed serve / N-1 constraint (all periods).

    The formulation plans groups of interchangeable commitments (``book.py``); each commitment gets its share of
    its group's placement and shortfalls (``share = its kW / the group's kW``).
    """
    if not problem.commitments:
        return (), ()
    cols, book = form.cols, form.book
    hours = problem.period_hours
    group_of, share = book.group_of, book.share
    unserved = np.clip(cols["u"].take(col), 0.0, None)[:, group_of] * share  # [T, C]
    n1_short = np.zeros_like(unserved)
    if form.n1_commitments.size:
        n1_pos = np.full(len(book.groups), -1, dtype=np.int64)
        n1_pos[form.n1_commitments] = np.arange(form.n1_commitments.size)
        v = np.clip(cols["v"].take(col), 0.0, None)  # [T, N]
        is_n1 = n1_pos[group_of] >= 0
        n1_short[:, is_n1] = v[:, n1_pos[group_of[is_n1]]] * share[is_n1]
    y0 = np.clip(cols["y"].take(col)[0], 0.0, None)  # [P]
    pairs_of: dict[int, list[tuple[str, float]]] = {}
    for g, s, kw in zip(form.pair_commitment.tolist(), form.pair_site.tolist(), y0.tolist(), strict=True):
        pairs_of.setdefault(g, []).append((problem.site_codes[s], kw))
    unserved_kwh = (unserved * hours[:, None]).sum(axis=0)
    n1_kwh = (n1_short * hours[:, None]).sum(axis=0)
    results: list[CommitmentResult] = []
    shortfalls: list[Shortfall] = []
    tol = 1e-6
    for ci, c in enumerate(problem.commitments):
        part = float(share[ci])
        results.append(
            CommitmentResult(
                id=c.id,
                tier=c.tier,
                capacity_kw=c.capacity_kw,
                placements_kw={site: kw * part for site, kw in pairs_of.get(int(group_of[ci]), ()) if kw * part > tol},
                unserved_kw=float(unserved[0, ci]),
                n_minus_1_shortfall_kw=float(n1_short[0, ci]),
                unserved_kwh=float(unserved_kwh[ci]),
                revenue_usd=float((c.capacity_kw * hours.sum() - unserved_kwh[ci]) * c.price_usd_per_kwh),
                penalty_usd=float(unserved_kwh[ci] * c.penalty_usd_per_kwh),
                n_minus_1_usd=float(n1_kwh[ci] * c.n_minus_1_price),
            )
        )
        for t in np.flatnonzero(unserved[:, ci] > tol):
            shortfalls.append(Shortfall(f"serve[commitment={c.id},period={t}]", c.id, int(t), float(unserved[t, ci])))
        for t in np.flatnonzero(n1_short[:, ci] > tol):
            name = f"n_minus_1[commitment={c.id},period={t}]"
            shortfalls.append(Shortfall(name, c.id, int(t), float(n1_short[t, ci])))
    return tuple(results), tuple(shortfalls)
