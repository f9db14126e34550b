"""Grid programs in the engine: reserves held, event caps, coincident-peak charges, SLA shedding order.

Appended to a built ``Formulation`` (``extend``), so the core model is untouched and a problem without ``grid``
data is solved exactly as before. Units: kW of facility load (what the grid meters), USD.

- **Ancillary-service reserves** (``ReserveOffer``): column r[t,k] kW held for product k at its site, paid
  ``price_usd_per_mw_h / 1000 x hours`` per kW, up to the enrolled kW. Held capacity must be running load that
  can be shed within the product's response time and that backs no SLA commitment: miners always, unreserved
  (Spot-market) inference only when the product allows at least ``INFERENCE_SHED_S``; units reserved for a
  commitment (w) never count. Reg-Down is the other way round: headroom to *raise* load (load + r <= capacity).
- **Events** (``EventCap``): in each period of an event, site facility load <= cap, with a shortfall column paid
  at the program's penalty (so an impossible cap is under-delivered and priced, never infeasible). The reduction
  delivered is measured against the event's baseline and paid at the program's rate: a column d[e,t] kW paid
  ``payment_usd_per_kwh x hours``, with d <= baseline - load and d <= the reduction asked (baseline - cap).
- **SLA shedding order**: what a lower load gives up is priced by the objective: mining loses its margin, Spot
  inference and Spot contracts their low price, Flexible/Standard their price but *no credit* while the unserved
  kWh stay within the month's remaining downtime allowance (``allowance_kwh``; beyond it the credit is charged
  again), and Premium is never shed for an event: its unserved kW in event periods cost ``NEVER_SHED_USD_PER_KWH``,
  above any program's penalty, so the event is under-delivered first. With market prices where mining earns less
  per kW than Spot, the order is mining, then Spot, then Flexible/Standard within allowance, never Premium.
- **Coincident peaks** (``CoincidentPeak``): consuming kW in period t costs ``p_t x rate / n`` (USD), the expected
  share of the transmission charge that the period's load would set if it held one of the ``n`` peaks (4CP: 4,
  12CP: 12) with probability ``p_t``; the charge runs for a year, so ``rate`` is USD per kW-year.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from . import halls

if TYPE_CHECKING:
    from .formulation import Formulation
    from .problem import Problem

INFERENCE_SHED_S = 60.0  # seconds to preempt Spot inference (drain and stop); miners stop within a second
NEVER_SHED_USD_PER_KWH = 10_000.0
SHEDDABLE_TIERS = ("flexible", "standard")  # shed within the month's remaining downtime allowance
NEVER_SHED_TIERS = ("premium",)
PEAK_SHED_PROBABILITY = 0.01  # periods at least this likely to hold a coincident peak follow the shedding order


@dataclass(frozen=True, eq=False)
class ReserveOffer:
    """Up to ``max_kw`` of ``product`` at ``site``, paid ``price_usd_per_mw_h[T]`` per MW held per hour."""

    product: str  # 'rrs' | 'ecrs' | 'non_spin' | 'reg_up' | 'reg_down' | 'ers_10' | 'ers_30'
    site: str
    max_kw: float
    price_usd_per_mw_h: np.ndarray
    response_s: float

    @property
    def raises_load(self) -> bool:
        return self.product == "reg_down"


@dataclass(frozen=True, eq=False)
class EventCap:
    """During ``periods`` (a [T] bool mask), ``site``'s facility load (its IT load with ``it_kw``) stays <=
    ``cap_kw``."""

    event: str
    site: str
    periods: np.ndarray
    cap_kw: float
    penalty_usd_per_kwh: float
    baseline_kw: float = 0.0  # kW the reduction is measured from (0: no payment is measured)
    payment_usd_per_kwh: float = 0.0  # per kWh of reduction delivered, up to the reduction asked
    it_kw: bool = False  # cap and baseline in IT kW (the live events' unit), not facility kW

    @property
    def asked_kw(self) -> float:
        """The reduction the event asks for: baseline - cap (none when the cap is above the baseline)."""
        return max(self.baseline_kw - self.cap_kw, 0.0)


@dataclass(frozen=True, eq=False)
class CoincidentPeak:
    """Per-period probability that the system peak falls in the period; charge in USD per kW-year over ``n``."""

    probability: np.ndarray  # [T] 0..1
    rate_usd_per_kw_year: float
    peaks_per_year: int  # 4 (4CP) or 12 (12CP)
    sites: tuple[str, ...]  # the sites in that market
    label: str = "4CP"

    def expected_usd_per_kw(self) -> np.ndarray:
        """[T] the expected charge of one kW drawn in each period: probability x rate / peaks per year."""
        charge: np.ndarray = np.asarray(self.probability, dtype=float) * self.rate_usd_per_kw_year / self.peaks_per_year
        return charge


@dataclass(frozen=True, eq=False)
class GridInputs:
    """Everything about grid programs one solve needs."""

    reserves: tuple[ReserveOffer, ...] = ()
    events: tuple[EventCap, ...] = ()
    peak: CoincidentPeak | None = None
    allowance_kwh: Mapping[str, float] = field(default_factory=dict)  # commitment id -> kWh left this month


@dataclass
class _Grow:
    """New columns and rows appended to a formulation; entries are (row, col, value) in the grown numbering."""

    n_col: int
    n_row: int
    cost: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    row_lo: list[float] = field(default_factory=list)
    row_hi: list[float] = field(default_factory=list)
    entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def col(self, cost: float, upper: float) -> int:
        self.cost.append(cost)
        self.upper.append(upper)
        return self.n_col + len(self.cost) - 1

    def row(self, lo: float, hi: float) -> int:
        self.row_lo.append(lo)
        self.row_hi.append(hi)
        return self.n_row + len(self.row_lo) - 1

    def add(self, row: int, cols: np.ndarray, values: np.ndarray | float) -> None:
        cols = np.asarray(cols, dtype=np.int64).ravel()
        vals = np.broadcast_to(np.asarray(values, dtype=float), cols.shape).ravel()
        self.entries.append((np.full(cols.size, row, dtype=np.int64), cols, vals))


def _load_terms(
    problem: Problem, form: Formulation, s: int, t: int, *, sheddable: str
) -> tuple[np.ndarray, np.ndarray]:
    """Columns and facility-kW coefficients of site s's load in period t: all of it (``"all"``), or the load
    that can be shed: miners (``"miners"``) or miners plus unreserved inference (``"spot"``)."""
    kw = np.array([h.power_kw for h in problem.hardware]) * halls.unit_pue(problem)[s, :, t]  # each at its hall's PUE
    is_miner = np.array([h.kind == "miner" for h in problem.hardware])
    x = form.cols["x"].index()[t, s]
    if sheddable == "miners":
        return x[is_miner], kw[is_miner]
    cols, coef = [x], [kw]
    if sheddable == "spot":
        cs = np.flatnonzero(form.commit_sites == s)
        if cs.size:  # units reserved for commitments back an SLA: they are not reserve capacity
            cols.append(form.cols["w"].index()[t, cs[0]])
            coef.append(-kw[form.inference])
    return np.concatenate(cols), np.concatenate(coef)


def _reserves(problem: Problem, form: Formulation, grid: GridInputs, grow: _Grow) -> dict[int, list[int]]:
    hours = problem.period_hours
    capacity = np.array([s.power_capacity_kw for s in problem.sites])
    site_pos = {code: i for i, code in enumerate(problem.site_codes)}
    held: dict[int, list[int]] = {}
    for k, offer in enumerate(grid.reserves):
        s = site_pos[offer.site]
        price = np.asarray(offer.price_usd_per_mw_h, dtype=float)
        held[k] = [grow.col(-price[t] / 1000.0 * hours[t], offer.max_kw) for t in range(len(hours))]
    for s in {site_pos[o.site] for o in grid.reserves}:
        mine = [k for k, o in enumerate(grid.reserves) if site_pos[o.site] == s]
        for t in range(len(hours)):
            offers = [(held[k][t], grid.reserves[k]) for k in mine]
            fast = [col for col, o in offers if not o.raises_load and o.response_s < INFERENCE_SHED_S]
            slow = [col for col, o in offers if not o.raises_load]
            down = [col for col, o in offers if o.raises_load]
            for group, kind in ((fast, "miners"), (slow, "spot")):
                if group:  # reserves held <= load that can be shed within their response time
                    row = grow.row(-np.inf, 0.0)
                    grow.add(row, np.array(group), 1.0)
                    cols, coef = _load_terms(problem, form, s, t, sheddable=kind)
                    grow.add(row, cols, -coef)
            if down:  # Reg-Down: headroom to raise load, load + held <= facility capacity
                row = grow.row(-np.inf, float(capacity[s]))
                grow.add(row, np.array(down), 1.0)
                cols, coef = _load_terms(problem, form, s, t, sheddable="all")
                grow.add(row, cols, coef)
    return held


def _events(
    problem: Problem, form: Formulation, grid: GridInputs, grow: _Grow
) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], int]]:
    """Per event and period: the shortfall column (load - cap, penalised) and, for a paying event, the paid
    reduction column (d <= baseline - load, d <= asked, earning the program's rate)."""
    hours = problem.period_hours
    site_pos = {code: i for i, code in enumerate(problem.site_codes)}
    short: dict[tuple[int, int], int] = {}
    paid: dict[tuple[int, int], int] = {}
    for e, event in enumerate(grid.events):
        s = site_pos[event.site]
        for t in np.flatnonzero(np.asarray(event.periods, dtype=bool)):
            col = grow.col(event.penalty_usd_per_kwh * hours[t], np.inf)
            row = grow.row(-np.inf, event.cap_kw)
            cols, coef = _load_terms(problem, form, s, int(t), sheddable="all")
            if event.it_kw:  # the same columns (x[t, s, :]) at each machine's IT kW
                coef = np.array([h.power_kw for h in problem.hardware], dtype=float)
            grow.add(row, cols, coef)
            grow.add(row, np.array([col]), -1.0)
            short[(e, int(t))] = col
            if event.payment_usd_per_kwh > 0 and event.asked_kw > 0:
                delivered = grow.col(-event.payment_usd_per_kwh * hours[t], event.asked_kw)
                row = grow.row(-np.inf, event.baseline_kw)  # d + load <= baseline
                grow.add(row, cols, coef)
                grow.add(row, np.array([delivered]), 1.0)
                paid[(e, int(t))] = delivered
    return short, paid


def _shedding(problem: Problem, form: Formulation, grid: GridInputs, grow: _Grow, cost: np.ndarray) -> dict[str, int]:
    """Reprice unserved commitments in event (and likely-peak) periods: Premium never, Flexible/Standard without
    credit within the remaining allowance (one column per commitment for the kWh beyond it, which pays the
    credit)."""
    mask = np.zeros(problem.period_hours.shape[0], dtype=bool)
    for event in grid.events:
        mask |= np.asarray(event.periods, dtype=bool)
    if grid.peak is not None:  # a likely coincident peak is a reason to shed, under the same order
        mask |= np.asarray(grid.peak.probability, dtype=float) >= PEAK_SHED_PROBABILITY
    beyond: dict[str, int] = {}
    if not mask.any() or not problem.commitments:
        return beyond
    u = form.cols["u"].index()  # [T, G]: unserved kW of each group of interchangeable contracts (book.py)
    hours = problem.period_hours
    for c, commitment in enumerate(form.book.groups):
        periods = np.flatnonzero(mask)
        if commitment.tier in NEVER_SHED_TIERS:
            cost[u[periods, c]] += NEVER_SHED_USD_PER_KWH * hours[periods]
        elif commitment.tier in SHEDDABLE_TIERS:
            allowance = _group_allowance_kwh(problem, form, grid, c)
            cost[u[periods, c]] -= commitment.penalty_usd_per_kwh * hours[periods]
            col = grow.col(commitment.penalty_usd_per_kwh, np.inf)  # kWh unserved beyond the allowance
            row = grow.row(-np.inf, allowance)
            grow.add(row, u[periods, c], hours[periods])
            grow.add(row, np.array([col]), -1.0)
            beyond[str(commitment.id)] = col
    return beyond


def _peak_cost(problem: Problem, form: Formulation, grid: GridInputs, cost: np.ndarray) -> None:
    peak = grid.peak
    if peak is None:
        return
    kw = np.array([h.power_kw for h in problem.hardware])
    x = form.cols["x"].index()  # [T, S, H]
    per_kw = peak.expected_usd_per_kw()  # [T]
    for code in peak.sites:
        s = problem.site_codes.index(code)
        cost[x[:, s, :]] += per_kw[:, None] * kw[None, :] * halls.unit_pue(problem)[s].T


def _group_allowance_kwh(problem: Problem, form: Formulation, grid: GridInputs, group: int) -> float:
    """kWh a group may go unserved within every member's allowance: a group's shortfall is shared in proportion
    to capacity (book.py), so member c takes share_c of it and the group may shed min_c(allowance_c / share_c)."""
    members = form.book.members(group)
    limits = [
        float(grid.allowance_kwh.get(str(problem.commitments[c].id), 0.0)) / max(float(form.book.share[c]), 1e-12)
        for c in members
    ]
    return min(limits, default=0.0)


@dataclass(frozen=True, eq=False)
class GridColumns:
    """Where the grid columns sit in the grown formulation (for the ledger and the explanation)."""

    held: dict[int, list[int]]  # offer index -> [T] column index
    short: dict[tuple[int, int], int]  # (event index, period) -> column index
    paid: dict[tuple[int, int], int]  # (event index, period) -> paid-reduction column index (paying events)
    beyond: dict[str, int]  # group id (a contract's id for a group of one) -> column index


def _inputs(problem: Problem) -> GridInputs:
    if problem.grid is None:
        raise ValueError("the problem has no grid inputs")
    return problem.grid


def _columns(form: Formulation) -> GridColumns:
    if form.grid_columns is None:
        raise ValueError("the formulation has no grid columns")
    return form.grid_columns


def extend(problem: Problem, form: Formulation) -> Formulation:
    """``form`` with the grid columns, rows and costs of ``problem.grid`` appended (a new Formulation)."""
    grid = _inputs(problem)
    cost = form.cost.copy()
    grow = _Grow(n_col=form.num_col, n_row=form.num_row)
    held = _reserves(problem, form, grid, grow)
    short, paid = _events(problem, form, grid, grow)
    beyond = _shedding(problem, form, grid, grow, cost)
    _peak_cost(problem, form, grid, cost)
    n_new, m_new = len(grow.cost), len(grow.row_lo)
    n_col, n_row = form.num_col + n_new, form.num_row + m_new
    old = form.matrix.tocoo()
    rows = [old.row] + [e[0] for e in grow.entries]
    cols = [old.col] + [e[1] for e in grow.entries]
    vals = [old.data] + [e[2] for e in grow.entries]
    matrix = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_row, n_col))
    grown = replace(
        form,
        cost=np.concatenate([cost, np.array(grow.cost, dtype=float)]),
        col_lower=np.concatenate([form.col_lower, np.zeros(n_new)]),
        col_upper=np.concatenate([form.col_upper, np.array(grow.upper, dtype=float)]),
        row_lower=np.concatenate([form.row_lower, np.array(grow.row_lo, dtype=float)]),
        row_upper=np.concatenate([form.row_upper, np.array(grow.row_hi, dtype=float)]),
        matrix=matrix,
        integrality=np.concatenate([form.integrality, np.zeros(n_new, dtype=np.uint8)]),
    )
    grown.grid_columns = GridColumns(held=held, short=short, paid=paid, beyond=beyond)
    return grown


