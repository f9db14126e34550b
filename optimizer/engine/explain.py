"""Plain-words explanations of a plan: what binds and what it is worth, how contracts are placed, what changed.

Shadow prices come from the LP duals (for a MILP, from the LP with the integer columns fixed at their optimal
values). The solver minimizes ``-profit``, so a dual ``d`` on a row means ``-d`` USD of profit per unit of the
row's right-hand side over that period; dividing by the period's hours gives USD per hour. Only the first
period is explained: it is the allocation applied now; later periods are a forecast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import halls, starts
from .formulation import Formulation, describe
from .problem import REGIONS, Commitment, Problem
from .solution import BindingConstraint, CommitmentResult, Shortfall, Totals

TOL_USD_PER_H = 0.005  # shadow prices below half a cent an hour are noise, not a story
MAX_LINES_BINDING = 8
MAX_LINES_CHANGES = 10
MAX_LINES_COMMITMENTS = 20  # beyond this many contracts, placements are told per tier


def _money(value: float) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 100:
        return f"{sign}${value:,.0f}"
    return f"{sign}${value:,.2f}"


def _from(problem: Problem) -> str:
    return f" from {problem.period_starts[0]:%Y-%m-%d %H:%M}" if problem.period_starts else ""


def _few(codes: list[str], limit: int = 5) -> str:
    return ", ".join(codes[:limit]) + (f" and {len(codes) - limit} more" if len(codes) > limit else "")


@dataclass(frozen=True)
class _FirstPeriod:
    """The first period's solution and duals, as the binding-constraint readers share them."""

    problem: Problem
    form: Formulation
    col: np.ndarray
    row_dual: np.ndarray
    col_dual: np.ndarray
    integer: bool

    @cached_property
    def hours0(self) -> float:
        return float(self.problem.period_hours[0])

    @cached_property
    def kw(self) -> np.ndarray:
        kw: np.ndarray = np.array([h.power_kw for h in self.problem.hardware])
        return kw

    @cached_property
    def x0(self) -> np.ndarray:
        x0: np.ndarray = self.form.cols["x"].take(self.col)[0]  # [S, H]
        return x0

    @cached_property
    def unit_value(self) -> np.ndarray:
        value: np.ndarray = -self.form.cols["x"].take(self.col_dual)[0] / self.hours0  # [S, H] USD/h per extra unit
        return value

    @cached_property
    def inventory(self) -> np.ndarray:
        units: np.ndarray = self.problem.inventory_units * np.array([s.available for s in self.problem.sites])[:, None]
        return units

    @cached_property
    def unit_facility_kw(self) -> np.ndarray:
        """[S, H] facility kW of one more unit: each machine at its hall's PUE (halls.py)."""
        per_unit: np.ndarray = self.kw[None, :] * halls.unit_pue(self.problem)[:, :, 0]
        return per_unit

    @cached_property
    def facility_slack_kw(self) -> np.ndarray:
        problem = self.problem
        facility_kw = (self.x0 * self.unit_facility_kw).sum(axis=1)
        slack: np.ndarray = np.array([s.power_capacity_kw for s in problem.sites]) - facility_kw
        return slack

    def row_value(self, name: str) -> np.ndarray:
        """USD/h per unit of the right-hand side of each first-period row of the block ``name``."""
        value: np.ndarray = -self.form.rows[name].take(self.row_dual)[0] / self.hours0
        return value


def binding_constraints(
    problem: Problem,
    form: Formulation,
    col: np.ndarray,
    row_dual: np.ndarray,
    col_dual: np.ndarray,
    *,
    integer: bool = False,
) -> tuple[BindingConstraint, ...]:
    """First-period constraints with a non-negligible shadow price, most valuable first.

    ``integer``: the duals come from the LP with the unit counts fixed, where a full site's power row has a zero
    dual (the units cannot move). Its value is then read from the units' reduced costs instead: one more MW
    runs ``1000 / (kW x PUE)`` more units of the best model that still has inventory.
    """
    period = _FirstPeriod(problem, form, col, row_dual, col_dual, integer)
    found = [
        *_power_bindings(period),
        *_inventory_bindings(period),
        *_demand_bindings(period),
        *_serve_bindings(period),
        *_n_minus_1_bindings(period),
        *_ramp_bindings(period),
    ]
    return tuple(sorted(found, key=lambda b: -abs(b.shadow_price_usd_per_h)))


