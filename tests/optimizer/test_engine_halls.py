"""PUE by hall, start costs per machine and ramp limits per hour in the pure engine (no Django).

Each expected number is worked out in the comment next to it from the problem's own figures.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from optimizer.books import run_books, site_books
from optimizer.engine import (
    ROLLING_PLAN_STOP_WARMUP_SHARE,
    Commitment,
    HardwareModel,
    Market,
    Problem,
    Settings,
    Site,
    allocation_violations,
    greedy,
    solve,
)
from optimizer.engine.formulation import build_formulation
from optimizer.engine.halls import inference_pue
from optimizer.engine.starts import start_cost_usd_per_unit, start_limits

# Miner: 3.5 kW, 200 TH/s = 0.2 PH/s; at 50 USD per PH-day it earns 0.2 x 50 / 24 = 0.41667 USD per unit-hour.
MINER = HardwareModel("S21", "miner", power_kw=3.5, hashrate_th_s=200.0)
# GPU node: 8 kW, 12,000 tokens/s = 43.2 Mtok/h; at 0.88 USD/Mtok it earns 38.016 USD per unit-hour, all sold.
GPU = HardwareModel("H100", "inference", power_kw=8.0, tokens_per_s=12_000.0)


def hall_site(n_t: int = 1, **overrides) -> Problem:
    """One 100 kW site whose own (chilled) hall runs at PUE 1.8, 40 USD/MWh, 50 miners and no GPU demand limit."""
    fields = {
        "sites": (Site("TX", 100.0, "americas"),),
        "hardware": (MINER,),
        "inventory_units": [[50]],
        "period_hours": [1.0] * n_t,
        "pue": [[1.8] * n_t],
        "energy_price_usd_per_mwh": [[40.0] * n_t],
        "market": Market(hashprice_usd_per_ph_day=[50.0] * n_t, inference_price_usd_per_mtok=[0.88] * n_t),
        "settings": Settings(integer=True),
    }
    fields.update(overrides)
    return Problem(**fields)


def test_a_mining_hall_without_chillers_fits_more_miners_than_the_site_pue_allows():
    # Site PUE 1.8: 100 kW / 1.8 = 55.6 IT kW -> floor(55.6 / 3.5) = 15 miners.
    # Fan-cooled mining hall at PUE 1.05: 100 / 1.05 = 95.2 IT kW -> floor(95.2 / 3.5) = 27 miners.
    site_only = solve(hall_site())
    by_hall = solve(hall_site(hall_pue=[[[1.05]]]))
    assert site_only.first_period_units[0, 0] == 15
    assert by_hall.first_period_units[0, 0] == 27
    # Energy: 27 x 3.5 kW x 1.05 = 99.225 facility kW x 40 USD/MWh = 3.969 USD; mining 27 x 0.41667 = 11.25 USD.
    assert by_hall.totals.energy_cost_usd == pytest.approx(99.225 * 40 / 1000)
    assert by_hall.totals.profit_usd == pytest.approx(27 * 0.2 * 50 / 24 - 99.225 * 40 / 1000)
    assert by_hall.ledger.facility_kw[0, 0] == pytest.approx(99.225)
    assert not allocation_violations(hall_site(hall_pue=[[[1.05]]]), by_hall.units)
    # The same 27 miners at the site's PUE would draw 27 x 3.5 x 1.8 = 170 kW: a violation without halls.
    assert allocation_violations(hall_site(), by_hall.units)


def test_each_machine_pays_its_own_hall_and_the_greedy_heuristic_counts_halls_too():
    # Miners in the 1.05 hall, GPU nodes in the 1.8 chilled hall: 2 GPU nodes (16 kW x 1.8 = 28.8 kW) and the rest
    # for miners: (100 - 28.8) / (3.5 x 1.05) = 19.4 -> 19 miners (69.825 kW); total 98.625 kW facility.
    problem = hall_site(
        hardware=(MINER, GPU),
        inventory_units=[[50, 2]],
        hall_pue=[[[1.05], [1.8]]],
    )
    solution = solve(problem)
    np.testing.assert_allclose(solution.first_period_units, [[19, 2]])
    assert solution.ledger.facility_kw[0, 0] == pytest.approx(19 * 3.5 * 1.05 + 2 * 8 * 1.8)
    units = greedy(problem)
    assert not allocation_violations(problem, units)
    np.testing.assert_allclose(units[:, :, 0], [[19, 2]])


def test_halls_at_the_site_pue_leave_the_matrix_as_it_was():
    # Same PUE in every hall as the site's: the power row's coefficients stay kW, so warm starts still apply.
    plain = build_formulation(hall_site(n_t=3))
    same = build_formulation(hall_site(n_t=3, hall_pue=np.full((1, 1, 3), 1.8)))
    other = build_formulation(hall_site(n_t=3, hall_pue=np.full((1, 1, 3), 1.05)))
    assert plain.signature == same.signature != other.signature


def test_hall_pue_is_validated():
    with pytest.raises(ValueError, match="hall_pue"):
        hall_site(hall_pue=[[[0.9]]])
    with pytest.raises(ValueError, match="hall_pue must have shape"):
        hall_site(hall_pue=[[1.05]])


def flapping(warmup_minutes: float) -> Problem:
    """One GPU node, twelve 5-minute periods whose energy price swings between 3,000 and 5,500 USD/MWh.

    A running node earns 38.016 USD/h of tokens and draws 8 kW x 1.2 = 9.6 kW: at 3,000 USD/MWh it pays 28.8 USD/h
    (margin +9.216 USD/h, +0.768 per 5 minutes), at 5,500 it pays 52.8 USD/h (margin -14.784 USD/h, -1.232 per 5
    minutes). Without a start cost the node follows the price; a 10-minute model load costs 38.016 / 6 = 6.336 USD per
    start, more than a pair of cheap periods earns.
    """
    n_t = 12
    price = [3000.0 if t % 3 else 5500.0 for t in range(n_t)]  # 5500, 3000, 3000, 5500, ...
    gpu = HardwareModel("H100", "inference", power_kw=8.0, tokens_per_s=12_000.0, warmup_minutes=warmup_minutes)
    return Problem(
        sites=(Site("DE", 100.0, "europe"),),
        hardware=(gpu,),
        inventory_units=[[1]],
        period_hours=[5 / 60] * n_t,
        pue=[[1.2] * n_t],
        energy_price_usd_per_mwh=[price],
        market=Market(hashprice_usd_per_ph_day=[50.0] * n_t, inference_price_usd_per_mtok=[0.88] * n_t),
        previous_units=[[1]],
        settings=Settings(integer=True),
    )


def starts_of(solution, previous: float = 1.0) -> int:
    path = np.concatenate([[previous], solution.units[0, 0]])
    return int(np.clip(np.diff(path), 0, None).sum())


def test_a_model_load_costs_its_warm_up_and_the_plan_stops_flapping():
    # No warm-up: off in every 5,500 period (0, 3, 6, 9), on again in the next cheap one (1, 4, 7, 10): 4 starts.
    free = solve(flapping(0.0))
    assert starts_of(free) == 4
    # A pair of cheap periods earns 2 x 0.768 = 1.536 USD; staying on through a dear one loses 1.232 USD; a restart
    # loses 6.336 USD of warm-up. So the node rides through: never stopped, never restarted.
    loaded = solve(flapping(10.0))
    assert starts_of(loaded) == 0
    np.testing.assert_allclose(loaded.units[0, 0], np.ones(12))


def test_the_start_cost_is_the_warm_up_at_each_machine_s_own_earnings():
    # Miner: 3 minutes x 0.41667 USD/h = 0.020833 USD per start; GPU node: 10 minutes x 38.016 = 6.336 USD.
    miner = HardwareModel("S21", "miner", power_kw=3.5, hashrate_th_s=200.0, warmup_minutes=3.0)
    gpu = HardwareModel("H100", "inference", power_kw=8.0, tokens_per_s=12_000.0, warmup_minutes=10.0)
    problem = hall_site(n_t=2, hardware=(miner, gpu), inventory_units=[[10, 1]], previous_units=[[0, 0]])
    cost = start_cost_usd_per_unit(problem)
    np.testing.assert_allclose(cost, [[0.2 * 50 / 24 * 3 / 60, 43.2 * 0.88 / 6]] * 2)
    # The ledger charges them: both start in period 0 (history given, so not free): 10 x 0.020833 + 6.336.
    solution = solve(problem)
    np.testing.assert_allclose(solution.units[:, :, 0], [[10, 1]])
    assert solution.totals.switching_cost_usd == pytest.approx(10 * 0.2 * 50 / 24 * 3 / 60 + 43.2 * 0.88 / 6)
    assert solution.totals.profit_usd == pytest.approx(solution.objective_usd, abs=1e-7)


def demand_dip(price_usd_per_mwh: float, share: float) -> Problem:
    """Ten GPU nodes running (10-minute warm-up, 6.336 USD a start) and a held forecast over one hour of 5-minute
    periods in which the region buys 8 nodes' tokens (8 x 43.2 Mtok/h): two nodes would idle, each drawing
    8 kW x 1.2 = 9.6 kW."""
    n_t = 12
    gpu = HardwareModel("H100", "inference", power_kw=8.0, tokens_per_s=12_000.0, warmup_minutes=10.0)
    return Problem(
        sites=(Site("DE", 200.0, "europe"),),
        hardware=(gpu,),
        inventory_units=[[10]],
        period_hours=[5 / 60] * n_t,
        pue=[[1.2] * n_t],
        energy_price_usd_per_mwh=[[price_usd_per_mwh] * n_t],
        market=Market(
            hashprice_usd_per_ph_day=[50.0] * n_t,
            inference_price_usd_per_mtok=[0.88] * n_t,
            inference_demand_mtok_per_h={"europe": [8 * 43.2] * n_t},
        ),
        previous_units=[[10]],
        settings=Settings(integer=True, stop_warmup_share=share),
    )


def test_a_rolling_plan_charges_the_restart_on_the_stop_so_a_dip_of_demand_keeps_the_nodes_warm():
    # At 40 USD/MWh an idle node costs 9.6 kW x 0.04 = 0.384 USD/h. Stops free (the warm-up on starts only): the plan
    # stops the two idle nodes at once, as the held forecast never shows the restart the next tick pays 6.336 USD for.
    stopped = solve(demand_dip(40.0, 0.0))
    np.testing.assert_allclose(stopped.units[0, 0], np.full(12, 8.0))
    # The stop charged its restart (the rolling plans' share): 6.336 USD > 0.384 USD of idle energy in the hour.
    kept = solve(demand_dip(40.0, ROLLING_PLAN_STOP_WARMUP_SHARE))
    np.testing.assert_allclose(kept.units[0, 0], np.full(12, 10.0))
    assert kept.totals.switching_cost_usd == 0.0
    # At 1,000 USD/MWh idling costs 9.6 USD/h, more than the restart: the plan still stops them. Its objective
    # charges each stop its restart's warm-up (2 x 6.336), but that is a planning term, not money: stops with no
    # start pay nothing, so the books show 0 USD of switching and the explanation names the charge apart.
    dear = solve(demand_dip(1000.0, ROLLING_PLAN_STOP_WARMUP_SHARE))
    np.testing.assert_allclose(dear.units[0, 0], np.full(12, 8.0))
    assert dear.totals.switching_cost_usd == 0.0
    assert dear.totals.stop_charge_usd == pytest.approx(2 * 43.2 * 0.88 / 6)
    assert dear.objective_usd == pytest.approx(dear.totals.profit_usd - 2 * 43.2 * 0.88 / 6, abs=1e-7)
    assert dear.totals.objective_usd == pytest.approx(dear.objective_usd, abs=1e-7)
    assert run_books(dear, 1.0)["other_costs"] == 0.0  # no carbon price, no paid switching
    assert site_books(dear, 5 / 60)["switching_usd"] == {"DE": 0.0}
    assert any("Planned stops are charged $12.67" in line for line in dear.explanation)
    # A start keeps its own warm-up: eight running and demand for ten, the two started pay 2 x 6.336.
    rising = replace(demand_dip(40.0, ROLLING_PLAN_STOP_WARMUP_SHARE), previous_units=[[8]], inventory_units=[[10]])
    rising = replace(rising, market=replace(rising.market, inference_demand_mtok_per_h={"europe": [10 * 43.2] * 12}))
    started = solve(rising)
    np.testing.assert_allclose(started.units[0, 0], np.full(12, 10.0))
    assert started.totals.switching_cost_usd == pytest.approx(2 * 43.2 * 0.88 / 6)
    with pytest.raises(ValueError, match="stop_warmup_share"):
        demand_dip(40.0, 1.5)


def test_the_ramp_limit_counts_per_hour_not_per_period():
    # 120 miners, 0.5 of inventory per hour: a 5-minute period starts 60 / 12 = 5, an hourly one 60.
    periods = [5 / 60] * 3 + [1.0, 1.0]
    problem = hall_site(
        n_t=5,
        inventory_units=[[120]],
        period_hours=periods,
        sites=(Site("TX", 1000.0, "americas"),),
        previous_units=[[0]],
        settings=Settings(integer=True, ramp_limit_fraction_per_hour=0.5),
    )
    np.testing.assert_allclose(start_limits(problem)[:, 0, 0], [5, 5, 5, 60, 60])
    solution = solve(problem)
    np.testing.assert_allclose(solution.units[0, 0], [5, 10, 15, 75, 120])
    assert not allocation_violations(problem, solution.units)
    assert allocation_violations(problem, np.array([[[5, 10, 30, 75, 120]]]))


@pytest.mark.parametrize(("inventory", "per_period", "per_hour"), [(10, 1.0, 12), (1000, 100 / 12, 100)])
def test_one_ramp_rule_the_hours_starts_are_the_sum_of_the_periods_that_dispatch_allows(
    inventory, per_period, per_hour
):
    # f = 0.1 per hour over the live plan's twelve 5-minute periods: max(0.1 x inventory / 12, 1) a period. Summed
    # over the hour that is max(0.1 x inventory, 12), fleet dispatch's budget per rolling hour for the same numbers
    # (tests/fleet/test_dispatch.py::test_dispatchs_hourly_budget_pins_the_engines_numbers).
    problem = hall_site(
        n_t=12,
        inventory_units=[[inventory]],
        period_hours=[5 / 60] * 12,
        sites=(Site("TX", 10_000.0, "americas"),),
        previous_units=[[0]],
        settings=Settings(ramp_limit_fraction_per_hour=0.1),
    )
    limits = start_limits(problem)[:, 0, 0]
    np.testing.assert_allclose(limits, np.full(12, per_period))
    assert limits.sum() == pytest.approx(per_hour)


def standby(n_minus_1_usd_per_kwh: float | None) -> Problem:
    """A Premium N-1 contract of 100 kW over two sites whose month is already credited in full (penalty 0): the spread
    needs 100 kW running on each site (200 kW x 100 USD/MWh = 20 USD/h) where one site serves it for 10 USD/h."""
    gpu = HardwareModel("H100", "inference", power_kw=1.0, tokens_per_s=1.0)
    premium = Commitment(
        "P", "premium", 100.0, 1.99, 0.0, n_minus_1=True, min_sites=2, n_minus_1_usd_per_kwh=n_minus_1_usd_per_kwh
    )
    return Problem(
        sites=(Site("A", 200.0, "europe"), Site("B", 200.0, "europe")),
        hardware=(gpu,),
        inventory_units=[[200], [200]],
        period_hours=[1.0],
        pue=[[1.0], [1.0]],
        energy_price_usd_per_mwh=[[100.0], [100.0]],
        market=Market(hashprice_usd_per_ph_day=[0.0], inference_price_usd_per_mtok=[0.0]),
        commitments=(premium,),
    )


def test_n_minus_1_held_as_a_hard_term_keeps_the_standby_a_credit_price_would_drop():
    # Priced at the month's marginal credit (0 here) the standby saves 10 USD/h by going: the spread is dropped.
    (risk,) = solve(standby(None)).commitments
    assert risk.n_minus_1_shortfall_kw == pytest.approx(100.0)
    # Held as a term of the contract (half of what an unserved kWh costs: 0.995): 100 kW x 0.995 > 10 USD/h, the
    # standby stays.
    hard = solve(standby(0.5 * 1.99))
    (kept,) = hard.commitments
    assert kept.n_minus_1_shortfall_kw == pytest.approx(0.0, abs=1e-9)
    assert kept.placements_kw == pytest.approx({"A": 100.0, "B": 100.0})
    # A lost spread is no credit: the customer is served. It is reported as exposure, not as a penalty owed.
    assert risk.penalty_usd == 0.0 and risk.unserved_kwh == pytest.approx(0.0, abs=1e-9)
    # With no room on B, N-1 cannot be had: serving alone (10 + 99.5 USD) still beats leaving it unserved (199 USD).
    exposed = solve(replace(standby(0.5 * 1.99), inventory_units=[[200], [0]]))
    (alone,) = exposed.commitments
    assert alone.n_minus_1_shortfall_kw == pytest.approx(100.0)
    assert alone.unserved_kwh == pytest.approx(0.0, abs=1e-9)  # served: no credit, whatever the N-1 price
    assert (alone.penalty_usd, alone.n_minus_1_usd) == (0.0, pytest.approx(100 * 0.5 * 1.99))


def test_a_commitments_kw_costs_the_pue_of_the_halls_its_inference_hardware_runs_in():
    from optimizer.migration_pricing import site_energy_usd_per_it_kwh  # a Django module: imported here only

    # Site 0: tanks at 1.03 for the site, its 2 GPU nodes in a 1.5 chilled hall and 2 more in a 1.2 one (16 kW
    # each): the inference kW pay (1.5 + 1.2) / 2 = 1.35, the miners' 1.05 hall does not count. Site 1 holds no GPU:
    # its own 1.2. At 40 USD/MWh one IT kWh of inference costs 1.35 x 0.04 = 0.054 and 1.2 x 0.04 = 0.048 USD: site 1
    # is the cheaper destination, though site 0's own PUE (1.03) would have ranked it first.
    gpu2 = HardwareModel("H100b", "inference", power_kw=8.0, tokens_per_s=12_000.0)
    problem = hall_site(
        sites=(Site("IS", 100.0, "europe"), Site("TX", 100.0, "americas")),
        hardware=(MINER, GPU, gpu2),
        inventory_units=[[50, 2, 2], [50, 0, 0]],
        pue=[[1.03], [1.2]],
        energy_price_usd_per_mwh=[[40.0], [40.0]],
        hall_pue=[[[1.05], [1.5], [1.2]], [[1.05], [1.2], [1.2]]],
    )
    np.testing.assert_allclose(inference_pue(problem), [[1.35], [1.2]])
    np.testing.assert_allclose(site_energy_usd_per_it_kwh(problem), [0.054, 0.048])


def test_the_power_shadow_price_is_per_facility_mw_whatever_hall_the_power_feeds():
    # LP, miners in a 1.05 hall at a 1.8 site, 100 kW full (27.2 of 50 miners). One more facility kW runs
    # 1 / (3.5 x 1.05) more miners, each earning 0.41667 - 3.5 x 1.05 x 0.04 = 0.26967 USD/h: 73.38 USD per MW-h.
    # Per site IT kW (the row's own unit) it would read 1.8 x as much: 132.08.
    solution = solve(hall_site(hall_pue=[[[1.05]]], settings=Settings(integer=False)))
    (power,) = [b for b in solution.binding if b.kind == "power"]
    per_facility_mw = (0.2 * 50 / 24 / (3.5 * 1.05) - 0.04) * 1000
    assert power.shadow_price_usd_per_h == pytest.approx(per_facility_mw, rel=1e-6)
    assert power.text == "site TX is power-bound: one more MW of facility power is worth $73.38/h"
