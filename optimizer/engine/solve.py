"""Solve a ``Problem`` with HiGHS (``highspy``), and cross-check with ``scipy.optimize``.

``solve`` is the engine: build the arrays, hand them to HiGHS in one ``passModel`` call, read the primal and
dual values back as numpy, and assemble the ``Solution`` (ledger, placements, shortfalls, binding constraints,
explanation). For a MILP the duals come from the LP with the integer columns fixed at their values, so a
mixed-integer run is explained the same way as a continuous one.

Warm start: a ``Solution`` carries the optimal simplex basis of its LP (``WarmStart``, picklable). When the next
problem has the same structure (same matrix fingerprint, see ``formulation.py``), ``solve(problem,
warm_start=previous)`` hands that basis to a fresh HiGHS instance, so the dual simplex continues from the previous
optimum instead of a slack basis. No solver instance outlives its ``solve`` call (a fleet-size HiGHS instance is
hundreds of MB). Anything else (a new site, a new contract) is a cold solve.

Infeasibility never raises: commitments have slack columns, every other constraint is satisfiable by running
nothing, and a solver failure comes back as a ``Solution`` whose ``status`` says what happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import highspy
import numpy as np
import scipy.optimize as opt
import scipy.sparse as sp

from . import grid, halls, starts
from .explain import allocation_violations, binding_constraints, describe_changes, explanation_lines
from .formulation import Formulation, build_formulation
from .problem import Problem
from .solution import BindingConstraint, Solution, WarmStart, commitment_results, compute_ledger, site_breakdown


def solve(problem: Problem, *, warm_start: Solution | WarmStart | None = None, explain: bool = True) -> Solution:
    """Optimal plan for ``problem`` (LP, or integer units within ``mip_rel_gap`` when ``settings.integer``).

    ``warm_start``: the previous tick's ``Solution`` (or just its ``.warm``); used when the structure matches.
    ``explain=False`` (backtests replaying every interval): the plan, its status, objective, ledger and totals
    only; no binding constraints, commitment results, site breakdown or explanation lines (a third of a small
    problem's solve time went to them).
    """
    started = time.perf_counter()
    form = build_formulation(problem)
    warm = warm_start.warm if isinstance(warm_start, Solution) else warm_start
    if not form.integrality.any():
        run = _run_highs(problem, form, warm, started)
        return _finish(problem, form, run, started, integer=False, method="LP", explain=explain)
    return _solve_integer(problem, form, warm, started, explain)


def evaluate(problem: Problem, units: np.ndarray) -> Solution:
    """Score a given allocation ``[S, H, T]``: units are pinned, spot sales and contract placement optimized.

    This is how ``greedy``, ``seed`` and an advisor's proposal are compared with the engine on equal terms.
    An allocation that breaks a hard constraint is not solved: the ``Solution`` is ``infeasible`` and its
    explanation names each violation.
    """
    started = time.perf_counter()
    violations = allocation_violations(problem, units)
    if violations:
        form = build_formulation(problem)
        return _empty(problem, form, "infeasible", ("The allocation breaks hard constraints:", *violations))
    form = build_formulation(problem, fixed_units=units)
    # With x pinned the power rows are constants, already checked above within allocation_violations' tolerance
    # (1e-9 relative): left in, an allocation filling a site exactly at a PUE with float noise (1.2000000006)
    # exceeds capacity / PUE by 7e-7 kW, beyond HiGHS' 1e-7 feasibility tolerance, and the score is "infeasible".
    form.row_upper[form.rows["power"].slice] = np.inf
    run = _run_highs(problem, form, None, started)
    return _finish(problem, form, run, started, integer=problem.settings.integer, method="allocation scored")


@dataclass
class _Run:
    """What one HiGHS run produced (``col`` is None when it found no plan)."""

    status: str
    col: np.ndarray | None = None
    row_dual: np.ndarray | None = None
    col_dual: np.ndarray | None = None
    gap: float = 0.0
    warm: WarmStart | None = None
    warm_started: bool = False


def _options(h: highspy.Highs, problem: Problem, started: float) -> None:
    h.setOptionValue("output_flag", False)
    # What is left of the run's limit; at least a second (the rounded plan's re-solve after a long LP), unless
    # the limit itself is shorter.
    limit = problem.settings.time_limit_s
    left = limit - (time.perf_counter() - started)
    h.setOptionValue("time_limit", float(max(left, min(1.0, limit))))
    h.setOptionValue("mip_rel_gap", float(problem.settings.mip_rel_gap))


def _pass_model(h: highspy.Highs, form: Formulation) -> None:
    a = form.matrix
    h.passModel(
        form.num_col,
        form.num_row,
        int(a.nnz),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        -form.offset_usd,  # minimize -profit: the profit constant enters negated
        form.cost,
        form.col_lower,
        form.col_upper,
        form.row_lower,
        form.row_upper,
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data,
        form.integrality.astype(np.int32),
    )


def _run_highs(problem: Problem, form: Formulation, warm: WarmStart | None, started: float) -> _Run:
    is_mip = bool(form.integrality.any())
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    _options(h, problem, started)
    _pass_model(h, form)
    warm_started = False
    if warm is not None and warm.signature == form.signature and warm.basis is not None and not is_mip:
        warm_started = h.setBasis(warm.basis) == highspy.HighsStatus.kOk
    h.run()
    model_status = h.getModelStatus()
    info = h.getInfo()
    if model_status == highspy.HighsModelStatus.kOptimal:
        status = "optimal"
    elif model_status == highspy.HighsModelStatus.kTimeLimit:
        status = "time_limit"
    elif model_status == highspy.HighsModelStatus.kInfeasible:
        status = "infeasible"
    else:
        status = f"error: {h.modelStatusToString(model_status)}"
    if info.primal_solution_status != highspy.kSolutionStatusFeasible:
        return _Run(status if status != "time_limit" else "error: no plan within the time limit")
    solution = h.getSolution()
    col = np.asarray(solution.col_value, dtype=float)
    if is_mip:
        row_dual, col_dual = _fixed_lp_duals(h, form)
        return _Run(status, col, row_dual, col_dual, float(info.mip_gap), None, warm_started)
    warm_next = WarmStart(signature=form.signature, col_value=col, basis=h.getBasis())
    row_dual = np.asarray(solution.row_dual, dtype=float)
    return _Run(status, col, row_dual, np.asarray(solution.col_dual, dtype=float), 0.0, warm_next, warm_started)


def _solve_integer(
    problem: Problem, form: Formulation, warm: WarmStart | None, started: float, explain: bool = True
) -> Solution:
    """Integer units within ``mip_rel_gap``: LP bound, rounded incumbent, a small MILP around it, and
    branch-and-bound of the whole MILP only if neither is proven within the gap.

    At fleet scale the LP relaxation is usually within a few hundredths of a percent of the integer optimum,
    so a rounded LP plan (whole units, still within power, inventory and ramp) whose profit is within the gap
    of the LP bound is *proven* good enough without branching. When rounding misses (a site whose power is full
    runs a fraction of a GPU that serves a contract, and rounding drops it), the MILP restricted to whole units
    near the LP plan (``neighbourhood``) usually finds the plan within the gap in a fraction of the whole search.
    Otherwise HiGHS branches and the best plan in hand is returned. The relaxation is what the next tick
    warm-starts from.
    """
    relaxed = form.relaxed()
    lp = _run_highs(problem, relaxed, warm, started)
    in_hand: list[tuple[float, Formulation, _Run, str]] = []  # (profit, formulation, run, method)
    if lp.status == "optimal" and lp.col is not None:  # only an optimal relaxation is a bound
        bound = relaxed.profit(lp.col)
        units = round_units(problem, relaxed.cols["x"].take(lp.col).transpose(1, 2, 0))
        fixed = build_formulation(problem, fixed_units=units)
        # The small MILP is cheap: solved to a tenth of the gap, its plan loses no more than branching would.
        tighter = replace(problem, settings=replace(problem.settings, mip_rel_gap=problem.settings.mip_rel_gap / 10))
        attempts = (  # (scored as, solved as, solved with, method): the rounded plan, then the MILP around it
            (fixed, fixed, problem, "MILP by LP rounding"),
            (form, neighbourhood(problem, form, lp.col), tighter, "MILP around the LP rounding"),
        )
        for scored, model, solved_with, method in attempts:
            run = _run_highs(solved_with, model, None, started)
            if run.col is None:
                continue
            run.gap = max(bound - scored.profit(run.col), 0.0) / max(abs(bound), 1e-9)
            run.warm, run.warm_started = lp.warm, lp.warm_started
            if run.gap <= problem.settings.mip_rel_gap:  # proven against the LP bound, whatever stopped the run
                run.status = "optimal"
                return _finish(problem, scored, run, started, integer=True, method=method, explain=explain)
            in_hand.append((scored.profit(run.col), scored, run, method))
    # No MIP start from the rounded plan: with HiGHS 1.16 a start that presolve improves comes back as the
    # unimproved start, while the reported objective is the improved one. Branch from scratch, keep the better.
    run = _run_highs(problem, form, None, started)
    run.warm, run.warm_started = lp.warm, lp.warm_started
    if in_hand:
        profit, scored, best, method = max(in_hand, key=lambda item: item[0])
        if run.col is None or form.profit(run.col) < profit - 1e-9:
            # Never return less than a plan already in hand (e.g. branch-and-bound hit the time limit).
            best.status = "optimal" if run.status == "optimal" else "time_limit"
            return _finish(problem, scored, best, started, integer=True, method=method, explain=explain)
    return _finish(problem, form, run, started, integer=True, method="MILP by branch and bound", explain=explain)


def neighbourhood(problem: Problem, form: Formulation, lp_col: np.ndarray) -> Formulation:
    """The MILP restricted to whole units near the LP plan: every machine the LP runs a whole number of stays there,
    except at a site and period where some machine runs a fraction; there each machine may go up to the next whole
    unit or down by as many units as it takes to make room for one of the largest machine (GPU 8 kW over 3.5 kW
    miners: 3). Starts, contracts and spot sales stay free, so the small MILP prices what plain rounding cannot see:
    a fraction of a GPU that serves a contract where the site's power is full is worth dropping three miners for,
    and a unit rounded up pays its warm-up. A few hundred integer columns in a box: HiGHS solves it without the
    long search of the whole MILP.
    """
    x = form.cols["x"]
    value = lp_col[x.slice].reshape(x.shape)  # [T, S, H]
    fractional = np.abs(value - np.round(value)) > 1e-6
    kw = np.array([h.power_kw for h in problem.hardware])
    room = float(np.ceil(kw.max() / max(kw.min(), 1e-9)))
    lower, upper = form.col_lower.copy(), form.col_upper.copy()
    down = np.where(fractional.any(axis=2, keepdims=True), room, 0.0)
    low = np.maximum(lower[x.slice], (np.floor(value + 1e-7) - down).ravel())
    high = np.minimum(upper[x.slice], np.ceil(value - 1e-7).ravel())
    lower[x.slice], upper[x.slice] = np.minimum(low, high), high
    return replace(form, col_lower=lower, col_upper=upper)


def round_units(problem: Problem, units: np.ndarray) -> np.ndarray:
    """Whole units ``[S, H, T]`` from an LP plan, feasible for power, inventory, offline sites and ramp limits.

    Period by period: round down (never breaks power or inventory), clamp starts to the ramp limit, then add
    back one unit where the LP ran a fraction, largest fraction first, while power, inventory and ramp allow.
    Power is counted in the site's IT kW with each machine at its hall's PUE (halls.py).
    """
    n_sites, n_hw, n_t = problem.shape
    unit_kw = halls.site_it_kw_per_unit(problem)  # [S, H, T]
    available = np.array([s.available for s in problem.sites])
    inventory = problem.inventory_units * available[:, None]
    capacity_it = np.array([s.power_capacity_kw for s in problem.sites])[:, None] / problem.pue  # [S, T]
    it_cap = np.full(capacity_it.shape, np.inf)  # [S, T] IT kW, counted at each machine's own kW
    if problem.grid is not None:  # whole units never round a site above a grid event's cap
        facility_caps, it_cap = grid.event_caps_it_kw(problem)
        capacity_it = np.minimum(capacity_it, facility_caps)
    own_kw = np.array([h.power_kw for h in problem.hardware])
    limits = starts.start_limits(problem)  # [T, S, H] or None
    before = problem.previous_units
    out = np.zeros((n_sites, n_hw, n_t))
    sites = np.arange(n_sites)
    for t in range(n_t):
        kw = unit_kw[:, :, t]
        limit = limits[t] if limits is not None else None
        lp = np.clip(units[:, :, t], 0.0, inventory)
        x = np.floor(lp + 1e-7)
        if limit is not None and before is not None:
            x = np.minimum(x, np.floor(before + limit + 1e-9))
        x = np.minimum(x, inventory)
        # Whole units can overshoot the power row (or an IT-kW event cap) by the LP's tolerance: drop the largest
        # unit where they do.
        over = ((x * kw).sum(axis=1) > capacity_it[:, t] + 1e-9) | (x @ own_kw > it_cap[:, t] + 1e-9)
        for s in np.flatnonzero(over):
            while x[s] @ kw[s] > capacity_it[s, t] + 1e-9 or x[s] @ own_kw > it_cap[s, t] + 1e-9:
                running = np.flatnonzero(x[s] > 0)
                x[s, running[np.argmax(kw[s, running])]] -= 1
        frac = lp - x
        slack = capacity_it[:, t] - (x * kw).sum(axis=1)
        it_slack = it_cap[:, t] - x @ own_kw
        for h in np.argsort(-frac, axis=1).T:  # k-th largest fraction of every site at once
            room = (frac[sites, h] > 1e-6) & (x[sites, h] + 1 <= inventory[sites, h]) & (slack >= kw[sites, h] - 1e-9)
            room &= it_slack >= own_kw[h] - 1e-9
            if limit is not None and before is not None:
                room &= x[sites, h] + 1 <= before[sites, h] + limit[sites, h] + 1e-9
            x[sites[room], h[room]] += 1
            slack[room] -= kw[sites[room], h[room]]
            it_slack[room] -= own_kw[h[room]]
        out[:, :, t] = x
        before = x
    return out


def _fixed_lp_duals(h: highspy.Highs, form: Formulation) -> tuple[np.ndarray, np.ndarray]:
    """Duals of the LP with every integer column fixed at its MILP value (zeros if HiGHS cannot give them)."""
    status, fixed_lp = h.getFixedLp()
    if status != highspy.HighsStatus.kOk:
        return np.zeros(form.num_row), np.zeros(form.num_col)
    lp = highspy.Highs()  # type: ignore[no-untyped-call]
    lp.setOptionValue("output_flag", False)
    lp.passModel(fixed_lp)
    lp.run()
    if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return np.zeros(form.num_row), np.zeros(form.num_col)
    sol = lp.getSolution()
    return np.asarray(sol.row_dual, dtype=float), np.asarray(sol.col_dual, dtype=float)


def _finish(
    problem: Problem, form: Formulation, run: _Run, started: float, *, integer: bool, method: str, explain: bool = True
) -> Solution:
    if run.col is None:
        return _empty(problem, form, run.status)
    seconds = time.perf_counter() - started
    kind = f"{method}, gap {run.gap:.3%}" if integer else method
    header = f"Status {run.status} ({kind}), solved in {seconds:.2f} s."
    if not explain:
        return _lean(problem, form, run, integer, seconds, header)
    return _assemble(problem, form, run, integer, seconds, header)


def _plan_units(form: Formulation, col: np.ndarray, integer: bool) -> np.ndarray:
    units = form.cols["x"].take(col).transpose(1, 2, 0).copy()  # [T, S, H] -> [S, H, T]
    units[units < 1e-9] = 0.0  # solver noise (-1e-12) must not leak out as "negative units"
    return np.round(units) if integer else units  # MILP values carry solver noise of ~1e-9


def _lean(problem: Problem, form: Formulation, run: _Run, integer: bool, seconds: float, header: str) -> Solution:
    """``solve(..., explain=False)``: the plan and its money, without what explains it."""
    assert run.col is not None
    ledger = compute_ledger(problem, form, run.col)
    return Solution(
        status=run.status,
        objective_usd=form.profit(run.col),
        mip_gap=run.gap,
        solve_seconds=seconds,
        site_codes=problem.site_codes,
        hardware_codes=problem.hardware_codes,
        units=_plan_units(form, run.col, integer),
        ledger=ledger,
        site_breakdown=(),
        totals=ledger.totals(),
        commitments=(),
        shortfalls=(),
        binding=(),
        explanation=(header,),
        warm=run.warm,
        warm_started=run.warm_started,
    )


def _assemble(problem: Problem, form: Formulation, run: _Run, integer: bool, seconds: float, header: str) -> Solution:
    col = run.col
    assert col is not None  # _finish assembles only a run that found a plan
    units = _plan_units(form, col, integer)
    ledger = compute_ledger(problem, form, col)
    totals = ledger.totals()
    commitments, shortfalls = commitment_results(problem, form, col)
    binding: tuple[BindingConstraint, ...] = ()
    if run.row_dual is not None and run.col_dual is not None:
        binding = binding_constraints(problem, form, col, run.row_dual, run.col_dual, integer=integer)
    lines = explanation_lines(problem, form, units[:, :, 0], totals, commitments, shortfalls, binding, header)
    changes = describe_changes(problem, form, problem.previous_units, units[:, :, 0], binding, commitments)
    grid_books: dict[str, float] = {}
    grid_ledger: dict[str, np.ndarray] = {}
    if form.grid_columns is not None:  # grid programs (optimizer/engine/grid.py)
        lines, grid_books = (*lines, *grid.explain(problem, form, col)), grid.books(problem, form, col)
        grid_ledger = grid.period_books(problem, form, col)
    return Solution(
        status=run.status,
        objective_usd=form.profit(col),
        mip_gap=run.gap,
        solve_seconds=seconds,
        site_codes=problem.site_codes,
        hardware_codes=problem.hardware_codes,
        units=units,
        ledger=ledger,
        site_breakdown=site_breakdown(problem, ledger),
        totals=totals,
        commitments=commitments,
        shortfalls=shortfalls,
        binding=binding,
        explanation=(*lines, *changes),
        grid_books=grid_books,
        grid_ledger=grid_ledger,
        warm=run.warm,
        warm_started=run.warm_started,
    )


def _empty(problem: Problem, form: Formulation, status: str, reasons: tuple[str, ...] = ()) -> Solution:
    """A plan of all zeros with a status that says why there is no real plan (never an exception)."""
    run = _Run(status, np.zeros(form.num_col))
    solution = _assemble(problem, form, run, False, 0.0, "")
    return replace(solution, objective_usd=float("nan"), explanation=(f"No plan: {status}.", *reasons))


def solve_with_scipy(problem: Problem) -> Solution:
    """The same formulation solved through ``scipy.optimize`` (``linprog`` interior point, or ``milp``).

    An independent path to the optimum: different entry point, algorithm (IPM vs. simplex) and matrix
    plumbing, so a sign or offset mistake in the HiGHS driver shows up as a different objective.
    No duals are read back (no binding constraints).
    """
    form = build_formulation(problem)
    started = time.perf_counter()
    a, lo, hi = form.matrix.tocsr(), form.row_lower, form.row_upper
    bounds = np.column_stack([form.col_lower, form.col_upper])
    if form.integrality.any():
        res = opt.milp(
            c=form.cost,
            integrality=form.integrality,
            bounds=opt.Bounds(form.col_lower, form.col_upper),
            constraints=opt.LinearConstraint(a, lo, hi),
            options={"mip_rel_gap": problem.settings.mip_rel_gap, "time_limit": problem.settings.time_limit_s},
        )
        gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    else:
        eq = lo == hi
        upper_rows = np.isfinite(hi) & ~eq
        lower_rows = np.isfinite(lo) & ~eq
        a_ub = sp.vstack([a[upper_rows], -a[lower_rows]], format="csr")
        b_ub = np.concatenate([hi[upper_rows], -lo[lower_rows]])
        res = opt.linprog(
            form.cost,
            A_ub=a_ub if a_ub.shape[0] else None,
            b_ub=b_ub if a_ub.shape[0] else None,
            A_eq=a[eq] if eq.any() else None,
            b_eq=lo[eq] if eq.any() else None,
            bounds=bounds,
            method="highs-ipm",
            options={"time_limit": problem.settings.time_limit_s},
        )
        gap = 0.0
    if res.x is None:
        return _empty(problem, form, f"error: scipy {res.message}")
    status = "optimal" if res.status == 0 else f"error: scipy {res.message}"
    integer = bool(form.integrality.any())
    run = _Run(status, np.asarray(res.x), gap=gap)
    return _finish(
        problem, form, run, started, integer=integer, method="scipy.optimize " + ("milp" if integer else "linprog")
    )