def _power_bindings(period: _FirstPeriod) -> list[BindingConstraint]:
    """Site power, per MW of facility power (the grid connection), not per site IT kW: the row is in the site's
    IT kW (capacity / site PUE on the right, each machine at its hall's PUE on the left), so one more facility kW
    is worth dual / site PUE, whatever hall the extra power would feed."""
    problem, form = period.problem, period.form
    sites = problem.site_codes
    power = -form.rows["power"].take(period.row_dual)[0]  # [S] USD per IT kW over period 0
    per_mw_h = power / problem.pue[:, 0] * 1000.0 / period.hours0
    if period.integer:
        room = period.inventory - period.x0 >= 1 - 1e-6
        per_mw_unit = np.where(room, period.unit_value / period.unit_facility_kw * 1000.0, 0.0)
        tight = period.facility_slack_kw < period.unit_facility_kw.max(axis=1) - 1e-9
        per_mw_h = np.where(tight & (per_mw_h <= TOL_USD_PER_H), per_mw_unit.max(axis=1), per_mw_h)
    return [
        BindingConstraint(
            name=describe(problem, form, form.rows, form.rows["power"].start + int(s)),
            kind="power",
            shadow_price_usd_per_h=float(per_mw_h[s]),
            per="MW",
            text=f"site {sites[s]} is power-bound: one more MW of facility power is worth {_money(per_mw_h[s])}/h",
            site=sites[s],
        )
        for s in np.flatnonzero(per_mw_h > TOL_USD_PER_H)
    ]


def _inventory_bindings(period: _FirstPeriod) -> list[BindingConstraint]:
    """Every installed unit runs and one more would pay (and, in whole units, would fit in power)."""
    problem, inventory, unit_value = period.problem, period.inventory, period.unit_value
    at_cap = (period.x0 >= inventory - 1e-6) & (inventory > 0)
    if period.integer:
        at_cap &= period.facility_slack_kw[:, None] >= period.unit_facility_kw - 1e-9
    return _per_unit_bindings(
        problem,
        "inventory",
        at_cap & (unit_value > TOL_USD_PER_H),
        unit_value,
        lambda site, hw, s, h, value: (
            f"all {problem.inventory_units[s, h]:g} {hw} units at {site} run: one more unit is worth {_money(value)}/h"
        ),
    )


def _demand_bindings(period: _FirstPeriod) -> list[BindingConstraint]:
    """Spot sales sit at their upper bound (the region's demand) when demand is what limits them."""
    cols, form = period.form.cols, period.form
    if not cols["sold"].size:
        return []
    sold0 = cols["sold"].take(period.col)[0]
    demand = -cols["sold"].take(period.col_dual)[0] / period.hours0  # USD/h per extra Mtok/h of demand
    at_demand = sold0 >= cols["sold"].take(form.col_upper)[0] - 1e-6
    return [
        BindingConstraint(
            name=f"demand[region={REGIONS[r]},period=0]",
            kind="demand",
            shadow_price_usd_per_h=float(demand[r]),
            per="Mtok/h",
            text=f"inference demand in {REGIONS[r]} is sold out: one more million tokens/h of demand "
            f"is worth {_money(float(demand[r]))}/h",
            region=REGIONS[r],
        )
        for r in np.flatnonzero(at_demand & (demand > TOL_USD_PER_H))
    ]


def _serve_bindings(period: _FirstPeriod) -> list[BindingConstraint]:
    """What one more committed kW of each commitment group changes (usually negative)."""
    problem, form = period.problem, period.form
    if "serve" not in form.rows:
        return []
    serve = period.row_value("serve")  # USD/h per extra committed kW
    found = []
    for ci, c in enumerate(form.book.groups):
        value = float(serve[ci])
        if abs(value) > TOL_USD_PER_H / 10:
            found.append(
                BindingConstraint(
                    name=describe(problem, form, form.rows, form.rows["serve"].start + ci),
                    kind="serve",
                    shadow_price_usd_per_h=value,
                    per="kW",
                    text=f"{c.tier} commitment {c.id}: one more committed kW changes profit by "
                    f"{_money(value)}/h (it pays {_money(c.price_usd_per_kwh)}/kWh)",
                    commitment=c.id,
                )
            )
    return found


