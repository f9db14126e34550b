"""Grid programs in the pure engine, on hand-made problems with known optima (no Django).

One site T, one hour, PUE 1, energy 50 USD/MWh = 0.05 USD/kWh. Miner M: 2 kW, 0.1 PH/s at 48 USD/PH/day earns
0.20 USD/h, margin 0.10 USD/h = 0.05 USD/kWh. GPU G: 1 kW, no Spot token market (price 0): it runs only to serve
contracts. Contracts of 100 kW each: Spot at 0.12 USD/kWh (margin 0.07), Standard at 0.60 (margin 0.55, credit
0.60 per kWh beyond its allowance), Premium at 1.05 (credit 2.00). Unconstrained: 100 miners (200 kW) + 300 GPUs
(300 kW) = 500 kW, profit 10 + 7 + 55 + 100 = 172 USD.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from optimizer.engine import Commitment, HardwareModel, Market, Problem, Site, solve
from optimizer.engine.grid import CoincidentPeak, EventCap, GridInputs, ReserveOffer

MINER = HardwareModel("M", "miner", power_kw=2.0, hashrate_th_s=100.0)
GPU = HardwareModel("G", "inference", power_kw=1.0, tokens_per_s=1000.0)
CONTRACTS = (
    Commitment("spot-1", "spot", 100.0, price_usd_per_kwh=0.12, penalty_usd_per_kwh=0.0),
    Commitment("std-1", "standard", 100.0, price_usd_per_kwh=0.60, penalty_usd_per_kwh=0.60),
    Commitment("prem-1", "premium", 100.0, price_usd_per_kwh=1.05, penalty_usd_per_kwh=2.00),
)
ALLOWANCE = {"std-1": 30.0}  # kWh of downtime Standard may still take this month without a credit


def problem(grid: GridInputs | None = None, gpus: int = 300, running: bool = True) -> Problem:
    return Problem(
        sites=(Site("T", 1000.0, "americas"),),
        hardware=(MINER, GPU),
        inventory_units=[[100, gpus]],
        period_hours=[1.0],
        pue=[[1.0]],
        energy_price_usd_per_mwh=[[50.0]],
        market=Market(hashprice_usd_per_ph_day=[48.0], inference_price_usd_per_mtok=[0.0]),
        commitments=CONTRACTS,
        previous_units=[[100, 300]] if running else None,
        grid=grid,
    )


def event(cap_kw: float, penalty_usd_per_mwh: float = 1000.0) -> GridInputs:
    cap = EventCap("dr-1", "T", np.array([True]), cap_kw, penalty_usd_per_mwh / 1000.0)
    return GridInputs(events=(cap,), allowance_kwh=ALLOWANCE)


def unserved(solution) -> dict[str, float]:
    return {str(c.id): round(c.unserved_kw, 6) for c in solution.commitments}


def test_without_grid_data_the_plan_is_unchanged():
    assert solve(problem()).objective_usd == pytest.approx(172.0, abs=1e-6)
    assert solve(problem(GridInputs())).objective_usd == pytest.approx(172.0, abs=1e-6)


def test_small_event_stops_miners_only():
    # Cap 400 kW: 100 kW to shed; miners give up 0.05 USD/kWh, less than any contract: 50 miners stop.
    solution = solve(problem(event(400.0)))
    np.testing.assert_allclose(solution.first_period_units, [[50, 300]], atol=1e-6)
    assert unserved(solution) == {"spot-1": 0.0, "std-1": 0.0, "prem-1": 0.0}
    assert solution.objective_usd == pytest.approx(172.0 - 5.0, abs=1e-6)
    assert any("Event dr-1 at T: load 0.40 MW, cap 0.40 MW; shed 0.10 MW." in line for line in solution.explanation)


def test_bigger_event_sheds_mining_then_spot():
    # Cap 250 kW: every miner (200 kW), then 50 kW of Spot (margin 0.07 < Standard's 0.55).
    solution = solve(problem(event(250.0)))
    np.testing.assert_allclose(solution.first_period_units, [[0, 250]], atol=1e-6)
    assert unserved(solution) == {"spot-1": 50.0, "std-1": 0.0, "prem-1": 0.0}
    assert solution.objective_usd == pytest.approx(172.0 - 10.0 - 3.5, abs=1e-6)


def test_deep_event_sheds_standard_within_allowance_and_never_premium():
    # Cap 120 kW at 1,000 USD/MWh short: miners 200 + Spot 100, then Standard 30 kW within its allowance (lost
    # margin 0.55 < 1.00 penalty); beyond the allowance Standard would cost 0.55 + 0.60 credit = 1.15 > 1.00, so the
    # last 50 kW are under-delivered and paid as penalty; Premium is never shed.
    solution = solve(problem(event(120.0)))
    assert unserved(solution) == {"spot-1": 100.0, "std-1": 30.0, "prem-1": 0.0}
    np.testing.assert_allclose(solution.first_period_units, [[0, 170]], atol=1e-6)
    # 172 - miners 10 - Spot 7 - Standard 30 x 0.55 - penalty 50 x 1.00 = 88.5
    assert solution.objective_usd == pytest.approx(88.5, abs=1e-6)
    assert solution.grid_books["event_penalty_usd"] == pytest.approx(50.0)
    assert solution.grid_books["sla_credit_waived_usd"] == pytest.approx(30 * 0.60)
    assert "Shed 30 kW of standard contract std-1 for a grid event." in solution.explanation


def test_premium_is_kept_even_when_the_cap_is_zero():
    solution = solve(problem(event(0.0, penalty_usd_per_mwh=5000.0)))
    assert unserved(solution)["prem-1"] == 0.0
    # At 5.00 USD/kWh short, Standard beyond its allowance (1.15) is shed too.
    assert unserved(solution)["std-1"] == pytest.approx(100.0)


def test_reserve_is_held_on_sheddable_load_that_backs_no_contract():
    # 400 GPUs: 300 back contracts, 100 are free. ECRS (10 min) at 80 USD/MW-h = 0.08 USD/kW-h: the free GPUs are
    # worth running for it (0.08 > 0.05 energy), so 200 kW miners + 100 kW free GPUs = 300 kW are held, not 500.
    ecrs = ReserveOffer("ecrs", "T", 1000.0, np.array([80.0]), response_s=600)
    solution = solve(problem(GridInputs(reserves=(ecrs,)), gpus=400))
    assert solution.grid_books["as_capacity_usd"] == pytest.approx(300 * 0.08)
    assert solution.objective_usd == pytest.approx(172.0 + 24.0 - 100 * 0.05, abs=1e-6)
    assert "Held 0.30 MW at T for ECRS at 80 USD/MW-h." in solution.explanation


def test_fast_reserve_counts_only_miners():
    # RRS answers in a second: only miners can drop that fast; 200 kW held even with free GPUs.
    rrs = ReserveOffer("rrs", "T", 1000.0, np.array([80.0]), response_s=1)
    solution = solve(problem(GridInputs(reserves=(rrs,)), gpus=400))
    assert solution.grid_books["as_capacity_usd"] == pytest.approx(200 * 0.08)


def test_reg_down_needs_headroom_to_raise_load():
    # Reg-Down 800 kW offered; the site draws 500 kW of its 1,000 kW: only 500 kW of headroom can be sold.
    down = ReserveOffer("reg_down", "T", 800.0, np.array([10.0]), response_s=4)
    solution = solve(problem(GridInputs(reserves=(down,))))
    assert solution.grid_books["as_capacity_usd"] == pytest.approx(500 * 0.01)


def test_coincident_peak_cost_sheds_load_by_its_expected_charge():
    # 38 % chance of a 4CP interval at 60 USD/kW-year over 4 peaks = 0.38 x 15 = 5.70 USD per kW drawn: more than
    # miners, Spot and Standard (even beyond its allowance, 1.15) are worth; Premium stays.
    peak = CoincidentPeak(np.array([0.38]), 60.0, 4, ("T",))
    solution = solve(problem(GridInputs(peak=peak, allowance_kwh=ALLOWANCE)))
    assert unserved(solution) == {"spot-1": 100.0, "std-1": 100.0, "prem-1": 0.0}
    np.testing.assert_allclose(solution.first_period_units, [[0, 100]], atol=1e-6)
    assert solution.grid_books["cp_charge_avoided_usd"] == pytest.approx(400 * 5.70)
    assert "Shed 0.40 MW at T: 38 % chance of a 4CP interval." in solution.explanation


def test_low_peak_probability_keeps_everything_running():
    # 0.1 % chance: 0.015 USD per kW, below the miners' 0.05 USD/kWh margin.
    peak = CoincidentPeak(np.array([0.001]), 60.0, 4, ("T",))
    solution = solve(problem(GridInputs(peak=peak)))
    np.testing.assert_allclose(solution.first_period_units, [[100, 300]], atol=1e-6)


def paying_event(cap_kw: float) -> GridInputs:
    """An event on a 500 kW baseline paying 200 USD/MWh delivered, 1,000 USD/MWh short."""
    cap = EventCap("dr-1", "T", np.array([True]), cap_kw, 1.0, baseline_kw=500.0, payment_usd_per_kwh=0.2)
    return GridInputs(events=(cap,), allowance_kwh=ALLOWANCE)


def test_a_dispatched_event_earns_the_reduction_delivered_below_its_baseline():
    # Baseline 500 kW, cap 400 kW: 100 kW asked at 200 USD/MWh = 0.20 USD/kWh; 50 miners stop (5 USD lost) and the
    # event pays 100 x 0.20 = 20 USD: 172 - 5 + 20 = 187.
    solution = solve(problem(paying_event(400.0)))
    np.testing.assert_allclose(solution.first_period_units, [[50, 300]], atol=1e-6)
    assert solution.grid_books["event_payment_usd"] == pytest.approx(20.0)
    assert solution.objective_usd == pytest.approx(187.0, abs=1e-6)
    assert any("0.10 MW delivered below its baseline, paid 200 USD/MWh" in line for line in solution.explanation)


def test_the_payment_is_capped_at_the_reduction_asked_and_lost_with_a_shortfall():
    # Cap 120 kW of a 500 kW baseline: 380 kW asked. Short 1 kW costs the 1.00 USD/kWh penalty and 0.20 of payment
    # (1.20), more than shedding Standard beyond its allowance (0.55 margin + 0.60 credit = 1.15): unlike the
    # unpaid event (50 kW short, test above) the plan now sheds 80 kW of Standard and delivers all 380 kW.
    # 172 - miners 10 - Spot 7 - Standard 30 x 0.55 - 50 x 1.15 + 380 x 0.20 = 157.
    solution = solve(problem(paying_event(120.0)))
    assert unserved(solution) == {"spot-1": 100.0, "std-1": 80.0, "prem-1": 0.0}
    assert solution.grid_books["event_penalty_usd"] == pytest.approx(0.0, abs=1e-6)
    assert solution.grid_books["event_payment_usd"] == pytest.approx(380 * 0.20)
    assert solution.objective_usd == pytest.approx(157.0, abs=1e-6)


def test_an_event_above_the_baseline_pays_nothing():
    # Cap 600 kW above a 500 kW baseline: nothing is asked, nothing is paid, the plan is the unconstrained one.
    solution = solve(problem(paying_event(600.0)))
    assert solution.grid_books["event_payment_usd"] == pytest.approx(0.0)
    assert solution.objective_usd == pytest.approx(172.0, abs=1e-6)


def test_an_it_kw_cap_holds_whatever_each_halls_pue():
    # Miners in a 1.5-PUE hall, GPUs at 1.0, the site at 1.2. Live events are in IT kW: a 400 kW IT cap stops 50
    # miners (IT 100 + 300 = 400 kW). Read as facility kW at the site's PUE (480 kW) it would leave 60 miners
    # running: 3 x 60 + 300 = 480 kW facility, but 420 kW of IT, above the cap the event is settled on.
    cap = EventCap("dr-1", "T", np.array([True]), 400.0, 1.0, it_kw=True)
    halls = replace(problem(GridInputs(events=(cap,), allowance_kwh=ALLOWANCE)), pue=[[1.2]], hall_pue=[[[1.5], [1.0]]])
    solution = solve(halls)
    np.testing.assert_allclose(solution.first_period_units, [[50, 300]], atol=1e-6)
    assert solution.grid_books["event_penalty_usd"] == pytest.approx(0.0, abs=1e-6)
    assert any("load 0.40 MW, cap 0.40 MW; shed 0.10 MW" in line for line in solution.explanation)


def test_whole_units_round_within_an_it_kw_cap_without_branch_and_bound():
    # The same halls with an IT cap of 401 kW and whole units: the LP's rounded plan already keeps IT <= 401 kW
    # (rounding counts each machine at its own kW against the cap) and is within the gap, so no branch and bound.
    cap = EventCap("dr-1", "T", np.array([True]), 401.0, 1.0, it_kw=True)
    base = problem(GridInputs(events=(cap,), allowance_kwh=ALLOWANCE))
    halls = replace(base, pue=[[1.2]], hall_pue=[[[1.5], [1.0]]], settings=replace(base.settings, integer=True))
    solution = solve(halls)
    units = solution.first_period_units[0]
    assert units @ np.array([2.0, 1.0]) <= 401.0 + 1e-9
    np.testing.assert_allclose(units, [50, 300], atol=1e-6)
    assert "MILP by LP rounding" in solution.explanation[0]


def test_the_per_site_books_leave_out_the_credit_waived_within_the_allowance_like_the_run_books():
    # The deep event above: Standard sheds 30 kWh within its allowance (a credit of 18 USD it does not owe) and 50 kW
    # are under-delivered at 1.00 USD/kWh. The fleet line of the per-site books (the dashboard's revenue by site)
    # owes the 50 USD of the event only, as the run books do, not the waived 18 USD on top.
    from optimizer.books import run_books, site_books

    solution = solve(problem(event(120.0)))

    assert solution.grid_ledger["sla_credit_waived_usd"].sum() == pytest.approx(30 * 0.60)
    assert run_books(solution, 1.0)["penalties"] == pytest.approx(-50.0)
    assert site_books(solution, 1.0)["fleet"]["penalties"] == pytest.approx(-50.0)
