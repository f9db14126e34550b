"""A booked fleet in the engine: interchangeable contracts are planned as one group (optimizer/engine/book.py).

The group model must be exact where it claims to be (same plan, same money as one contract per column when the
contracts of a group are alike), split a group's plan back to its contracts in proportion to their kW, and keep
the model's size independent of how many contracts the book holds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from optimizer.engine import Commitment, HardwareModel, Market, Problem, Settings, Site, solve
from optimizer.engine.book import aggregate_commitments
from optimizer.engine.formulation import build_formulation

GPU = HardwareModel("G", "inference", power_kw=1.0, tokens_per_s=1000.0)
MINER = HardwareModel("M", "miner", power_kw=2.0, hashrate_th_s=100.0)


def fleet(commitments, *, gpus=(30, 30, 30), n_t=3) -> Problem:
    """Three sites of 100 kW at $50/MWh, GPUs and miners; spot tokens at $0.50/Mtok (3.6 Mtok/h per GPU)."""
    sites = tuple(Site(code, 100.0, "americas") for code in ("A", "B", "C"))
    return Problem(
        sites=sites,
        hardware=(MINER, GPU),
        inventory_units=[[20, g] for g in gpus],
        period_hours=[1.0] * n_t,
        pue=[[1.0] * n_t] * 3,
        energy_price_usd_per_mwh=[[50.0] * n_t] * 3,
        market=Market(hashprice_usd_per_ph_day=[48.0] * n_t, inference_price_usd_per_mtok=[0.5] * n_t),
        commitments=tuple(commitments),
    )


def premium(i: int, kw: float, sites=("A", "B"), price: float = 2.0) -> Commitment:
    return Commitment(i, "premium", kw, price, 100 * price, n_minus_1=True, allowed_sites=sites, min_sites=2)


def flexible(i: int, kw: float, site: str = "C", price: float = 1.0) -> Commitment:
    return Commitment(i, "flexible", kw, price, price, allowed_sites=(site,))


def test_interchangeable_contracts_share_one_group_and_the_model_does_not_grow_with_the_book():
    small = fleet([premium(1, 5.0), flexible(2, 4.0)])
    big = fleet([premium(i, 1.0 + i % 3) for i in range(1, 301)] + [flexible(i, 2.0) for i in range(301, 3001)])
    assert len(build_formulation(big).book.groups) == 2
    assert build_formulation(big).num_col == build_formulation(small).num_col
    assert build_formulation(big).num_row == build_formulation(small).num_row


def test_groups_keep_contracts_with_other_sites_rules_or_tiers_apart():
    book = aggregate_commitments(
        (premium(1, 5.0), premium(2, 5.0, sites=("A", "C")), flexible(3, 2.0), flexible(4, 2.0, site="A"))
    )
    assert len(book.groups) == 4
    assert [g.id for g in book.groups] == [1, 2, 3, 4]  # a group of one is the contract itself


def test_group_price_and_penalty_are_capacity_weighted_so_its_money_is_its_members():
    book = aggregate_commitments((flexible(1, 10.0, price=1.0), flexible(2, 30.0, price=2.0)))
    (group,) = book.groups
    assert group.capacity_kw == 40.0
    assert group.price_usd_per_kwh == pytest.approx((10 * 1.0 + 30 * 2.0) / 40)  # 1.75
    assert group.penalty_usd_per_kwh == pytest.approx(1.75)
    np.testing.assert_allclose(book.share, [0.25, 0.75])


def test_a_group_plan_is_split_to_its_contracts_in_proportion_to_their_kw():
    # Site C holds 12 GPUs (12 kW) for 10 + 30 kW of flexible contracts: 28 kW are unserved, shared 1:3.
    problem = fleet([flexible(1, 10.0), flexible(2, 30.0)], gpus=(0, 0, 12), n_t=1)
    solution = solve(problem)
    by_id = {c.id: c for c in solution.commitments}
    assert by_id[1].placements_kw == pytest.approx({"C": 3.0})
    assert by_id[2].placements_kw == pytest.approx({"C": 9.0})
    assert by_id[1].unserved_kw == pytest.approx(7.0)
    assert by_id[2].unserved_kw == pytest.approx(21.0)
    assert [(s.commitment, s.constraint) for s in solution.shortfalls] == [
        (1, "serve[commitment=1,period=0]"),
        (2, "serve[commitment=2,period=0]"),
    ]
    # Per-contract money adds up to the fleet's: revenue of the served kW, penalties of the unserved.
    assert sum(c.revenue_usd for c in solution.commitments) == pytest.approx(solution.totals.contract_revenue_usd)
    assert sum(c.penalty_usd for c in solution.commitments) == pytest.approx(solution.totals.penalty_usd)


def test_grouped_plan_equals_one_contract_per_column_when_contracts_are_alike():
    # Ten equal premium contracts (N-1 on A and B) against the same book as one contract of ten times the kW:
    # the group model is that contract, so profit and the split of every contract must match.
    many = fleet([premium(i, 3.0) for i in range(10)], gpus=(20, 20, 0))
    one = fleet([premium(0, 30.0)], gpus=(20, 20, 0))
    a, b = solve(many), solve(one)
    assert a.objective_usd == pytest.approx(b.objective_usd, rel=1e-9)
    for c in a.commitments:
        assert c.placements_kw == pytest.approx({k: v / 10 for k, v in b.commitments[0].placements_kw.items()})
        assert c.n_minus_1_shortfall_kw == pytest.approx(b.commitments[0].n_minus_1_shortfall_kw / 10)
    assert a.totals.profit_usd == pytest.approx(a.objective_usd)


def test_a_large_book_is_solved_as_an_integer_plan_within_the_gap():
    # 3,000 contracts of 1-5 kW on three sites, integer units: the LP rounding proves the plan within the gap.
    rng = np.random.default_rng(13)
    commitments = [
        premium(i, float(rng.integers(1, 6)), price=float(rng.uniform(1.5, 2.5)))
        if i % 10 == 0
        else flexible(i, float(rng.integers(1, 6)), site="ABC"[i % 3], price=float(rng.uniform(0.5, 1.0)))
        for i in range(3000)
    ]
    problem = fleet(commitments, gpus=(3000, 3000, 3000), n_t=4)
    problem = replace(problem, settings=Settings(integer=True))
    solution = solve(problem)
    assert solution.status == "optimal"
    assert solution.mip_gap <= problem.settings.mip_rel_gap
    assert len(solution.commitments) == 3000


def test_a_fraction_of_a_gpu_serving_a_contract_on_a_full_site_is_not_rounded_away():
    # A 10 MW site full of 3.5 kW miners, and a 20 kW contract on 8 kW GPUs: the LP runs 2.5 GPUs and 2,851.43
    # miners. Rounding keeps 2 GPUs and a third does not fit beside the miners: 4 kW of the contract are unserved
    # (a Premium credit of 200 USD/kWh) and the plan misses the gap. The small MILP around the LP plan drops two
    # more miners for a third GPU and proves the plan within the gap without branching the whole MILP.
    gpu = HardwareModel("G", "inference", power_kw=8.0, tokens_per_s=100.0)
    miner = HardwareModel("M", "miner", power_kw=3.5, hashrate_th_s=200.0)
    problem = Problem(
        sites=(Site("A", 10_000.0, "americas"),),
        hardware=(miner, gpu),
        inventory_units=[[3000, 10]],
        period_hours=[1.0, 1.0],
        pue=[[1.0, 1.0]],
        energy_price_usd_per_mwh=[[50.0, 50.0]],
        market=Market(hashprice_usd_per_ph_day=[48.0, 48.0], inference_price_usd_per_mtok=[0.1, 0.1]),
        commitments=(Commitment(1, "premium", 20.0, 2.0, 200.0, allowed_sites=("A",)),),
        settings=Settings(integer=True),
    )
    solution = solve(problem)
    assert "MILP around the LP rounding" in solution.explanation[0]
    assert solution.status == "optimal"
    assert solution.units[0, :, 0].tolist() == [2850.0, 3.0]  # three GPUs carry the contract, miners the rest
    assert solution.commitments[0].unserved_kw == pytest.approx(0.0, abs=1e-6)
    exact = solve(replace(problem, settings=Settings(integer=True, mip_rel_gap=0.0)))
    assert solution.objective_usd == pytest.approx(exact.objective_usd, rel=1e-9)