def _n_minus_1_bindings(period: _FirstPeriod) -> list[BindingConstraint]:
    """N-1 rows that bind: a commitment's cover if one of its sites is lost."""
    problem, form = period.problem, period.form
    if "n1" not in form.rows or not form.rows["n1"].size:
        return []
    n1 = period.row_value("n1")
    found = []
    for j in np.flatnonzero(np.abs(n1) > TOL_USD_PER_H / 10):
        pair = form.n1_pairs[j]
        c = form.book.groups[form.pair_commitment[pair]]
        lost = problem.site_codes[form.pair_site[pair]]
        value = float(n1[j])
        found.append(
            BindingConstraint(
                name=describe(problem, form, form.rows, form.rows["n1"].start + int(j)),
                kind="n_minus_1",
                shadow_price_usd_per_h=value,
                per="kW",
                text=f"N-1 for {c.tier} commitment {c.id} binds if {lost} is lost: "
                f"it changes profit by {_money(value)}/h per kW",
                site=lost,
                commitment=c.id,
            )
        )
    return found


def _ramp_bindings(period: _FirstPeriod) -> list[BindingConstraint]:
    """Ramp limits that hold back starting units now."""
    problem, form = period.problem, period.form
    if not (form.switching and starts.has_start_limits(problem) and problem.previous_units is not None):
        return []
    cols = form.cols
    dp0 = cols["dp"].take(period.col)[0]
    ramp_value = -cols["dp"].take(period.col_dual)[0] / period.hours0
    limit = cols["dp"].take(form.col_upper)[0]
    return _per_unit_bindings(
        problem,
        "ramp",
        (dp0 >= limit - 1e-6) & (ramp_value > TOL_USD_PER_H),
        ramp_value,
        lambda site, hw, s, h, value: (
            f"ramp limit on {hw} at {site} binds: starting one more unit now would be worth {_money(value)}/h"
        ),
    )


def _per_unit_bindings(
    problem: Problem,
    kind: str,
    binding: np.ndarray,
    value_usd_per_h: np.ndarray,
    text: Callable[[str, str, int, int, float], str],
) -> list[BindingConstraint]:
    """One binding row per (site, hardware) where ``binding`` holds, priced per unit at ``value_usd_per_h``."""
    sites, hws = problem.site_codes, problem.hardware_codes
    found = []
    for s, h in zip(*np.nonzero(binding), strict=True):
        value = float(value_usd_per_h[s, h])
        found.append(
            BindingConstraint(
                name=f"{kind}[site={sites[s]},hardware={hws[h]},period=0]",
                kind=kind,
                shadow_price_usd_per_h=value,
                per="unit",
                text=text(sites[s], hws[h], int(s), int(h), value),
                site=sites[s],
                hardware=hws[h],
            )
        )
    return found


def unit_margin_usd_per_h(problem: Problem, form: Formulation, period: int = 0) -> np.ndarray:
    """``[S, H]`` profit of one more running unit per hour at spot prices (ignores demand and power limits)."""
    kw = np.array([h.power_kw for h in problem.hardware])
    facility_mw = kw[None, :] * halls.unit_pue(problem)[:, :, period] / 1000.0
    energy = facility_mw * (problem.energy_price_usd_per_mwh[:, period, None] + form.carbon_usd_per_mwh[:, None])
    tokens = form.tokens_mtok_per_unit_h * problem.market.inference_price_usd_per_mtok[period]
    margin: np.ndarray = form.mining_usd_per_unit_h[period][None, :] + tokens[None, :] - energy
    return margin


