"""Benchmark of the optimization engine at fleet scale (prints figures; not a timed test).

    .venv/bin/python bench/optimizer.py            # 1,000 synthetic sites x 24 h (12 x 5 min, then hourly)
    .venv/bin/python bench/optimizer.py --quick    # 50 sites: a smoke run for CI

Figures: problem size; cold solve seconds (build + HiGHS + assembling the Solution); warm re-solve seconds after
a one-step (5-minute) shift of the rolling horizon, warm-started from the previous Solution; peak resident
memory of the process; the objective's relative difference against an independent scipy.optimize solve; and
the engine-only tick of ten sites. Targets (issue 4): cold <= 10 s, warm <= 2 s, peak <= 1.5 GB, agreement
<= 1e-6 relative.

The synthetic world is deterministic (seeded): every price is a function of absolute time, so the shifted
problem sees the same future as the first one, one step later, exactly as a live rolling horizon does.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer.engine import (
    Commitment,
    HardwareModel,
    Market,
    Problem,
    Settings,
    Site,
    rolling_periods,
    solve,
    solve_with_scipy,
)

REGIONS = ("apac", "europe", "americas")
UTC_OFFSET_H = {"apac": 8.0, "europe": 1.0, "americas": -6.0}
START = datetime(2025, 6, 21, 12, 0)
HARDWARE = (
    HardwareModel("air", "miner", power_kw=3.5, hashrate_th_s=200.0),
    HardwareModel("hydro", "miner", power_kw=5.5, hashrate_th_s=500.0),
    HardwareModel("immersion", "miner", power_kw=10.0, hashrate_th_s=1100.0),
    HardwareModel("gpu", "inference", power_kw=10.2, tokens_per_s=30000.0),
    HardwareModel("asic", "inference", power_kw=15.0, tokens_per_s=80000.0),
)


class World:
    """A seeded fleet whose prices are functions of absolute time (5-minute slots over two days)."""

    SLOTS = 2 * 24 * 12  # two days of 5-minute slots from START

    def __init__(self, n_sites: int, seed: int = 42) -> None:
        rng = np.random.default_rng(seed)
        self.n_sites = n_sites
        self.region = rng.choice(len(REGIONS), size=n_sites)
        self.capacity_kw = rng.uniform(2_000, 20_000, n_sites)
        self.base_pue = rng.uniform(1.05, 1.45, n_sites)
        self.renewable = rng.uniform(0, 1, n_sites)
        self.carbon = rng.uniform(0, 700, n_sites)
        self.available = rng.uniform(size=n_sites) > 0.02  # 2 % in maintenance
        # Inventory sized to ~1.3x each site's power, so power binds and the mix matters.
        kw = np.array([h.power_kw for h in HARDWARE])
        mix = rng.dirichlet(np.ones(len(HARDWARE)), size=n_sites)
        self.inventory = np.floor(mix * self.capacity_kw[:, None] * 1.3 / kw[None, :])
        self.price_slots = self._price_slots(rng)  # [S, SLOTS] USD/MWh
        self.commitments = self._commitments(rng)

    def _local_hour(self, hours_from_start: np.ndarray) -> np.ndarray:
        offsets = np.array([UTC_OFFSET_H[REGIONS[r]] for r in self.region])[:, None]
        return (hours_from_start[None, :] + START.hour + offsets) % 24

    def _price_slots(self, rng: np.random.Generator) -> np.ndarray:
        """Real-time-like 5-minute prices: diurnal shape, AR(1) noise, solar-noon dips below zero, rare spikes."""
        t = np.arange(self.SLOTS) / 12.0
        local = self._local_hour(t)
        base = rng.uniform(20, 70, self.n_sites)[:, None]
        amplitude = rng.uniform(10, 60, self.n_sites)[:, None]
        price = base + amplitude * np.sin((local - 9.0) / 24 * 2 * np.pi)
        noise = np.zeros_like(price)
        shocks = rng.normal(0, 6, price.shape)
        for k in range(1, self.SLOTS):
            noise[:, k] = 0.9 * noise[:, k - 1] + shocks[:, k]
        solar = (self.renewable > 0.6)[:, None] & (np.abs(local - 13.0) < 2.0)
        spikes = rng.uniform(size=price.shape) < 0.003
        return price + noise - 70.0 * solar + 250.0 * spikes

    def _commitments(self, rng: np.random.Generator) -> tuple[Commitment, ...]:
        codes = [f"S{i:04d}" for i in range(self.n_sites)]
        # (tier, USD/kWh, penalty USD/kWh, N-1, min sites, candidate sites): a contract names a few sites.
        tiers = [
            ("premium", 0.30, 0.60, True, 1, 6),
            ("standard", 0.20, 0.30, False, 1, 10),
            ("flexible", 0.12, 0.10, False, 2, 20),
        ]
        out = []
        for tier, price, penalty, n1, min_sites, n_allowed in tiers:
            for j in range(max(1, self.n_sites // 100)):
                allowed = tuple(rng.choice(codes, size=min(n_allowed, self.n_sites), replace=False).tolist())
                capacity = float(rng.uniform(500, 3_000))
                out.append(Commitment(f"{tier}-{j}", tier, capacity, price, penalty, n1, allowed, min_sites))
        return tuple(out)

    def problem(self, step: int, previous_units: np.ndarray | None) -> Problem:
        """The rolling-horizon problem starting ``step`` 5-minute slots after START."""
        start = START + timedelta(minutes=5 * step)
        hours, starts = rolling_periods(start, fine_steps=12, fine_minutes=5, horizon_hours=24.0)
        first_slot = step + np.concatenate([[0], np.cumsum(np.round(hours * 12).astype(int))])  # [T + 1]
        # A period's price is the mean of its 5-minute slots (what a forecast of an hour would give).
        cumulative = np.concatenate([np.zeros((self.n_sites, 1)), np.cumsum(self.price_slots, axis=1)], axis=1)
        price = (cumulative[:, first_slot[1:]] - cumulative[:, first_slot[:-1]]) / np.diff(first_slot)
        mid = (first_slot[:-1] + first_slot[1:]) / 2 / 12.0  # [T] hours from START
        local = self._local_hour(mid)
        pue = self.base_pue[:, None] + 0.05 * np.sin((local - 15.0) / 24 * 2 * np.pi)
        demand = {}
        for r, name in enumerate(REGIONS):
            region_local = (mid + START.hour + UTC_OFFSET_H[name]) % 24
            n_here = max(1, int((self.region == r).sum()))
            demand[name] = n_here * 400.0 * (0.4 + 0.6 * np.clip(np.sin((region_local - 6) / 16 * np.pi), 0, None))
        sites = tuple(
            Site(
                f"S{i:04d}",
                float(self.capacity_kw[i]),
                REGIONS[self.region[i]],
                float(self.renewable[i]),
                float(self.carbon[i]),
                bool(self.available[i]),
            )
            for i in range(self.n_sites)
        )
        return Problem(
            sites=sites,
            hardware=HARDWARE,
            inventory_units=self.inventory,
            period_hours=hours,
            period_starts=starts,
            pue=np.maximum(pue, 1.0),
            energy_price_usd_per_mwh=price,
            market=Market(
                hashprice_usd_per_ph_day=50.0 + 2.0 * np.sin(mid / 24 * 2 * np.pi),
                inference_price_usd_per_mtok=0.35 + 0.05 * np.cos(mid / 24 * 2 * np.pi),
                inference_demand_mtok_per_h=demand,
            ),
            commitments=self.commitments,
            previous_units=previous_units,
            settings=Settings(
                switching_cost_usd_per_unit=0.05,
                carbon_price_usd_per_t=40.0,
                ramp_limit_fraction=0.25,
                time_limit_s=120.0,
            ),
        )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process): CPU time shows the work when the machine is busy."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 sites instead of 1,000")
    parser.add_argument("--sites", type=int, default=None)
    parser.add_argument("--no-scipy", action="store_true", help="skip the scipy cross-check")
    args = parser.parse_args()
    n_sites = args.sites or (50 if args.quick else 1000)

    world = World(n_sites)
    first = world.problem(0, previous_units=world.inventory * 0.5 * world.available[:, None])
    n_s, n_h, n_t = first.shape
    print(
        f"engine bench: {n_s} sites x {n_h} models x {n_t} periods (12 x 5 min, then hourly to 24 h), "
        f"{len(first.commitments)} commitments, switching cost, ramp limits, carbon price, 2 % of sites offline"
    )

    cold, wall, cpu = timed(solve, first)
    rows, cols = len(cold.warm.basis.row_status), len(cold.warm.basis.col_status)
    print(f"  LP size: {cols:,} columns x {rows:,} rows")
    print(
        f"  cold solve:   {wall:6.2f} s wall, {cpu:6.2f} s CPU  (status {cold.status}, "
        f"objective ${cold.objective_usd:,.2f})  target <= 10 s"
    )

    second = world.problem(1, previous_units=cold.first_period_units)
    warm, wall, cpu = timed(solve, second, warm_start=cold)
    print(
        f"  warm re-solve after a one-step (5 min) shift: {wall:6.2f} s wall, {cpu:6.2f} s CPU  "
        f"(status {warm.status}, warm-started {warm.warm_started})  target <= 2 s"
    )
    engine_peak = peak_rss_mb()
    integer = replace(first, settings=replace(first.settings, integer=True))
    whole, wall, cpu = timed(solve, integer)
    print(
        f"  integer units (MILP, gap <= 0.1 %), cold: {wall:6.2f} s wall, {cpu:6.2f} s CPU  "
        f"(status {whole.status}, gap {whole.mip_gap:.3%}; {whole.explanation[0].split('(')[1].split(',')[0]})"
    )
    del whole
    reference, wall, _ = timed(solve, second)
    gap = abs(reference.objective_usd - warm.objective_usd) / abs(reference.objective_usd)
    print(f"    (the same shifted problem solved cold: {wall:.2f} s wall; objectives differ by {gap:.1e} relative)")
    del reference, cold

    if not args.no_scipy:
        patient = replace(second, settings=replace(second.settings, time_limit_s=1800.0))
        reference, wall, _ = timed(solve_with_scipy, patient)
        rel = abs(reference.objective_usd - warm.objective_usd) / max(1.0, abs(reference.objective_usd))
        print(
            f"  scipy.optimize cross-check (linprog, HiGHS interior point): ${reference.objective_usd:,.2f} in "
            f"{wall:.1f} s; relative difference {rel:.1e}  target <= 1e-6"
        )
        del reference

    ten = World(10, seed=7)
    solution = solve(ten.problem(0, None))
    ticks = []
    for step in range(1, 21):
        problem = ten.problem(step, solution.first_period_units)
        solution, wall, _ = timed(solve, problem, warm_start=solution)
        ticks.append(wall)
    print(
        f"  ten sites, one engine tick (build + warm solve + explain), median of 20: "
        f"{statistics.median(ticks) * 1000:.0f} ms"
    )
    print(
        f"  peak memory (max RSS of the process): {engine_peak:,.0f} MB after the cold and warm solves "
        f"(target <= 1,536 MB); {peak_rss_mb():,.0f} MB for the whole run incl. MILP and scipy"
    )


if __name__ == "__main__":
    main()
