"""Measure the simulators on a generated year: speed and the statistics quoted in docs/simulation.md.

Pure numpy (no Django, no database). Run from the repository root:

    .venv/bin/python bench/simulation_stats.py [--seed 2025] [--years 10]

``--years N`` also averages the negative share and spike count over N independent seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sites.catalogue import SITES
from sites.simulation import (
    COOLING_PARAMETERS,
    derive_climate_profile,
    derive_site_price_profile,
    expected_temperatures,
    pue,
    simulate_energy_price_series,
    simulate_fleet_prices,
    simulate_hashprice,
    simulate_inference_demand,
    simulate_inference_price,
    simulate_temperatures,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
PROFILES = [
    derive_site_price_profile(
        code=site.code,
        time_zone=site.time_zone,
        latitude=float(site.latitude),
        renewable_share=float(site.renewable_share),
        energy_cost_multiplier=float(site.energy_cost_multiplier),
        grid_region=site.grid_region,
    )
    for site in SITES
]
CLIMATES = [
    derive_climate_profile(latitude=float(site.latitude), climate_zone=site.climate_zone, time_zone=site.time_zone)
    for site in SITES
]
PERIODS = 365 * 288  # one year of 5-minute intervals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--years", type=int, default=10, help="independent seeds for the averaged columns")
    args = parser.parse_args()
    profiles = PROFILES

    timings = []
    for _ in range(3):  # the first run also pays for imports and zoneinfo caches
        began = time.perf_counter()
        fleet = simulate_fleet_prices(profiles, START, PERIODS, seed=args.seed)
        timings.append(time.perf_counter() - began)
    print(
        f"10-site year of 5-minute energy prices {fleet.shape}: first run {timings[0]:.2f} s,"
        f" best of 3 {min(timings):.2f} s"
    )
    began = time.perf_counter()
    simulate_hashprice(START, PERIODS, seed=args.seed)
    simulate_inference_price(START, PERIODS, seed=args.seed)
    for site, climate in zip(SITES, CLIMATES, strict=True):
        simulate_temperatures(climate, START, PERIODS, seed=args.seed, stream=site.code)
    print(f"hashprice + inference price + 10 sites' 5-minute temperatures: {time.perf_counter() - began:.2f} s")

    print(f"\nEnergy prices, USD/MWh, year 2025, seed {args.seed} (avg = mean over {args.years} seeds)")
    header = (
        f"{'site':18} {'region':16} {'mean':>6} {'p50':>6} {'p99':>7} {'max':>6} {'neg %':>6} {'spikes':>6}"
        f" | {'avg neg %':>9} {'avg spikes':>10}"
    )
    print(header)
    print("-" * len(header))
    for profile in profiles:
        series = simulate_energy_price_series(profile, START, PERIODS, seed=args.seed)
        prices = series.usd_per_mwh
        repeats = [simulate_energy_price_series(profile, START, PERIODS, seed=args.seed + k) for k in range(args.years)]
        avg_negative = 100 * np.mean([np.mean(r.usd_per_mwh < 0) for r in repeats])
        avg_spikes = np.mean([r.spike_count for r in repeats])
        print(
            f"{profile.code:18} {profile.grid_region:16} {prices.mean():6.1f} {np.median(prices):6.1f}"
            f" {np.percentile(prices, 99):7.1f} {prices.max():6.0f} {100 * np.mean(prices < 0):6.2f}"
            f" {series.spike_count:6d} | {avg_negative:9.2f} {avg_spikes:10.1f}"
        )

    hashprice = simulate_hashprice(START, PERIODS, seed=args.seed)
    print(
        f"\nHashprice, USD per PH/s per day: mean {hashprice.mean():.1f}, min {hashprice.min():.1f},"
        f" max {hashprice.max():.1f}, sd of daily change {np.std(np.diff(hashprice[::288])):.2f}"
    )
    inference = simulate_inference_price(START, PERIODS, seed=args.seed)
    print(
        f"Inference price, USD per million tokens: mean {inference.mean():.2f},"
        f" p1 {np.percentile(inference, 1):.2f}, p99 {np.percentile(inference, 99):.2f}"
    )
    demand = simulate_inference_demand(START, PERIODS, seed=args.seed)
    utc_hour = (np.arange(PERIODS) // 12) % 24
    peaks = {
        region: int(np.argmax(np.bincount(utc_hour, weights=v) / np.bincount(utc_hour))) for region, v in demand.items()
    }
    means = {region: round(float(v.mean())) for region, v in demand.items()}
    print(f"Inference demand peak hour (UTC): {peaks}; mean million tokens/hour: {means}")

    print("\nTemperatures, degC (hourly year): mean, Jan mean, Jul mean, p1, p99, lag-1h autocorrelation of anomalies")
    for site, climate in zip(SITES, CLIMATES, strict=True):
        temps = simulate_temperatures(climate, START, 8760, 60, seed=args.seed, stream=site.code)
        anomaly = temps - expected_temperatures(climate, START, 8760, 60)
        lag1 = np.corrcoef(anomaly[:-1], anomaly[1:])[0, 1]
        print(
            f"  {site.code:18} {climate.climate_zone:17} {temps.mean():5.1f} {temps[:744].mean():6.1f}"
            f" {temps[4344:5088].mean():6.1f} {np.percentile(temps, 1):6.1f} {np.percentile(temps, 99):6.1f}"
            f" {lag1:5.2f}"
        )

    print("\nPUE by outdoor temperature (degC)")
    grid = [-20, 0, 10, 20, 25, 30, 35, 40, 45]
    print(f"  {'cooling':13}" + "".join(f"{t:>7}" for t in grid))
    for cooling_type in COOLING_PARAMETERS:
        print(f"  {cooling_type:13}" + "".join(f"{value:7.3f}" for value in pue(cooling_type, np.array(grid, float))))


if __name__ == "__main__":
    main()