def describe_changes(
    problem: Problem,
    form: Formulation,
    previous_units: np.ndarray | None,
    units_now: np.ndarray,
    binding: tuple[BindingConstraint, ...] = (),
    commitments: tuple[CommitmentResult, ...] = (),
) -> list[str]:
    """What changed against the previous allocation and why, largest kW moves first."""
    if previous_units is None:
        return ["No previous allocation: this is a cold start."]
    delta = units_now - previous_units
    kw = np.array([h.power_kw for h in problem.hardware])
    moved = np.abs(delta) * kw[None, :]
    if not np.any(np.abs(delta) > 1e-6):
        return ["No change since the previous allocation."]
    margin = unit_margin_usd_per_h(problem, form)
    power_bound = {b.site for b in binding if b.kind == "power"}
    sold_out = {b.region for b in binding if b.kind == "demand"}
    hosting = {site for c in commitments for site in c.placements_kw}
    lines = [f"Changes since the previous allocation ({int(np.count_nonzero(np.abs(delta) > 1e-6))} site/model pairs):"]
    order = np.argsort(-moved, axis=None)[:MAX_LINES_CHANGES]
    for flat in order:
        s, h = np.unravel_index(flat, delta.shape)
        if abs(delta[s, h]) <= 1e-6:
            break
        site, hw = problem.sites[s], problem.hardware[h]
        m = float(margin[s, h])
        if not site.available:
            why = "the site is offline"
        elif delta[s, h] > 0 and hw.kind == "inference" and site.code in hosting:
            why = "it carries committed contract kW"
        elif delta[s, h] > 0:
            why = f"it earns {_money(m)}/h per unit now"
            if problem.energy_price_usd_per_mwh[s, 0] < 0:
                why += f" (energy price {_money(problem.energy_price_usd_per_mwh[s, 0])}/MWh: load is paid)"
        elif m < 0:
            why = f"it would lose {_money(-m)}/h per unit now"
        elif hw.kind == "inference" and site.region in sold_out:
            why = f"inference demand in {site.region} is sold out"
        elif site.code in power_bound:
            why = "the site's power went to better-paying hardware"
        else:
            why = "capacity moved where it earns more (or to serve a commitment)"
        lines.append(
            f"  {site.code} {hw.code}: {previous_units[s, h]:g} -> {units_now[s, h]:g} ({delta[s, h]:+g}), "
            f"because {why}"
        )
    return lines


def explanation_lines(
    problem: Problem,
    form: Formulation,
    units_now: np.ndarray,
    totals: Totals,
    commitments: tuple[CommitmentResult, ...],
    shortfalls: tuple[Shortfall, ...],
    binding: tuple[BindingConstraint, ...],
    header: str,
) -> tuple[str, ...]:
    """Everything a staff member needs to trust the first-period plan, in plain sentences."""
    lines = [
        header,
        f"Profit {_money(totals.profit_usd)} over {problem.period_hours.sum():g} h{_from(problem)}: "
        f"revenue {_money(totals.revenue_usd)} (mining {_money(totals.mining_revenue_usd)}, "
        f"inference {_money(totals.inference_revenue_usd)}, "
        f"contracts {_money(totals.contract_revenue_usd)}), energy {_money(totals.energy_cost_usd)}, "
        f"carbon {_money(totals.carbon_cost_usd)}, switching {_money(totals.switching_cost_usd)}, "
        f"penalties {_money(totals.penalty_usd)}.",
    ]
    if totals.stop_charge_usd > 0:  # a rolling plan's objective term (starts.py), not money
        lines.append(
            f"Planned stops are charged {_money(totals.stop_charge_usd)} for the warm-up of their restarts: a planning "
            "term that keeps idle units warm, not money paid (not in the profit above)."
        )
    offline = [site.code for site in problem.sites if not site.available]
    prices = problem.energy_price_usd_per_mwh[:, 0]
    paid = [s for s, site in enumerate(problem.sites) if site.available and prices[s] < 0 and units_now[s].sum() > 0]
    if len(offline) == 1:
        lines.append(f"site {offline[0]} is offline (maintenance): all its units are held at zero.")
    elif offline:
        lines.append(f"{len(offline)} sites are offline (maintenance), all units held at zero: {_few(offline)}.")
    if len(paid) == 1:
        code, price = problem.sites[paid[0]].code, _money(prices[paid[0]])
        lines.append(
            f"site {code} has a negative energy price ({price}/MWh): running load earns money, so it runs all it can."
        )
    elif paid:
        codes = [problem.sites[s].code for s in paid]
        lines.append(
            f"{len(paid)} sites have a negative energy price now ({_few(codes)}): running load earns money there."
        )
    lines.extend(b.text for b in binding[:MAX_LINES_BINDING])
    specs = {c.id: c for c in problem.commitments}
    lines.extend(_placement_lines(commitments, specs))
    first: dict[tuple[str, str | int], Shortfall] = {}
    for sf in shortfalls:
        first.setdefault((sf.constraint.split("[")[0], sf.commitment), sf)
    for n, ((kind, cid), sf) in enumerate(first.items()):
        if n == MAX_LINES_COMMITMENTS:
            lines.append(f"... and {len(first) - n} more contract shortfalls (the run's details list them all).")
            break
        spec = specs[cid]
        if kind == "serve":
            lines.append(
                f"{spec.tier.capitalize()} commitment {cid} cannot be fully served: {sf.kw:,.0f} kW of "
                f"{spec.capacity_kw:,.0f} kW short from period {sf.period} (constraint {sf.constraint} relaxed)."
            )
        else:
            lines.append(
                f"{spec.tier.capitalize()} commitment {cid} is {sf.kw:,.0f} kW short of N-1 from period {sf.period}"
                f" (constraint {sf.constraint} relaxed)."
            )
    return tuple(lines)


