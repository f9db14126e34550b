"""The heuristics (``greedy``, ``seed``) under grid programs, on the hand-made problems of test_engine_grid.py (no
Django): events cap their load, a likely coincident peak is a cost, and no capacity is sold that is not held.

One site T, PUE 1, energy 50 USD/MWh. Miner M: 2 kW, margin 0.05 USD/kWh. GPU G: 1 kW, no Spot token market (it
runs only for contracts). Contracts of 100 kW each: Spot (0.12 USD/kWh), Standard (0.60, 30 kWh of allowance
left), Premium (1.05). Without programs greedy runs 100 miners and 300 GPUs: 500 kW.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from optimizer.engine import Commitment, HardwareModel, Market, Problem, Site, evaluate, greedy, seed
from optimizer.engine.grid import CoincidentPeak, EventCap, GridInputs, ReserveOffer

from .test_engine_grid import ALLOWANCE, event, problem


def load_kw(units: np.ndarray, p: Problem) -> np.ndarray:
    """[T] IT kW of the only site."""
    kw = np.array([h.power_kw for h in p.hardware])
    return np.asarray(units[0].T @ kw)


def test_greedy_without_programs_runs_everything():
    np.testing.assert_allclose(greedy(problem())[:, :, 0], [[100, 300]])


def test_greedy_curtails_miners_first_down_to_a_small_events_cap():
    # Cap 400 kW: 100 kW of miners stop; every contract is kept.
    p = problem(event(400.0))
    np.testing.assert_allclose(greedy(p)[:, :, 0], [[50, 300]])
    assert evaluate(p, greedy(p)).grid_books["event_penalty_usd"] == pytest.approx(0.0)


def test_greedy_then_sheds_spot_contract_kw_down_to_the_cap():
    # Cap 250 kW: every miner, then 50 kW of the Spot contract (what lp does too).
    p = problem(event(250.0))
    units = greedy(p)
    np.testing.assert_allclose(units[:, :, 0], [[0, 250]])
    scored = evaluate(p, units)
    assert scored.grid_books["event_penalty_usd"] == pytest.approx(0.0)
    assert {str(c.id): round(c.unserved_kw, 6) for c in scored.commitments} == {
        "spot-1": 50.0,
        "std-1": 0.0,
        "prem-1": 0.0,
    }


def test_greedy_sheds_standard_only_within_its_allowance_and_never_premium():
    # Cap 120 kW over two one-hour periods: miners and Spot go; Standard may shed its 30 kWh of allowance once (70 kW
    # kept in the first hour, all 100 kW in the second); Premium's 100 kW stay. The event is under-delivered.
    cap = EventCap("dr-1", "T", np.array([True, True]), 120.0, 1.0)
    p = replace(
        problem(GridInputs(events=(cap,), allowance_kwh=ALLOWANCE)),
        period_hours=np.array([1.0, 1.0]),
        pue=np.ones((1, 2)),
        energy_price_usd_per_mwh=np.full((1, 2), 50.0),
        market=Market(hashprice_usd_per_ph_day=[48.0, 48.0], inference_price_usd_per_mtok=[0.0, 0.0]),
    )
    units = greedy(p)
    np.testing.assert_allclose(units[0].T, [[0, 170], [0, 200]])


def test_greedy_counts_a_likely_peaks_expected_charge():
    # 38 % chance of a 4CP interval: 0.38 x 60 / 4 = 5.70 USD per kW drawn, more than miners or the Spot contract
    # earn; Standard is shed within its 30 kWh allowance, Premium kept: 170 kW instead of 500 kW.
    p = problem(GridInputs(peak=CoincidentPeak(np.array([0.38]), 60.0, 4, ("T",)), allowance_kwh=ALLOWANCE))
    units = greedy(p)
    np.testing.assert_allclose(units[:, :, 0], [[0, 170]])
    assert evaluate(p, units).grid_books["cp_expected_charge_usd"] == pytest.approx(170 * 5.70)  # 2,850 before


def test_greedy_keeps_running_through_an_unlikely_peak():
    # 0.1 % chance: 0.015 USD per kW, below every margin.
    p = problem(GridInputs(peak=CoincidentPeak(np.array([0.001]), 60.0, 4, ("T",))))
    np.testing.assert_allclose(greedy(p)[:, :, 0], [[100, 300]])


def test_greedy_holds_no_reserve_on_load_an_event_curtails():
    # RRS (1 s) is held on running miners only. In the event greedy runs none, so none is sold; before it ran 100
    # miners, sold 200 kW of RRS on them and stayed 250 kW above the cap.
    rrs = ReserveOffer("rrs", "T", 1000.0, np.array([80.0]), response_s=1)
    p = problem(replace(event(250.0), reserves=(rrs,)))
    scored = evaluate(p, greedy(p))
    assert scored.grid_books["held_kw:rrs"] == pytest.approx(0.0)
    assert scored.grid_books["event_penalty_usd"] == pytest.approx(0.0)
    running = evaluate(problem(GridInputs(reserves=(rrs,))), greedy(problem(GridInputs(reserves=(rrs,)))))
    assert running.grid_books["held_kw:rrs"] == pytest.approx(200.0)  # outside events: all the miners' kW


def test_seed_scales_down_to_an_events_cap():
    # The fixed formula at an unknown site code: 79 GPUs and 1 ASIC (81 kW); a 40 kW cap halves it, rounding down.
    hardware = (HardwareModel("asic", "miner", 2.0, hashrate_th_s=100.0), HardwareModel("gpu", "inference", 1.0))
    cap = EventCap("dr-1", "T", np.array([False, True]), 40.0, 1.0)
    p = Problem(
        sites=(Site("T", 1000.0, "americas"),),
        hardware=hardware,
        inventory_units=[[10, 100]],
        period_hours=[1.0, 1.0],
        pue=[[1.0, 1.0]],
        energy_price_usd_per_mwh=[[50.0, 50.0]],
        market=Market(hashprice_usd_per_ph_day=[48.0, 48.0], inference_price_usd_per_mtok=[0.0, 0.0]),
        commitments=(Commitment("prem-1", "premium", 10.0, price_usd_per_kwh=1.0, penalty_usd_per_kwh=2.0),),
        grid=GridInputs(events=(cap,)),
    )
    units = seed(p)
    np.testing.assert_allclose(load_kw(units, p), [81.0, 39.0])
    assert load_kw(units, p)[1] <= 40.0
