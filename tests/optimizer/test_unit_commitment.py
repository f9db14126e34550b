"""The fleet's hysteresis in the engine: the plan never stops units dispatch must keep running (minimum on time)
nor starts more than dispatch may start (minimum off time, restart cap), and a floor never makes it infeasible."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.engine import UnitLimits, solve

from .test_engine import two_sites


def test_without_limits_the_optimum_is_45_miners_and_10_gpus_at_a():
    np.testing.assert_allclose(solve(two_sites()).first_period_units, [[45, 10], [0, 5]], atol=1e-7)


def test_units_that_must_run_are_kept_even_where_they_lose_money():
    # At B a miner loses $0.05/h; 8 started minutes ago and may not stop yet.
    floor = np.zeros((2, 2, 1))
    floor[1, 0, 0] = 8
    limits = UnitLimits(min_units=floor, max_units=np.full((2, 2, 1), np.inf))
    units = solve(two_sites(unit_limits=limits)).first_period_units
    assert units[1][0] == pytest.approx(8)


def test_units_that_may_not_start_cap_the_plan():
    # Only 20 miners at A may run (the rest are within their minimum off time or out of restarts).
    ceiling = np.full((2, 2, 1), np.inf)
    ceiling[0, 0, 0] = 20
    limits = UnitLimits(min_units=np.zeros((2, 2, 1)), max_units=ceiling)
    units = solve(two_sites(unit_limits=limits)).first_period_units
    assert units[0][0] == pytest.approx(20)


def test_a_must_run_floor_beyond_the_grid_connection_is_scaled_to_fit():
    floor = np.zeros((2, 2, 1))
    floor[1, 0, 0] = 50  # 100 kW of miners at a 50 kW site
    limits = UnitLimits(min_units=floor, max_units=np.full((2, 2, 1), np.inf))
    solution = solve(two_sites(unit_limits=limits))
    assert solution.status == "optimal"
    assert solution.first_period_units[1][0] * 2.0 * 1.25 <= 50.0 + 1e-6


def test_limits_of_the_wrong_shape_are_refused():
    limits = UnitLimits(min_units=np.zeros((1, 2, 1)), max_units=np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match="shape"):
        solve(two_sites(unit_limits=limits))