def period_books(problem: Problem, form: Formulation, col: np.ndarray) -> dict[str, np.ndarray]:
    """USD per period ([T]) of the grid streams: reserve capacity paid, event payments and shortfall penalties,
    the SLA credit waived within the allowance, the expected coincident-peak charge, and the expected charge
    avoided against the load drawn before the likely peak: the allocation running now (previous units) for periods
    from the first on, else the plan's own load in the last period before them with no chance of a peak."""
    grid, where = _inputs(problem), _columns(form)
    hours = problem.period_hours
    n_t = hours.shape[0]
    out = {name: np.zeros(n_t) for name in ("as_capacity_usd", "event_payment_usd", "event_penalty_usd")}
    for k, cols in where.held.items():
        price = np.asarray(grid.reserves[k].price_usd_per_mw_h, dtype=float)
        out["as_capacity_usd"] += col[np.asarray(cols)] * price / 1000.0 * hours
    for key, columns in (("event_penalty_usd", where.short), ("event_payment_usd", where.paid)):
        for (e, t), c in columns.items():
            event = grid.events[e]
            rate = event.penalty_usd_per_kwh if key == "event_penalty_usd" else event.payment_usd_per_kwh
            out[key][t] += float(col[c]) * rate * hours[t]
    out["sla_credit_waived_usd"] = _credit_waived(problem, form, col)
    out["cp_expected_charge_usd"] = np.zeros(n_t)
    out["cp_charge_avoided_usd"] = np.zeros(n_t)
    if grid.peak is not None:
        facility = site_facility_kw(problem, form, col)  # [S, T]
        probability = np.asarray(grid.peak.probability, dtype=float)
        per_kw = grid.peak.expected_usd_per_kw()
        idx = [problem.site_codes.index(code) for code in grid.peak.sites]
        out["cp_expected_charge_usd"] = (facility[idx] * per_kw).sum(axis=0)
        reference = _cp_reference_kw(problem, facility, probability)[idx]
        avoided = np.nan_to_num(np.maximum(reference - facility[idx], 0.0), nan=0.0)
        out["cp_charge_avoided_usd"] = (avoided * per_kw).sum(axis=0)
    return out


