"""Behaviour of the pure simulators (prices, weather, cooling); no Django, no database.

Run alone with ``pytest -p no:django tests/sites/test_simulation.py``. Profiles are derived from
the fleet's reference data (sites/catalogue.py, pure data) the way the Django services derive
them from Site rows. Statistical checks use fixed seeds and generous bounds around the ranges
documented in docs/simulation.md.
"""

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sites.catalogue import SITES as CATALOGUE_SITES
from sites.catalogue import list_price_usd_per_mtok
from sites.simulation import (
    CLIMATE_ZONES,
    COOLING_PARAMETERS,
    COOLING_TYPES,
    ClimateProfile,
    HeatWave,
    SitePriceProfile,
    cooling_overhead_kw,
    derive_climate_profile,
    derive_site_price_profile,
    expected_temperatures,
    floor_to_step,
    pue,
    simulate_energy_price_series,
    simulate_energy_prices,
    simulate_fleet_prices,
    simulate_hashprice,
    simulate_inference_demand,
    simulate_inference_price,
    simulate_temperatures,
    simulation_timestamps,
)
from sites.simulation.weather import local_calendar, utc_offsets_seconds, utc_seconds

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_5MIN = 365 * 288  # 105,120 five-minute intervals
YEAR_HOURS = 365 * 24
SEED = 20250621
SITES = {site.code: site for site in CATALOGUE_SITES}


def site_profile(code: str) -> SitePriceProfile:
    site = SITES[code]
    return derive_site_price_profile(
        code=site.code,
        time_zone=site.time_zone,
        latitude=float(site.latitude),
        renewable_share=float(site.renewable_share),
        energy_cost_multiplier=float(site.energy_cost_multiplier),
        grid_region=site.grid_region,
    )


def site_climate(code: str) -> ClimateProfile:
    site = SITES[code]
    return derive_climate_profile(
        latitude=float(site.latitude), climate_zone=site.climate_zone, time_zone=site.time_zone
    )


@pytest.fixture(scope="module")
def year_series():
    """One generated year of 5-minute prices per reference site (computed once, ~0.5 s)."""
    return {code: simulate_energy_price_series(site_profile(code), YEAR_START, YEAR_5MIN, seed=SEED) for code in SITES}


def mean_by_local_hour(values: np.ndarray, time_zone: str, start=YEAR_START, step_minutes=5) -> np.ndarray:
    hours = local_calendar(utc_seconds(start, len(values), step_minutes), time_zone).hour.astype(int)
    return np.bincount(hours, weights=values, minlength=24) / np.bincount(hours, minlength=24)


# --- energy prices: determinism ---------------------------------------------------------------


def test_energy_prices_are_deterministic_for_a_seed():
    profile = site_profile("site_5_texas")
    first = simulate_energy_prices(profile, YEAR_START, 5000, seed=7)
    second = simulate_energy_prices(profile, YEAR_START, 5000, seed=7)
    np.testing.assert_array_equal(first, second)


def test_energy_prices_differ_between_seeds_and_sites():
    texas = site_profile("site_5_texas")
    base = simulate_energy_prices(texas, YEAR_START, 5000, seed=7)
    assert not np.allclose(base, simulate_energy_prices(texas, YEAR_START, 5000, seed=8))
    same_market_other_code = replace(texas, code="site_texas_2")
    assert not np.allclose(base, simulate_energy_prices(same_market_other_code, YEAR_START, 5000, seed=7))


def test_fleet_rows_equal_single_site_series_whatever_the_fleet():
    profiles = [site_profile(code) for code in SITES]
    fleet = simulate_fleet_prices(profiles, YEAR_START, 2000, seed=3)
    assert fleet.shape == (10, 2000)
    np.testing.assert_array_equal(fleet[4], simulate_energy_prices(profiles[4], YEAR_START, 2000, seed=3))
    smaller_fleet = simulate_fleet_prices(profiles[3:6], YEAR_START, 2000, seed=3)
    np.testing.assert_array_equal(smaller_fleet[1], fleet[4])