def _placement_lines(commitments: tuple[CommitmentResult, ...], specs: dict[str | int, Commitment]) -> list[str]:
    """Where each commitment is served, one line each for a small book; per tier beyond MAX_LINES_COMMITMENTS (the
    explanation is stored with every run and read by the advisor: it must not grow with the book)."""
    if len(commitments) > MAX_LINES_COMMITMENTS:
        per_tier: dict[str, list[float]] = {}
        for c in commitments:
            kw = per_tier.setdefault(c.tier, [0, 0.0, 0.0])
            kw[0] += 1
            kw[1] += sum(c.placements_kw.values())
            kw[2] += c.capacity_kw
        return [
            f"{tier.capitalize()}: {int(n)} contracts, {placed:,.0f} kW placed for {committed:,.0f} kW committed."
            for tier, (n, placed, committed) in per_tier.items()
        ]
    lines = []
    for c in commitments:
        where = "/".join(sorted(c.placements_kw, key=lambda k: -c.placements_kw[k]))
        kws = "/".join(f"{v:,.0f}" for v in sorted(c.placements_kw.values(), reverse=True))
        if specs[c.id].n_minus_1 and len(c.placements_kw) >= 2:
            lines.append(f"{c.tier.capitalize()} commitment {c.id} is split across {where} ({kws} kW) for N-1.")
        elif c.placements_kw:
            lines.append(f"{c.tier.capitalize()} commitment {c.id} is served at {where} ({kws} kW).")
    return lines


def allocation_violations(problem: Problem, units: np.ndarray, *, tol: float = 1e-6) -> tuple[str, ...]:
    """Every hard constraint a given allocation ``[S, H, T]`` breaks (power, inventory, offline, integrality, ramp).

    Used before scoring a strategy's or an advisor's allocation, so an infeasible proposal is named, not solved.
    """
    units = np.asarray(units, dtype=float)
    n_sites, n_hw, n_t = problem.shape
    if units.shape != (n_sites, n_hw, n_t):
        return (f"allocation must have shape {(n_sites, n_hw, n_t)}, got {units.shape}",)
    found: list[str] = []
    sites, hws = problem.site_codes, problem.hardware_codes
    for s, h, t in zip(*np.nonzero(units < -tol), strict=True):
        found.append(f"negative units: {sites[s]} {hws[h]} period {t}")
    for s, h, t in zip(*np.nonzero(units > problem.inventory_units[:, :, None] + tol), strict=True):
        found.append(
            f"inventory exceeded: {sites[s]} {hws[h]} period {t} ({units[s, h, t]:g} > "
            f"{problem.inventory_units[s, h]:g})"
        )
    facility = halls.facility_kw(problem, units)  # [S, T] facility kW, each machine at its hall's PUE
    capacity = np.array([s.power_capacity_kw for s in problem.sites])
    for s, t in zip(*np.nonzero(facility > capacity[:, None] * (1 + 1e-9) + tol), strict=True):
        found.append(f"power exceeded: {sites[s]} period {t} ({facility[s, t]:,.1f} kW > {capacity[s]:,.1f} kW)")
    for s, site in enumerate(problem.sites):
        if not site.available and np.any(units[s] > tol):
            found.append(f"site offline but allocated: {site.code}")
    if problem.settings.integer and np.any(np.abs(units - np.round(units)) > tol):
        found.append("unit counts must be integers")
    limits = starts.start_limits(problem)  # [T, S, H]
    if limits is not None:
        ramp = limits.transpose(1, 2, 0)  # [S, H, T]
        steps = np.diff(units, axis=2)
        if problem.previous_units is not None:
            steps = np.concatenate([units[:, :, :1] - problem.previous_units[:, :, None], steps], axis=2)
            offset = 0
        else:
            offset = 1
            ramp = ramp[:, :, 1:]
        for s, h, t in zip(*np.nonzero(steps > ramp + tol), strict=True):
            found.append(f"ramp limit exceeded: {sites[s]} {hws[h]} period {t + offset}")
    return tuple(found)
