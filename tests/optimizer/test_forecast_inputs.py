"""The live optimizer plans its horizon on the learned forecast of stored history; the interval in progress on
what was observed; too little history is persistence, and the run's stored inputs say which was used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from optimizer import inputs
from optimizer.inputs import build_inputs
from sites.bulk import bulk_load_energy_prices, bulk_load_market_prices
from sites.choices import CoolingType
from sites.models import EnergyPrice, MarketPrice
from sites.simulation import floor_to_step, pue
from tests.factories import HardwareModelFactory, SiteFactory, SiteInventoryFactory, WeatherReadingFactory

pytestmark = pytest.mark.django_db

BEFORE_PEAK = datetime(2026, 3, 9, 15, 2, tzinfo=UTC)  # the interval in progress (15:00) is off-peak
IN_PEAK = datetime(2026, 3, 9, 20, 2, tzinfo=UTC)  # the last hour of the evening peak
OFF_PEAK, PEAK = 30.0, 150.0  # USD/MWh


def evening_peak(starts: np.ndarray) -> np.ndarray:
    """Every day: 150 USD/MWh from 17:00 to 21:00 UTC, 30 otherwise."""
    hours = starts.astype("datetime64[h]").astype(np.int64) % 24
    return np.where((hours >= 17) & (hours < 21), PEAK, OFF_PEAK)


def night_peak(starts: np.ndarray) -> np.ndarray:
    hours = starts.astype("datetime64[h]").astype(np.int64) % 24
    return np.where((hours >= 3) & (hours < 7), PEAK, OFF_PEAK)


@pytest.fixture(autouse=True)
def _ridge_over_six_hours(settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "FORECAST": "ridge", "HORIZON_HOURS": 6.0}


@pytest.fixture
def refits(monkeypatch) -> list[str]:
    """The keys of the series `inputs.FITS` fits anew, in order (the fits still happen)."""
    keys: list[str] = []
    refit = inputs.FITS.refit

    def counted(key, *args, **kwargs):
        keys.append(key)
        return refit(key, *args, **kwargs)

    monkeypatch.setattr(inputs.FITS, "refit", counted)
    return keys


@pytest.fixture
def fleet():
    miner = HardwareModelFactory()
    return [
        SiteInventoryFactory(site=SiteFactory(cooling_type=CoolingType.AIR), hardware_model=miner).site
        for _ in range(2)
    ]


def store_history(sites, *, days: float, at: datetime, shape=evening_peak) -> None:
    """``days`` of 5-minute energy prices (every site the same shape) and flat market prices, up to ``at``."""
    periods = round(days * 288)
    start = floor_to_step(at) - timedelta(minutes=5 * (periods - 1))
    starts = np.datetime64(start.replace(tzinfo=None), "m") + np.arange(periods) * np.timedelta64(5, "m")
    prices = np.vstack([shape(starts)] * len(sites))
    bulk_load_energy_prices(
        site_ids=[site.pk for site in sites], start=start, prices_usd_per_mwh=prices, source="simulator"
    )
    bulk_load_market_prices(
        start=start,
        hashprice_usd_per_ph_day=np.full(periods, 50.0),
        inference_price_usd_per_mtok=np.full(periods, 2.0),
        source="simulator",
    )


def hours_of(problem) -> np.ndarray:
    """[T, 2]: each period's start and end as hours of the day (the end of a period ending at midnight is 24)."""
    starts = np.array([t.hour + t.minute / 60 for t in problem.period_starts])
    return np.stack([starts, starts + problem.period_hours], axis=1)