def _cp_reference_kw(problem: Problem, facility: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """[S, T] the load a likely-peak period is measured against: what ran before the run of likely periods it is
    in (the allocation running now for a run from period 0; NaN when nothing is known)."""
    running = _running_kw(problem)
    last = running if running is not None else np.full(facility.shape[0], np.nan)
    reference = np.empty(facility.shape)
    for t in range(facility.shape[1]):
        if probability[t] <= 0:
            last = facility[:, t]
        reference[:, t] = last
    return reference


def books(problem: Problem, form: Formulation, col: np.ndarray) -> dict[str, float]:
    """USD over the horizon of the grid streams (``period_books`` summed, the SLA credit waived within the
    allowance among them) and kW held per product in the first period."""
    grid, where = _inputs(problem), _columns(form)
    per_period = period_books(problem, form, col)
    held0: dict[str, float] = {}
    for k, cols in where.held.items():  # kW held per product in the first period
        product = grid.reserves[k].product
        held0[f"held_kw:{product}"] = held0.get(f"held_kw:{product}", 0.0) + round(float(col[cols[0]]), 3)
    return {**held0, **{name: round(float(values.sum()), 2) for name, values in per_period.items()}}


def _credit_waived(problem: Problem, form: Formulation, col: np.ndarray) -> np.ndarray:
    """[T] the SLA credit the plan does not owe because the kWh it sheds stay within the month's allowance: each
    commitment's kWh shed less those beyond the allowance, at its penalty, spread over the periods it sheds in."""
    where, hours = _columns(form), problem.period_hours
    waived = np.zeros(hours.shape[0])
    if not where.beyond:
        return waived
    u = form.cols["u"].take(col)
    for c, commitment in enumerate(form.book.groups):
        key = str(commitment.id)
        shed = u[:, c] * hours  # [T] kWh
        total = float(shed.sum())
        if key in where.beyond and total > 0:
            waived += shed / total * (total - float(col[where.beyond[key]])) * commitment.penalty_usd_per_kwh
    return waived


def site_facility_kw(problem: Problem, form: Formulation, col: np.ndarray) -> np.ndarray:
    """[S, T] facility kW of the plan."""
    facility: np.ndarray = halls.facility_kw(problem, form.cols["x"].take(col).transpose(1, 2, 0))
    return facility


def explain(problem: Problem, form: Formulation, col: np.ndarray) -> list[str]:
    """Why load was held or shed in the first period, in plain sentences."""
    grid, where = _inputs(problem), _columns(form)
    lines = []
    for k, cols in where.held.items():
        offer, kw_held = grid.reserves[k], float(col[cols[0]])
        if kw_held > 1e-3:
            price = float(np.asarray(offer.price_usd_per_mw_h)[0])
            lines.append(
                f"Held {kw_held / 1000:.2f} MW at {offer.site} for {offer.product.upper()} at {price:.0f} USD/MW-h."
            )
    facility = site_facility_kw(problem, form, col)
    before = _running_kw(problem)
    hw_kw = np.array([h.power_kw for h in problem.hardware])
    it_now = form.cols["x"].take(col)[0] @ hw_kw  # [S] IT kW in the first period
    it_before = problem.previous_units @ hw_kw if problem.previous_units is not None else None
    for e, event in enumerate(grid.events):
        if not np.asarray(event.periods, dtype=bool)[0]:
            continue
        s = problem.site_codes.index(event.site)
        short = float(col[where.short[(e, 0)]])
        load, was = (it_now[s], it_before) if event.it_kw else (facility[s, 0], before)
        shed = max(0.0, float(was[s] - load)) if was is not None else None
        load_mw, cap_mw = load / 1000, event.cap_kw / 1000
        text = f"Event {event.event} at {event.site}: load {load_mw:.2f} MW, cap {cap_mw:.2f} MW"
        text += f"; shed {shed / 1000:.2f} MW" if shed is not None else ""
        if (e, 0) in where.paid:
            delivered = float(col[where.paid[(e, 0)]])
            rate = event.payment_usd_per_kwh * 1000
            text += f"; {delivered / 1000:.2f} MW delivered below its baseline, paid {rate:.0f} USD/MWh"
        text += (
            f"; {short:.0f} kW short, penalty {event.penalty_usd_per_kwh * 1000:.0f} USD/MWh." if short > 1e-3 else "."
        )
        lines.append(text)
    if where.beyond:
        u = form.cols["u"].take(col)[0]
        for c, commitment in enumerate(form.book.groups):
            if u[c] > 1e-3 and commitment.tier in (*SHEDDABLE_TIERS, "spot"):
                lines.append(f"Shed {u[c]:.0f} kW of {commitment.tier} contract {commitment.id} for a grid event.")
    peak = grid.peak
    if peak is not None and before is not None:
        p0 = float(np.asarray(peak.probability)[0])
        for code in peak.sites:
            s = problem.site_codes.index(code)
            shed = float(before[s] - facility[s, 0])
            if p0 >= 0.05 and shed > 1e-3:
                lines.append(
                    f"Shed {shed / 1000:.2f} MW at {code}: {p0 * 100:.0f} % chance of a {peak.label} interval."
                )
    return lines


def _running_kw(problem: Problem) -> np.ndarray | None:
    """[S] facility kW of the allocation running now (period-0 PUE), or None without one."""
    if problem.previous_units is None:
        return None
    kw = np.array([h.power_kw for h in problem.hardware])
    running: np.ndarray = (problem.previous_units * kw * halls.unit_pue(problem)[:, :, 0]).sum(axis=1)
    return running


def event_caps_it_kw(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """For rounding units to whole ones: ([S, T] the caps of facility-kW events in the site's IT kW, [S, T] the
    caps of IT-kW events in IT kW); infinite outside events."""
    shape = (len(problem.sites), problem.period_hours.shape[0])
    facility_caps, it_caps = np.full(shape, np.inf), np.full(shape, np.inf)
    for event in _inputs(problem).events:
        s = problem.site_codes.index(event.site)
        mask = np.asarray(event.periods, dtype=bool)
        if event.it_kw:
            it_caps[s, mask] = np.minimum(it_caps[s, mask], event.cap_kw)
        else:
            facility_caps[s, mask] = np.minimum(facility_caps[s, mask], event.cap_kw / problem.pue[s, mask])
    return facility_caps, it_caps