def test_naive_start_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate_energy_prices(site_profile("site_5_texas"), datetime(2025, 1, 1), 10, seed=1)


def test_timestamps_align_with_series():
    stamps = simulation_timestamps(datetime(2025, 1, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")), 3, 5)
    assert [str(s) for s in stamps] == ["2025-01-01T00:00:00", "2025-01-01T00:05:00", "2025-01-01T00:10:00"]


def test_a_window_is_a_slice_of_the_same_realisation(year_series):
    # A refresh task asking for a few intervals must get the values a year-long run produced.
    texas = year_series["site_5_texas"]
    first_spike = int(np.argmax(texas.spike_mask))
    offset = max(0, first_spike - 40)
    window = simulate_energy_price_series(
        site_profile("site_5_texas"), YEAR_START + timedelta(minutes=5 * offset), 100, seed=SEED
    )
    np.testing.assert_allclose(window.usd_per_mwh, texas.usd_per_mwh[offset : offset + 100], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(window.spike_mask, texas.spike_mask[offset : offset + 100])
    assert window.spike_mask.any()
    single = simulate_energy_prices(site_profile("site_9_chile"), YEAR_START + timedelta(days=200), 1, seed=SEED)
    assert single[0] == pytest.approx(year_series["site_9_chile"].usd_per_mwh[200 * 288], rel=1e-6, abs=1e-6)


def test_other_simulators_are_window_invariant_too():
    later = YEAR_START + timedelta(days=30)
    hashprice = simulate_hashprice(YEAR_START, 60 * 288, seed=SEED)
    np.testing.assert_allclose(simulate_hashprice(later, 10, seed=SEED), hashprice[30 * 288 : 30 * 288 + 10], rtol=1e-6)
    price = simulate_inference_price(YEAR_START, 60 * 288, seed=SEED)
    np.testing.assert_allclose(
        simulate_inference_price(later, 10, seed=SEED), price[30 * 288 : 30 * 288 + 10], rtol=1e-6
    )
    climate = site_climate("site_3_norway")
    temps = simulate_temperatures(climate, YEAR_START, 60 * 24, 60, seed=SEED)
    np.testing.assert_allclose(
        simulate_temperatures(climate, later, 24, 60, seed=SEED), temps[30 * 24 : 31 * 24], rtol=1e-6, atol=1e-6
    )


def test_start_off_the_step_grid_is_rejected_and_can_be_floored():
    with pytest.raises(ValueError, match="grid"):
        simulate_hashprice(datetime(2025, 1, 1, 0, 3, tzinfo=UTC), 10, seed=1)
    assert floor_to_step(datetime(2025, 1, 1, 1, 3, 59, tzinfo=ZoneInfo("Europe/Berlin")), 5) == datetime(
        2025, 1, 1, 0, 0, tzinfo=UTC
    )


# --- energy prices: statistics of a generated year ------------------------------------------


def test_yearly_means_are_within_the_documented_range(year_series):
    for code, series in year_series.items():
        mean = series.usd_per_mwh.mean()
        # ERCOT is calibrated to its real 2024 mean (26.8 USD/MWh) and Texas pays 0.8 of it; NEM-NSW to September
        # 2022 (111.7): bench/calibration.py.
        assert 15.0 <= mean <= 130.0, (code, mean)
        p99 = np.percentile(series.usd_per_mwh, 99)
        assert 1.5 * mean <= p99 <= 600.0, (code, p99)


def test_high_renewable_site_has_some_negative_hours(year_series):
    chile = year_series["site_9_chile"].usd_per_mwh
    share = np.mean(chile < 0)
    assert 0.01 <= share <= 0.08
    assert chile.min() >= site_profile("site_9_chile").negative_floor_usd_per_mwh


def test_low_renewable_sites_never_go_negative(year_series):
    for code in ("site_4_singapore", "site_7_japan"):
        assert year_series[code].usd_per_mwh.min() > 0, code


def test_negative_share_tracks_the_profile_target(year_series):
    for code, series in year_series.items():
        target = site_profile(code).target_negative_share
        assert abs(np.mean(series.usd_per_mwh < 0) - target) <= 0.5 * target + 0.005, code


def test_spikes_exist_and_never_exceed_the_cap(year_series):
    texas = year_series["site_5_texas"]
    assert 5 <= texas.spike_count <= 80
    assert texas.usd_per_mwh[texas.spike_mask].min() >= 250.0
    for series in year_series.values():
        assert series.usd_per_mwh.max() <= 5000.0
    assert sum(series.spike_count for series in year_series.values()) >= 30


def test_a_lower_spike_cap_is_enforced():
    series = simulate_energy_price_series(
        site_profile("site_5_texas"), YEAR_START, YEAR_5MIN, seed=SEED, spike_cap_usd_per_mwh=1000.0
    )
    assert series.spike_mask.any()
    assert series.usd_per_mwh.max() == pytest.approx(1000.0)


def test_prices_are_autocorrelated(year_series):
    prices = np.log(np.clip(year_series["site_10_germany"].usd_per_mwh, 1.0, None))
    lag1 = np.corrcoef(prices[:-1], prices[1:])[0, 1]
    assert lag1 > 0.8


# --- energy prices: daily shape and DST -------------------------------------------------------


def test_evening_peak_exceeds_midday_without_solar(year_series):
    by_hour = mean_by_local_hour(year_series["site_1_nordic"].usd_per_mwh, "Atlantic/Reykjavik")
    assert by_hour[18:21].mean() > 1.2 * by_hour[12:15].mean()


def test_high_solar_site_dips_at_midday(year_series):
    by_hour = mean_by_local_hour(year_series["site_9_chile"].usd_per_mwh, "America/Santiago")
    midday = by_hour[12:15].mean()
    assert midday < 0.7 * by_hour[7:10].mean()
    assert midday < 0.7 * by_hour[18:21].mean()


def test_daily_shape_follows_local_time_across_the_march_dst_change():
    # Without noise, events or seasons the price is the local-time shape: its daily maximum sits
    # at the same local hour, i.e. one UTC hour earlier once Berlin moves to CEST (30 March).
    quiet = replace(
        site_profile("site_10_germany"),
        volatility=0.0,
        renewable_share=0.0,
        spike_rate_per_year=0.0,
        seasonal_amplitude=0.0,
    )
    start = datetime(2025, 3, 24, tzinfo=UTC)
    prices = simulate_energy_prices(quiet, start, 14 * 288, seed=1).reshape(14, 288)
    peak_utc_hours = prices.argmax(axis=1) // 12
    assert set(peak_utc_hours[:6]) == {18}  # 24-29 March: 19:00 CET
    assert set(peak_utc_hours[7:]) == {17}  # 31 March on: 19:00 CEST


def test_noisy_local_hour_profiles_agree_before_and_after_dst():
    profile = site_profile("site_10_germany")
    start = datetime(2025, 3, 2, tzinfo=UTC)
    prices = simulate_energy_prices(profile, start, 56 * 288, seed=SEED)
    before = mean_by_local_hour(prices[: 28 * 288], "Europe/Berlin", start)
    after = mean_by_local_hour(prices[28 * 288 :], "Europe/Berlin", start + timedelta(days=28))
    assert np.corrcoef(before, after)[0, 1] > 0.8


def test_utc_offsets_match_zoneinfo_including_half_hour_transitions():
    for zone, start in (
        ("Europe/Berlin", datetime(2025, 3, 29, 22, tzinfo=UTC)),
        ("America/Santiago", datetime(2025, 4, 5, 22, tzinfo=UTC)),
        ("Australia/Lord_Howe", datetime(2025, 4, 5, 13, tzinfo=UTC)),  # DST shift of 30 min
    ):
        seconds = utc_seconds(start, 12 * 12, 5)
        tz = ZoneInfo(zone)
        expected = [datetime.fromtimestamp(int(s), tz).utcoffset().total_seconds() for s in seconds]
        np.testing.assert_array_equal(utc_offsets_seconds(seconds, zone), expected)
        assert len(set(expected)) == 2, zone


# --- hashprice and inference ------------------------------------------------------------------


def test_hashprice_stays_within_bounds_and_near_level():
    hashprice = simulate_hashprice(YEAR_START, YEAR_5MIN, seed=SEED)
    assert hashprice.min() >= 35.0
    assert hashprice.max() <= 65.0
    assert 42.0 <= hashprice.mean() <= 58.0
    narrow = simulate_hashprice(YEAR_START, YEAR_5MIN, seed=SEED, level_usd_per_ph_day=45.0, low=40.0, high=60.0)
    assert narrow.min() >= 40.0 and narrow.max() <= 60.0


def test_hashprice_walk_is_deterministic_and_smooth():
    first = simulate_hashprice(YEAR_START, 10_000, seed=5)
    np.testing.assert_array_equal(first, simulate_hashprice(YEAR_START, 10_000, seed=5))
    assert not np.allclose(first, simulate_hashprice(YEAR_START, 10_000, seed=6))
    assert np.abs(np.diff(first)).max() < 2.0  # USD per PH/s per day per 5 minutes


def test_hashprice_rejects_a_level_outside_its_bounds():
    with pytest.raises(ValueError):
        simulate_hashprice(YEAR_START, 10, seed=1, level_usd_per_ph_day=70.0)


def test_inference_demand_follows_the_sun():
    demand = simulate_inference_demand(YEAR_START, 28 * 288, seed=SEED)
    utc_hour = (utc_seconds(YEAR_START, 28 * 288) // 3600) % 24
    peak_hour = {
        region: int(np.argmax(np.bincount(utc_hour, weights=values) / np.bincount(utc_hour)))
        for region, values in demand.items()
    }
    assert set(peak_hour) == {"apac", "europe", "americas"}
    assert peak_hour["apac"] < peak_hour["europe"] < peak_hour["americas"]


def test_inference_demand_is_higher_on_weekdays():
    demand = simulate_inference_demand(YEAR_START, 28 * 288, seed=SEED)
    for region, values in demand.items():
        zone = {"apac": "Etc/GMT-8", "europe": "Etc/GMT-1", "americas": "Etc/GMT+6"}[region]
        weekday = local_calendar(utc_seconds(YEAR_START, len(values)), zone).weekday
        assert values[weekday < 5].mean() > 1.5 * values[weekday >= 5].mean(), region


def test_inference_price_is_a_list_price_stable_within_a_quarter():
    """Token prices are list prices (catalogue SOURCES "token_prices"): flat through the day, repriced quarterly."""
    year = simulate_inference_price(YEAR_START, 365 * 24, 60, seed=SEED)
    assert year.min() > 0
    level = float(list_price_usd_per_mtok())
    assert level == 0.88
    assert 0.8 * level <= year.mean() <= 1.2 * level
    assert len(np.unique(year)) in (4, 5)  # one price per calendar quarter the year touches
    day = simulate_inference_price(YEAR_START + timedelta(days=40), 288, seed=SEED)
    assert day.min() == day.max()  # no intraday swing (the old demand-following price swung about 2x)
    np.testing.assert_array_equal(year, simulate_inference_price(YEAR_START, 365 * 24, 60, seed=SEED))


# --- weather ----------------------------------------------------------------------------------


def hourly_year(code: str, seed: int = SEED, heat_waves=()) -> np.ndarray:
    climate = site_climate(code)
    return simulate_temperatures(climate, YEAR_START, YEAR_HOURS, 60, seed=seed, heat_waves=heat_waves)


def test_temperatures_are_deterministic_for_a_seed():
    np.testing.assert_array_equal(hourly_year("site_10_germany"), hourly_year("site_10_germany"))
    assert not np.allclose(hourly_year("site_10_germany"), hourly_year("site_10_germany", seed=SEED + 1))


def test_hourly_anomalies_persist():
    climate = site_climate("site_10_germany")
    anomalies = hourly_year("site_10_germany") - expected_temperatures(climate, YEAR_START, YEAR_HOURS, 60)
    assert np.corrcoef(anomalies[:-1], anomalies[1:])[0, 1] > 0.7


def test_southern_hemisphere_july_is_colder_than_january():
    for code in ("site_8_australia", "site_9_chile"):
        temps = hourly_year(code)
        assert temps[4344:5088].mean() < temps[:744].mean() - 5.0, code  # July vs January
    berlin = hourly_year("site_10_germany")
    assert berlin[4344:5088].mean() > berlin[:744].mean() + 10.0


def test_daily_maximum_comes_in_the_afternoon():
    by_hour = mean_by_local_hour(hourly_year("site_9_chile"), "America/Santiago", step_minutes=60)
    assert 14 <= int(np.argmax(by_hour)) <= 16


def test_heat_wave_raises_temperatures_in_its_window_only():
    wave = HeatWave(
        start=datetime(2025, 7, 10, tzinfo=UTC), end=datetime(2025, 7, 15, tzinfo=UTC), delta_c=8.0, ramp_hours=12
    )
    base = hourly_year("site_5_texas")
    hot = hourly_year("site_5_texas", heat_waves=[wave])
    stamps = simulation_timestamps(YEAR_START, YEAR_HOURS, 60)
    inside = (stamps > np.datetime64("2025-07-10T00:00")) & (stamps < np.datetime64("2025-07-15T00:00"))
    difference = hot - base
    np.testing.assert_array_equal(difference[~inside], 0.0)
    assert (difference[inside] > 0).all()
    assert difference.max() == pytest.approx(8.0)


def test_climate_derivation_is_plausible():
    singapore = derive_climate_profile(latitude=1.35, climate_zone="tropical", time_zone="Asia/Singapore")
    oslo = derive_climate_profile(latitude=59.9, climate_zone="continental", time_zone="Europe/Oslo")
    assert 26 <= singapore.annual_mean_c <= 29 and singapore.seasonal_amplitude_c < 2
    assert 3 <= oslo.annual_mean_c <= 9 and oslo.seasonal_amplitude_c > 8
    with pytest.raises(ValueError, match="climate zone"):
        derive_climate_profile(latitude=0, climate_zone="lunar", time_zone="UTC")


# --- cooling ----------------------------------------------------------------------------------

TEMPERATURES_C = np.linspace(-20.0, 45.0, 651)


def test_every_project_cooling_type_has_parameters():
    assert set(COOLING_TYPES) == {
        "free_air",
        "air",
        "advanced_ac",
        "precision_ac",
        "evaporative",
        "district",
        "hydro",
        "immersion",
        "mining_air",
    }


def test_pue_is_by_hall_not_by_site():
    """Texas on its design day (about 40 degC): the chilled-air curve is 1.85; its air-cooled miners stand in a hall
    without chillers (1.10); GPU nodes at an immersion site run in a chilled hall, not in the tanks."""
    from sites.simulation import hall_cooling, hall_pue

    assert hall_pue("air", "air", "miner", 40.0) == pytest.approx(1.10)
    assert hall_pue("air", "air", "inference", 40.0) == pytest.approx(1.85)
    assert hall_cooling("immersion", "air", "inference") == "air"
    assert hall_cooling("immersion", "immersion", "miner") == "immersion"
    assert hall_cooling("free_air", "air", "inference") == "free_air"
    assert hall_cooling("hydro", "hydro", "miner") == "hydro"
    assert hall_pue("immersion", "air", "inference", 30.0) > pue("immersion", 30.0)


@pytest.mark.parametrize("cooling_type", sorted(COOLING_PARAMETERS))
def test_pue_never_falls_as_it_gets_hotter(cooling_type):
    curve = pue(cooling_type, TEMPERATURES_C)
    assert curve.shape == TEMPERATURES_C.shape
    assert (np.diff(curve) >= 0).all()
    assert curve.min() >= 1.0


def test_air_cooling_is_expensive_in_heat():
    assert pue("air", 40.0) > 1.5
    assert pue("free_air", 40.0) > 1.5
    assert pue("air", 10.0) <= 1.25
    assert pue("air", 40.0) - pue("air", 30.0) > pue("air", 30.0) - pue("air", 20.0)  # steepening


@pytest.mark.parametrize("cooling_type", ["hydro", "immersion"])
def test_liquid_cooling_stays_near_one(cooling_type):
    curve = pue(cooling_type, TEMPERATURES_C)
    assert curve.min() >= 1.03
    assert curve.max() <= 1.10


def test_pue_accepts_scalars_and_rejects_unknown_types():
    assert isinstance(pue("hydro", 25), float)
    with pytest.raises(ValueError, match="unknown cooling type"):
        pue("ice_blocks", 20.0)


def test_cooling_overhead_is_it_load_times_pue_excess():
    assert cooling_overhead_kw(1000.0, 1.25) == pytest.approx(250.0)
    np.testing.assert_allclose(cooling_overhead_kw(np.array([100.0, 200.0]), np.array([1.5, 1.1])), [50.0, 20.0])
    with pytest.raises(ValueError):
        cooling_overhead_kw(100.0, 0.9)


def test_price_profile_derivation_uses_region_and_validates():
    profile = derive_site_price_profile(
        code="x", time_zone="America/Chicago", latitude=32.8, renewable_share=0.4, energy_cost_multiplier=0.8
    )
    assert profile.grid_region == "ERCOT" and profile.solar_share > 0.2  # from the time zone
    assert (
        derive_site_price_profile(
            code="x", time_zone="UTC", latitude=50.0, renewable_share=0.5, grid_region="ie-sem"
        ).grid_region
        == "IE-SEM"
    )
    generic = derive_site_price_profile(code="y", time_zone="Africa/Nairobi", latitude=-1.3, renewable_share=0.9)
    assert generic.grid_region == "generic" and generic.target_negative_share > 0
    with pytest.raises(ValueError):
        replace(profile, renewable_share=1.5)


def test_every_catalogue_site_has_a_known_market_and_climate():
    for code, site in SITES.items():
        assert site_profile(code).grid_region == site.grid_region, code
        assert site.climate_zone in CLIMATE_ZONES, code
        assert site.cooling_type in COOLING_PARAMETERS, code


def test_simulation_package_does_not_import_django():
    code = "import sys, sites.simulation; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    repo_root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root)
    assert result.stdout.strip() == "False"


# --- market types -----------------------------------------------------------------------------


def test_day_ahead_markets_hold_one_price_per_settlement_interval():
    """Germany and Oslo clear 15-minute day-ahead products, Tokyo half hours; Texas stays 5-minute real-time."""
    day = YEAR_START + timedelta(days=100)
    for code, minutes, day_ahead in (
        ("site_10_germany", 15, True),
        ("site_3_norway", 15, True),
        ("site_7_japan", 30, True),
        ("site_4_singapore", 30, False),
        ("site_5_texas", 5, False),
    ):
        profile = site_profile(code)
        assert (profile.settlement_minutes, profile.day_ahead) == (minutes, day_ahead), code
        prices = simulate_energy_price_series(profile, day, 288, seed=SEED).usd_per_mwh
        blocks = prices.reshape(-1, minutes // 5)
        assert np.all(blocks == blocks[:, :1]), code  # flat within each settlement interval
        if minutes > 5:
            assert len(np.unique(prices)) == 288 * 5 // minutes, code
    # The blocks are aligned to the clock, so a window starting mid-interval sees the same prices.
    german = site_profile("site_10_germany")
    whole = simulate_energy_prices(german, day, 24, seed=SEED)
    np.testing.assert_array_equal(
        simulate_energy_prices(german, day + timedelta(minutes=10), 10, seed=SEED), whole[2:12]
    )


def test_day_ahead_prices_are_known_until_the_end_of_the_next_day_after_the_gate_closes():
    from sites.simulation.prices import day_ahead_known_until

    before = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: the auction for 11 March has not closed
    after = datetime(2025, 3, 10, 11, 0, tzinfo=UTC)
    assert day_ahead_known_until(before, "Europe/Berlin") == datetime(2025, 3, 10, 23, 0, tzinfo=UTC)
    assert day_ahead_known_until(after, "Europe/Berlin") == datetime(2025, 3, 11, 23, 0, tzinfo=UTC)