@pytest.mark.parametrize(
    ("at", "now", "ahead", "expected"),
    [
        (BEFORE_PEAK, OFF_PEAK, lambda start, end: (start >= 17) & (end <= 21), "higher"),
        (IN_PEAK, PEAK, lambda start, end: start >= 21, "lower"),
    ],
    ids=["before-the-peak", "in-the-peak"],
)
def test_ridge_horizon_shows_the_coming_peak_where_persistence_is_flat(fleet, settings, at, now, ahead, expected):
    store_history(fleet, days=7, at=at)

    learned = build_inputs(at=at).problem
    prices = learned.energy_price_usd_per_mwh
    np.testing.assert_array_equal(prices[:, 0], now)  # the interval in progress: the observed price
    hours = hours_of(learned)
    later = ahead(hours[:, 0], hours[:, 1])
    assert later.sum() >= 3
    if expected == "higher":  # the evening peak is coming
        assert (prices[:, later] > now + 0.6 * (PEAK - OFF_PEAK)).all(), prices
    else:  # the peak is about to end
        assert (prices[:, later] < now - 0.6 * (PEAK - OFF_PEAK)).all(), prices

    settings.ENERGYARB = {**settings.ENERGYARB, "FORECAST": "persistence"}
    held = build_inputs(at=at)
    np.testing.assert_array_equal(held.problem.energy_price_usd_per_mwh, now)  # flat: the peak is not seen
    assert held.snapshot["forecast"]["used"] == "persistence"


def test_the_run_records_the_forecast_it_planned_on(fleet):
    store_history(fleet, days=7, at=BEFORE_PEAK)
    snapshot = build_inputs(at=BEFORE_PEAK).snapshot
    record = snapshot["forecast"]
    assert record["setting"] == record["used"] == "ridge"
    assert record["models"][f"energy_price_usd_per_mwh.{fleet[0].code}"] == "ridge"
    assert record["models"]["hashprice_usd_per_ph_day"] == "ridge"
    periods = record["periods"]["energy_price_usd_per_mwh"][fleet[0].code]
    assert periods[0] == snapshot["sites"][fleet[0].code]["energy_price_usd_per_mwh"] == OFF_PEAK
    assert max(periods) > 100
    assert len(record["periods"]["hashprice_usd_per_ph_day"]) == len(periods)


def test_under_a_day_of_history_falls_back_to_persistence_and_says_so(fleet):
    store_history(fleet, days=0.5, at=BEFORE_PEAK)
    result = build_inputs(at=BEFORE_PEAK)
    problem = result.problem
    np.testing.assert_array_equal(problem.energy_price_usd_per_mwh, OFF_PEAK)
    np.testing.assert_array_equal(problem.market.hashprice_usd_per_ph_day, 50.0)
    record = result.snapshot["forecast"]
    assert record["setting"] == "ridge"
    for site in fleet:
        assert record["models"][f"energy_price_usd_per_mwh.{site.code}"] == "persistence"
    assert record["models"]["inference_price_usd_per_mtok"] == "persistence"
    assert "Persistence (latest value held)" in record["note"] and "under two days" in record["note"]
    assert record["used"] in ("persistence", "mixed")  # regional demand has the simulator's history


def test_queries_are_bounded_when_fitting_and_when_reusing_the_fit(fleet, refits, django_assert_max_num_queries):
    store_history(fleet, days=7, at=BEFORE_PEAK)
    # four weeks, one query per table; grid events and enrollments; +1 stored prices ahead (cleared day-ahead)
    with django_assert_max_num_queries(13):
        fitted = build_inputs(at=BEFORE_PEAK)
    fitted_series = len(refits)
    # five minutes on: the kept fits read their lags and the last hours; +1 the fleet's devices (engine bounds);
    # +2 open grid events and enrollments in force; +1 stored prices ahead
    with django_assert_max_num_queries(11):
        kept = build_inputs(at=BEFORE_PEAK + timedelta(minutes=5))
    assert fitted_series >= len(fleet) + 1 and len(refits) == fitted_series  # nothing fitted anew
    for result in (fitted, kept):
        assert result.snapshot["forecast"]["used"] == "ridge"
        assert result.problem.energy_price_usd_per_mwh.max() > 100


