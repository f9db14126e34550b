"""Forecasts: the learned model beats seasonal-naive on simulated series with a daily shape; metrics are exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer.forecast import (
    FitCache,
    RidgeForecast,
    fit_ridge,
    forecast_path,
    forecast_prices,
    mape,
    period_means,
    pinball_loss,
    residual_quantile,
    ridge_forecast,
    seasonal_naive,
)
from sites.catalogue import SITES
from sites.simulation import (
    derive_site_price_profile,
    simulate_fleet_prices,
    simulate_inference_demand,
    simulate_inference_price,
)

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 21


def profiles():
    return [
        derive_site_price_profile(
            code=s.code,
            time_zone=s.time_zone,
            latitude=float(s.latitude),
            renewable_share=float(s.renewable_share),
            energy_cost_multiplier=float(s.energy_cost_multiplier),
            grid_region=s.grid_region,
        )
        for s in SITES
    ]


@pytest.mark.parametrize("step_minutes", [5, 60])
def test_ridge_beats_seasonal_naive_on_fleet_energy_prices(step_minutes):
    day = 1440 // step_minutes
    errors = []
    for k in range(8):  # eight days ahead through the year, three weeks of history each
        start = START + timedelta(days=23 * k)
        prices = simulate_fleet_prices(profiles(), start, (DAYS + 1) * day, step_minutes, seed=2025)
        history, actual = prices[:, : DAYS * day], prices[:, DAYS * day :]
        learned = forecast_prices(history, day, step_minutes)
        naive = seasonal_naive(history, day, day)
        assert learned.shape == actual.shape
        errors.append((np.abs(actual - learned).mean(), np.abs(actual - naive).mean()))
        errors[-1] += (mape(actual, learned, floor=5.0), mape(actual, naive, floor=5.0))
    mae_learned, mae_naive, mape_learned, mape_naive = np.mean(errors, axis=0)
    assert mae_learned < 0.95 * mae_naive
    assert mape_learned < mape_naive


def test_ridge_beats_seasonal_naive_on_inference_demand_and_holds_the_list_price():
    day = 24
    price = simulate_inference_price(START, (DAYS + 1) * day, 60, seed=2025)  # a list price: flat within a quarter
    assert mape(price[-day:], ridge_forecast(price[:-day], day, 60)) < 0.5
    for region, demand in simulate_inference_demand(START, (DAYS + 1) * day, 60, seed=2025).items():
        learned = mape(demand[-day:], ridge_forecast(demand[:-day], day, 60))
        naive = mape(demand[-day:], seasonal_naive(demand[:-day], day))
        assert learned < 0.8 * naive, region


def test_ridge_learns_a_clean_daily_shape_almost_exactly():
    t = np.arange(10 * 24)
    series = 50 + 20 * np.sin(2 * np.pi * t / 24) + 5 * np.cos(4 * np.pi * t / 24)
    forecast = ridge_forecast(series[:-24], 24, 60)
    assert np.abs(forecast - series[-24:]).max() < 0.5


def test_short_history_falls_back_to_naive_and_persistence():
    day = np.arange(24.0)
    assert fit_ridge(np.tile(day, 1), 60) is None
    np.testing.assert_array_equal(ridge_forecast(day, 30, 60), np.concatenate([day, day[:6]]))
    np.testing.assert_array_equal(ridge_forecast(np.array([3.0, 4.0]), 3, 60), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(seasonal_naive(np.array([1.0, 2.0]), 24, 2), [2.0, 2.0])


def test_seasonal_naive_repeats_the_last_season_over_rows():
    history = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    np.testing.assert_array_equal(seasonal_naive(history, 2, 5), [[3, 4, 3, 4, 3], [7, 8, 7, 8, 7]])


def test_mape_by_hand_and_zeros_left_out():
    assert mape([100.0, 200.0], [110.0, 150.0]) == pytest.approx((10 + 25) / 2)
    assert mape([0.0, 100.0], [5.0, 90.0]) == pytest.approx(10.0)  # the zero actual has no percentage error
    assert np.isnan(mape([0.0, 0.0], [1.0, 2.0]))
    assert mape([-50.0], [-40.0]) == pytest.approx(20.0)  # negative prices: |a - f| / |a|
    assert mape([2.0, 100.0], [4.0, 100.0], floor=5.0) == 0.0
    with pytest.raises(ValueError):
        mape([1.0, 2.0], [1.0])


def test_pinball_loss_by_hand():
    actual = np.array([10.0, 10.0, 10.0])
    forecast = np.array([8.0, 10.0, 13.0])
    # q = 0.9: under-forecast by 2 costs 0.9 x 2 = 1.8; exact costs 0; over-forecast by 3 costs 0.1 x 3 = 0.3.
    assert pinball_loss(actual, forecast, 0.9) == pytest.approx((1.8 + 0 + 0.3) / 3)
    # q = 0.5 is half the mean absolute error.
    assert pinball_loss(actual, forecast, 0.5) == pytest.approx(np.abs(actual - forecast).mean() / 2)
    with pytest.raises(ValueError):
        pinball_loss(actual, forecast, 1.0)


def test_quantile_forecast_covers_about_its_share():
    day = 24
    demand = simulate_inference_demand(START, (DAYS + 7) * day, 60, seed=7)["europe"]
    history, actual = demand[: DAYS * day], demand[DAYS * day : DAYS * day + 1]
    offset = residual_quantile(history, 60, 0.9)
    assert offset > 0
    point = ridge_forecast(history, 1, 60)
    assert pinball_loss(actual, point + offset, 0.9) >= 0


def test_ridge_forecast_plugs_into_the_backtest_and_refits_only_every_so_often():
    from optimizer.backtest import History, persistence_forecast

    n = 3 * 288
    starts = tuple(START + timedelta(minutes=5 * i) for i in range(n))
    prices = simulate_fleet_prices(profiles()[:2], START, n, 5, seed=2025)
    demand = simulate_inference_demand(START, n, 5, seed=2025)
    history = History(
        interval_starts=starts,
        energy_price_usd_per_mwh=prices,
        pue=np.full((2, n), 1.1),
        hashprice_usd_per_ph_day=np.full(n, 50.0),
        inference_price_usd_per_mtok=simulate_inference_price(START, n, 5, seed=2025),
        inference_demand_mtok_per_h=demand,
    )
    bounds = np.array([0, 1, 2, 3, 15, 27])
    forecast = RidgeForecast(refit_every=12)
    outlook = forecast(history, bounds)
    persistence = persistence_forecast(history, bounds)
    assert outlook.energy_price_usd_per_mwh.shape == persistence.energy_price_usd_per_mwh.shape == (2, 5)
    assert outlook.pue.min() >= 1.0
    np.testing.assert_allclose(outlook.energy_price_usd_per_mwh[:, 0], prices[:, -1])  # the known interval
    assert set(outlook.inference_demand_mtok_per_h) == set(demand)
    fits = dict(forecast._fits)
    forecast(history.window(0, n - 1), bounds)  # a shorter history: refit (the replay never goes back, but be safe)
    forecast(history, bounds)
    assert forecast._fits["hashprice"] is not fits["hashprice"] or forecast._fits["hashprice"].fitted_at == n


def test_ridge_forecast_learns_from_a_prior_window_and_holds_the_last_value_without_history():
    from optimizer.backtest import History

    def history(start, n):
        starts = tuple(start + timedelta(minutes=60 * i) for i in range(n))
        demand = simulate_inference_demand(start, n, 60, seed=2025)
        return History(
            interval_starts=starts,
            energy_price_usd_per_mwh=np.vstack([demand["europe"] / 100]),
            pue=np.full((1, n), 1.1),
            hashprice_usd_per_ph_day=np.full(n, 50.0),
            inference_price_usd_per_mtok=simulate_inference_price(start, n, 60, seed=2025),
            inference_demand_mtok_per_h=demand,
        )

    prior = history(START, 14 * 24)
    observed = history(START + timedelta(days=14), 3)  # three hours into the replay
    bounds = np.arange(0, 25)
    cold = RidgeForecast()(observed, bounds)
    warm = RidgeForecast(prior=prior)(observed, bounds)
    actual = simulate_inference_demand(START + timedelta(days=14, hours=2), 24, 60, seed=2025)["europe"]
    # Without history the forecast is persistence; with two weeks before it, it knows the day's shape.
    np.testing.assert_allclose(
        cold.inference_demand_mtok_per_h["europe"], observed.inference_demand_mtok_per_h["europe"][-1]
    )
    assert mape(actual, warm.inference_demand_mtok_per_h["europe"]) < 0.5 * mape(
        actual, cold.inference_demand_mtok_per_h["europe"]
    )


def shaped(n: int, first: int = 0) -> np.ndarray:
    """A 5-minute series with a daily and a weekly shape and some noise, from absolute step ``first``."""
    t = np.arange(first, first + n)
    rng = np.random.default_rng(first)
    return 50 + 20 * np.sin(2 * np.pi * t / 288) + 5 * np.cos(2 * np.pi * t / 2016) + rng.normal(0, 1, n)


def test_a_fit_on_the_clock_forecasts_the_same_from_any_window_that_holds_its_lags():
    origin = 5_900_000  # 5-minute steps since the Unix epoch, as the live optimizer counts them
    series = shaped(10 * 288, origin)
    fit = fit_ridge(series, 5, origin=origin)
    assert fit is not None and fit.fitted_at == origin + series.size
    whole = ridge_forecast(series, 72, 5, fit=fit, origin=origin)
    cut = series.size - 300  # the last day and a bit: what a tick with a kept fit reads
    tail = ridge_forecast(series[cut:], 72, 5, fit=fit, origin=origin + cut)
    np.testing.assert_allclose(tail, whole, rtol=1e-12)
    # Counted from 0 instead, the same values are another phase of the day: the fit must know the clock.
    assert np.abs(ridge_forecast(series[cut:], 72, 5, fit=fit) - whole).max() > 1.0
    with pytest.raises(ValueError, match="more than one day"):
        ridge_forecast(series[-288:], 12, 5, fit=fit, origin=origin + series.size - 288)


def test_forecast_path_starts_at_the_last_value_and_holds_it_under_two_days():
    series = shaped(3 * 288)
    path, model = forecast_path(series, 24, 5)
    assert model == "ridge" and path.shape == (25,) and path[0] == series[-1]
    held, model = forecast_path(series[: 288 + 10], 24, 5)
    assert model == "persistence"
    np.testing.assert_array_equal(held, series[288 + 9])
    np.testing.assert_array_equal(period_means(np.arange(10.0), np.array([0, 1, 2, 5, 10])), [0, 1, 3, 7])


def test_fit_cache_reuses_a_fresh_fit_only_on_the_history_it_learned_from():
    cache = FitCache(refit_steps=12, tail_steps=289)
    series = shaped(4 * 288)
    fit = cache.refit("energy", series[:-5], 5, origin=0)
    assert fit is not None and cache.fresh("energy", series.size - 5)
    assert cache.lookup("energy", series, 0) == (True, fit)  # five steps on: the same fit
    assert cache.lookup("energy", series[300:], 300) == (True, fit)  # a shorter window of the same values
    changed = series.copy()
    changed[-100] += 10.0  # a value the fit was trained on is not what is stored now
    assert cache.lookup("energy", changed, 0) == (False, None)
    observed = np.ones(series.size, dtype=bool)
    observed[-100] = False  # ...unless that step was not read (filled in)
    assert cache.lookup("energy", changed, 0, observed) == (True, fit)
    assert cache.lookup("energy", np.concatenate([series, shaped(12)]), 0) == (False, None)  # an hour on: refit
    assert cache.lookup("energy", series[:-10], 0) == (False, None)  # earlier than the fit: it saw the future
    assert cache.refit("young", series[:100], 5, origin=0) is None  # too little history, and that is kept
    assert cache.lookup("young", series[:101], 0) == (True, None)
    assert cache.lookup("other", series, 0) == (False, None)


def test_held_series_are_said_by_kind_with_a_count_not_by_their_internal_names():
    from optimizer.forecast import describe_series

    keys = [f"energy_price_usd_per_mwh.site_{n}" for n in range(10)] + ["hashprice_usd_per_ph_day"]
    assert describe_series(keys) == "energy prices of 10 sites and the hashprice"
    assert describe_series(["pue.oslo", "inference_demand_mtok_per_h.europe", "inference_demand_mtok_per_h.asia"]) == (
        "PUE of oslo and inference demand of 2 regions"
    )
    assert describe_series(["inference_price_usd_per_mtok"]) == "the token price"
