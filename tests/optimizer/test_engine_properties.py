"""Property-based tests (hypothesis) of the engine on small random worlds.

The checks are recomputed here from the problem's own numbers (not through the engine's helpers), so a
constraint the formulation forgets, or a bound it gets wrong, shows up as a counterexample.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from optimizer.engine import (
    Commitment,
    HardwareModel,
    Market,
    Problem,
    Settings,
    Site,
    evaluate,
    greedy,
    mara,
    solve,
    solve_with_scipy,
)

REGIONS = ("apac", "europe", "americas")
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-6


def _grid(draw, shape, lo, hi):
    values = draw(st.lists(st.floats(lo, hi), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(values).reshape(shape)


@st.composite
def worlds(draw, *, integer=None, one_inference=False, commitments=True, ramp=True):
    n_sites, n_t = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kinds = (
        ["inference"]
        if one_inference
        else draw(st.lists(st.sampled_from(["miner", "inference"]), min_size=1, max_size=3))
    )
    if one_inference:
        kinds += draw(st.lists(st.just("miner"), max_size=2))
    hardware = tuple(
        HardwareModel(
            f"h{i}",
            kind,
            power_kw=draw(st.sampled_from([0.5, 1.0, 2.0, 3.5])),
            hashrate_th_s=draw(st.floats(0, 500)) if kind == "miner" else 0.0,
            tokens_per_s=draw(st.floats(0, 5000)) if kind == "inference" else 0.0,
        )
        for i, kind in enumerate(kinds)
    )
    n_hw = len(hardware)
    sites = tuple(
        Site(
            f"s{i}",
            power_capacity_kw=draw(st.floats(0, 60)),
            region=draw(st.sampled_from(REGIONS)),
            renewable_share=draw(st.floats(0, 1)),
            grid_carbon_kg_per_mwh=draw(st.floats(0, 800)),
            available=draw(st.booleans()) or draw(st.booleans()),  # offline one time in four
        )
        for i in range(n_sites)
    )
    inventory = np.array(draw(st.lists(st.integers(0, 20), min_size=n_sites * n_hw, max_size=n_sites * n_hw)))
    demand = {r: _grid(draw, (n_t,), 0, 100) for r in draw(st.sets(st.sampled_from(REGIONS)))}
    previous = None
    if draw(st.booleans()):
        previous = np.array(draw(st.lists(st.integers(0, 25), min_size=n_sites * n_hw, max_size=n_sites * n_hw)))
        previous = previous.reshape(n_sites, n_hw).astype(float)
    contracts = ()
    if commitments and draw(st.booleans()):
        contracts = tuple(
            Commitment(
                f"c{j}",
                draw(st.sampled_from(["premium", "standard", "flexible"])),
                capacity_kw=draw(st.floats(0, 60)),
                price_usd_per_kwh=draw(st.floats(0, 2)),
                penalty_usd_per_kwh=draw(st.floats(0, 5)),
                n_minus_1=draw(st.booleans()),
                allowed_sites=draw(
                    st.none() | st.sets(st.sampled_from([s.code for s in sites]), min_size=1).map(tuple)
                ),
                min_sites=draw(st.integers(1, 3)),
            )
            for j in range(draw(st.integers(1, 2)))
        )
    return Problem(
        sites=sites,
        hardware=hardware,
        inventory_units=inventory.reshape(n_sites, n_hw),
        period_hours=_grid(draw, (n_t,), 0.05, 2.0),
        pue=_grid(draw, (n_sites, n_t), 1.0, 1.6),
        energy_price_usd_per_mwh=_grid(draw, (n_sites, n_t), -100, 300),
        market=Market(_grid(draw, (n_t,), 0, 100), _grid(draw, (n_t,), 0, 2), demand),
        commitments=contracts,
        previous_units=previous,
        settings=Settings(
            switching_cost_usd_per_unit=draw(st.floats(0, 1)),
            carbon_price_usd_per_t=draw(st.floats(0, 100)),
            integer=draw(st.booleans()) if integer is None else integer,
            mip_rel_gap=1e-9,
            ramp_limit_fraction=draw(st.none() | st.floats(0, 1)) if ramp else None,
        ),
    )


@SLOW
@given(worlds())
def test_no_allocation_exceeds_power_inventory_or_ramp(problem):
    solution = solve(problem)
    assert solution.ok
    units = solution.units  # [S, H, T]
    kw = np.array([h.power_kw for h in problem.hardware])
    capacity = np.array([s.power_capacity_kw for s in problem.sites])
    assert np.all(units >= -TOL)
    assert np.all(units <= problem.inventory_units[:, :, None] + TOL)
    facility_kw = np.einsum("sht,h->st", units, kw) * problem.pue
    assert np.all(facility_kw <= capacity[:, None] + 1e-5)
    for s, site in enumerate(problem.sites):
        if not site.available:
            assert np.all(units[s] == 0)
    if problem.settings.integer:
        np.testing.assert_array_equal(units, np.round(units))
    if problem.settings.ramp_limit_fraction is not None:
        limit = np.maximum(problem.settings.ramp_limit_fraction * problem.inventory_units, 1.0)[:, :, None]
        before = units[:, :, :-1]
        if problem.previous_units is not None:
            before = np.concatenate([problem.previous_units[:, :, None], before], axis=2)
            after = units
        else:
            after = units[:, :, 1:]
        assert np.all(after - before <= limit + TOL)
    # The ledger, recomputed from the units, is the objective the solver reports.
    assert solution.totals.profit_usd == np.float64(solution.objective_usd) or np.isclose(
        solution.totals.profit_usd, solution.objective_usd, rtol=1e-7, atol=1e-6
    )


def _hosting_kw(problem: Problem, commitment: Commitment) -> np.ndarray:
    """[S, T] most IT kW each allowed site could dedicate to the commitment (one inference model)."""
    (k,) = [h for h, hw in enumerate(problem.hardware) if hw.kind == "inference"]
    kw = problem.hardware[k].power_kw
    capacity_it = np.array([s.power_capacity_kw for s in problem.sites])[:, None] / problem.pue
    fit = np.floor(capacity_it / kw + 1e-9) * kw if problem.settings.integer else capacity_it
    hosting = np.minimum(problem.inventory_units[:, k, None] * kw, fit)
    allowed = set(commitment.allowed_sites or problem.site_codes)
    usable = np.array([s.available and s.code in allowed for s in problem.sites])
    return hosting * usable[:, None]


@SLOW
@given(worlds(one_inference=True, commitments=False, ramp=False), st.data())
def test_committed_capacity_is_served_whenever_it_can_be(problem, data):
    n1 = data.draw(st.booleans())
    probe = Commitment("probe", "premium", 1.0, 0.5, 1e5, n_minus_1=n1)
    hosting = _hosting_kw(problem, probe)
    # Largest capacity that is placeable in every period: everything (or everything but the biggest site, N-1).
    servable = hosting.sum(axis=0) - (hosting.max(axis=0) if n1 else 0.0)
    most = float(servable.min())
    assume(most > 0.5)
    capacity = data.draw(st.floats(0.1, 1.0)) * most
    # $100,000/kWh short: >= $5,000/h for the smallest contract drawn here, more than running every unit of
    # the world costs (energy and forgone spot sales), so serving is always right, even in whole units (MILP).
    contract = Commitment("k", "premium", capacity, 0.5, 1e5, n_minus_1=n1)
    solution = solve(replace(problem, commitments=(contract,)))
    assert solution.ok
    assert not solution.shortfalls, solution.shortfalls
    placed = solution.commitments[0].placements_kw
    assert sum(placed.values()) >= capacity - 1e-5
    if n1 and placed:
        assert sum(placed.values()) - max(placed.values()) >= capacity - 1e-5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(integer=True))
def test_engine_is_never_beaten_by_greedy_and_lp_bounds_milp(problem):
    milp = solve(problem)
    lp = solve(replace(problem, settings=replace(problem.settings, integer=False)))
    scored = evaluate(problem, greedy(problem))
    assume(milp.status == "optimal")
    assert scored.status == "optimal", scored.explanation
    assert scored.objective_usd <= milp.objective_usd + 1e-6 * max(1.0, abs(milp.objective_usd))
    assert milp.objective_usd <= lp.objective_usd + 1e-6 * max(1.0, abs(lp.objective_usd))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(integer=False))
def test_highs_and_scipy_agree_on_random_lps(problem):
    ours, theirs = solve(problem), solve_with_scipy(problem)
    assert ours.status == theirs.status == "optimal"
    assert np.isclose(ours.objective_usd, theirs.objective_usd, rtol=1e-6, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.floats(-2, 6), st.floats(0, 10), st.floats(0, 6))
def test_hackathon_site_earns_the_best_integer_allocation(energy, hash_price, token_price):
    price = mara.PriceRow(energy, hash_price, token_price)
    solution = solve(mara.problem_for_prices([price]))
    earned = mara.score_allocation(mara.allocation_from_solution(solution), price).profit
    best = mara.best_allocation(price)[1]
    assert np.isclose(earned, best, rtol=1e-9, atol=1e-6)