def test_a_kept_fit_plans_what_a_new_fit_would_and_changed_history_is_refitted(fleet, refits):
    store_history(fleet, days=7, at=BEFORE_PEAK)
    fitted = build_inputs(at=BEFORE_PEAK).problem
    fitted_series = len(refits)
    kept = build_inputs(at=BEFORE_PEAK).problem  # the recent window only, forecast with the kept fit
    assert len(refits) == fitted_series
    assert fitted.energy_price_usd_per_mwh.max() > 100  # the evening peak
    np.testing.assert_allclose(kept.energy_price_usd_per_mwh, fitted.energy_price_usd_per_mwh, rtol=1e-9)

    EnergyPrice.objects.all().delete()  # the history is now another one: its peak is at night
    MarketPrice.objects.all().delete()
    store_history(fleet, days=7, at=BEFORE_PEAK, shape=night_peak)
    moved = build_inputs(at=BEFORE_PEAK).problem
    assert len(refits) > fitted_series  # the changed history was fitted anew
    assert moved.energy_price_usd_per_mwh.max() < OFF_PEAK + 20  # no evening peak learned from the old history


def test_pue_follows_a_stored_weather_forecast(fleet):
    store_history(fleet, days=7, at=BEFORE_PEAK)
    hot, mild = fleet
    WeatherReadingFactory(site=hot, observed_at=BEFORE_PEAK - timedelta(minutes=2), temperature_c=Decimal("15"))
    WeatherReadingFactory(site=hot, observed_at=BEFORE_PEAK + timedelta(hours=2), temperature_c=Decimal("40"))
    WeatherReadingFactory(site=mild, observed_at=BEFORE_PEAK - timedelta(minutes=2), temperature_c=Decimal("15"))
    result = build_inputs(at=BEFORE_PEAK)
    codes = list(result.problem.site_codes)
    hot_pue, mild_pue = result.problem.pue[codes.index(hot.code)], result.problem.pue[codes.index(mild.code)]
    assert hot_pue[0] == pytest.approx(pue(CoolingType.AIR, 15.0))  # the current reading, not the forecast one
    assert hot_pue[-1] == pytest.approx(pue(CoolingType.AIR, 40.0))
    assert hot_pue[-1] > hot_pue[0]
    np.testing.assert_allclose(mild_pue, pue(CoolingType.AIR, 15.0))  # no forecast: the current PUE held
    assert result.snapshot["forecast"]["models"][f"pue.{hot.code}"] == "weather forecast"
    assert result.snapshot["sites"][hot.code]["temperature_c"] == 15.0


@pytest.mark.parametrize("method", ["ridge", "persistence"])
def test_stored_day_ahead_prices_replace_the_forecast_for_the_periods_they_cover(fleet, settings, method):
    settings.ENERGYARB = {**settings.ENERGYARB, "FORECAST": method}
    store_history(fleet, days=7, at=BEFORE_PEAK)
    cleared, other = fleet
    ahead = floor_to_step(BEFORE_PEAK, 60) + timedelta(hours=3)  # 18:00: one hourly price, cleared yesterday
    EnergyPrice.objects.create(
        site=cleared, interval_start=ahead, interval_minutes=60, price_usd_per_mwh=Decimal("400"), source="manual"
    )

    result = build_inputs(at=BEFORE_PEAK)
    problem, codes = result.problem, list(result.problem.site_codes)
    prices = problem.energy_price_usd_per_mwh
    starts = np.array([t.replace(tzinfo=UTC) if t.tzinfo is None else t for t in problem.period_starts])
    covered = np.array([start >= ahead and start + timedelta(hours=h) <= ahead + timedelta(hours=1)
                        for start, h in zip(starts, problem.period_hours, strict=True)])  # fmt: skip
    assert covered.sum() >= 1
    np.testing.assert_allclose(prices[codes.index(cleared.code), covered], 400.0)
    assert (prices[codes.index(other.code), covered] < 400.0).all()  # no stored price ahead: its forecast
    assert prices[codes.index(cleared.code), 0] == OFF_PEAK  # the interval in progress: the observed price
    others = ~covered & (starts >= ahead + timedelta(hours=1))
    assert (prices[codes.index(cleared.code), others] < 400.0).all()  # after the hour: the forecast again
    assert result.snapshot["forecast"]["models"][f"energy_price_usd_per_mwh.{cleared.code}"] == "stored prices ahead"


def test_a_day_ahead_row_that_started_before_the_next_step_covers_the_rest_of_its_hour(fleet):
    # The interval in progress is 15:00 and its price is the day-ahead market's hourly row for 15:00-16:00: the
    # steps 15:05 to 15:55 lie in that row (interval_start <= step < its end), so they take its price, not a
    # forecast; from 16:00 on the forecast holds again.
    store_history(fleet, days=7, at=BEFORE_PEAK)
    cleared, other = fleet
    hour = floor_to_step(BEFORE_PEAK, 60)
    EnergyPrice.objects.filter(site=cleared, interval_start=hour).update(
        interval_minutes=60, price_usd_per_mwh=Decimal("400")
    )

    problem = build_inputs(at=BEFORE_PEAK).problem
    codes = list(problem.site_codes)
    starts = np.array([t.replace(tzinfo=UTC) if t.tzinfo is None else t for t in problem.period_starts])
    in_hour = (starts > hour) & (starts < hour + timedelta(hours=1))
    assert in_hour.sum() == 11  # 15:05 ... 15:55
    np.testing.assert_allclose(problem.energy_price_usd_per_mwh[codes.index(cleared.code), in_hour], 400.0)
    assert (problem.energy_price_usd_per_mwh[codes.index(other.code), in_hour] < 400.0).all()
    later = starts >= hour + timedelta(hours=1)
    assert (problem.energy_price_usd_per_mwh[codes.index(cleared.code), later] < 400.0).all()


def test_an_unknown_forecast_setting_is_refused(fleet, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "FORECAST": "crystal-ball"}
    store_history(fleet, days=1, at=BEFORE_PEAK)
    with pytest.raises(ImproperlyConfigured, match="OPTIMIZER_FORECAST"):
        build_inputs(at=BEFORE_PEAK)


def test_each_machine_plans_on_its_hall_s_pue(fleet):
    # An air-cooled site at 40 degC forecast: its own chilled hall runs at 1.85, the fan-cooled mining hall at 1.10,
    # an immersion tank at 1.06; a GPU node sits in the chilled hall.
    store_history(fleet, days=7, at=BEFORE_PEAK)
    hot = fleet[0]
    gpu = HardwareModelFactory(inference=True)
    tank = HardwareModelFactory(cooling_type=CoolingType.IMMERSION)
    SiteInventoryFactory(site=hot, hardware_model=gpu)
    SiteInventoryFactory(site=hot, hardware_model=tank)
    WeatherReadingFactory(site=hot, observed_at=BEFORE_PEAK - timedelta(minutes=2), temperature_c=Decimal("40"))
    result = build_inputs(at=BEFORE_PEAK)
    problem = result.problem
    s = list(problem.site_codes).index(hot.code)
    halls = {code: problem.hall_pue[s, h] for h, code in enumerate(problem.hardware_codes)}
    miner = next(code for code in halls if code not in (gpu.code, tank.code))
    np.testing.assert_allclose(halls[miner], pue("mining_air", 40.0))
    np.testing.assert_allclose(halls[gpu.code], pue(CoolingType.AIR, 40.0))
    np.testing.assert_allclose(halls[tank.code], pue(CoolingType.IMMERSION, 40.0))
    np.testing.assert_allclose(problem.pue[s], pue(CoolingType.AIR, 40.0))
    assert halls[miner][0] == pytest.approx(1.10) and halls[gpu.code][0] == pytest.approx(1.85)
    assert result.snapshot["sites"][hot.code]["hall_pue"][miner] == pytest.approx(1.10)


def test_the_live_plan_prices_each_start_at_the_machine_s_warm_up_and_limits_starts_per_hour(fleet, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "RAMP_LIMIT_FRACTION_PER_HOUR": 0.25}
    store_history(fleet, days=1, at=BEFORE_PEAK)
    SiteInventoryFactory(site=fleet[0], hardware_model=HardwareModelFactory(inference=True))
    problem = build_inputs(at=BEFORE_PEAK).problem
    warmups = {h.kind: h.warmup_minutes for h in problem.hardware}
    assert warmups == {"miner": 3.0, "inference": 10.0}  # MINER_WARMUP_MINUTES, INFERENCE_WARMUP_MINUTES
    assert problem.settings.ramp_limit_fraction_per_hour == 0.25
