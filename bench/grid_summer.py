"""A real summer backtested: the Texas site on ERCOT 2024 (June-September), with and without grid programs.

Data (committed in data/, copied from the shared real data): hourly ERCOT hub-average day-ahead and real-time
prices and the day-ahead ancillary-service clearing prices (REGUP, REGDN, RRS, NSPIN, ECRS) of 2024; ERCOT's
hourly native load 2023-2024 for the 4CP predictor and the actual peaks.

Every hour is planned by the engine (`optimizer.engine`, LP) on what was known before it: the day-ahead energy
price and the day-ahead ancillary clearing prices of the hour, and the 4CP peak probability from
`grid.peaks.PeakPredictor` (load up to the hour before). Energy is settled at the hour's real-time price. The
transmission charge is settled after the summer on the site's facility load in the four actual monthly peak hours:
rate (ENERGYARB["CP_RATE_USD_PER_KW_YEAR"] default, 60 USD/kW-year) x the mean of those four loads.

The site: Texas as seeded (1,500 kW facility, 200 air miners of 3.5 kW / 200 TH/s, 100 GPU nodes of 10.2 kW /
12,000 tok/s, 30 ASIC inference nodes of 8 kW / 40,000 tok/s) at a summer PUE of 1.30, holding a Premium
(150 kW), a Standard (300 kW, 95 % uptime) and a Spot (150 kW) contract; the enrollment offers up to 1 MW to each
ancillary service. Assumptions, not data (set below): hashprice 45 USD/PH/day (summer 2024 hovered around it
after the halving), Spot-market tokens at 0.03 USD/Mtok with demand of 2,000 Mtok/h, contract prices per kWh.

    .venv/bin/python bench/grid_summer.py [--year 2024] [--markdown] [--strategy lp|greedy]

``--strategy greedy`` plans each hour with the greedy heuristic instead (``optimizer.engine.greedy``, which follows
the programs by the fixed rules of ``optimizer/engine/heuristic_grid.py``), scored like the backtest scores it
(``evaluate``: units pinned, contracts and reserves held on them optimized).

Prints profit with and without the programs by stream, capacity sold per product, and the peaks caught.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grid.peaks import CP_MONTHS, ERCOT_TZ, PeakPredictor, monthly_peaks, read_load_csv  # noqa: E402
from optimizer.engine import (  # noqa: E402
    Commitment,
    HardwareModel,
    Market,
    Problem,
    Settings,
    Site,
    evaluate,
    greedy,
    solve,
)
from optimizer.engine.grid import CoincidentPeak, GridInputs, ReserveOffer  # noqa: E402

DATA = ROOT / "data"
PRICES = DATA / "ercot_hourly_hubs_da_rt_as_mcpc_2024.csv"
LOAD = DATA / "ercot_native_load_hourly_2023-2024.csv"
PRODUCTS = {  # engine product -> (price column, response time s)
    "reg_up": ("as_mcpc_REGUP_usd_per_mw_h", 4),
    "reg_down": ("as_mcpc_REGDN_usd_per_mw_h", 4),
    "rrs": ("as_mcpc_RRS_usd_per_mw_h", 1),
    "non_spin": ("as_mcpc_NSPIN_usd_per_mw_h", 1800),
    "ecrs": ("as_mcpc_ECRS_usd_per_mw_h", 600),
}
HARDWARE = (
    HardwareModel("s21", "miner", power_kw=3.5, hashrate_th_s=200.0),
    HardwareModel("gpu", "inference", power_kw=10.2, tokens_per_s=12000.0),
    HardwareModel("lpu", "inference", power_kw=8.0, tokens_per_s=40000.0),
)
INVENTORY = [[200, 100, 30]]
PUE = 1.30
CAPACITY_KW = 1500.0
HASHPRICE = 45.0
TOKEN_PRICE = 0.03
TOKEN_DEMAND = 2000.0
ENROLLED_KW = 1000.0
CONTRACTS = (
    Commitment("premium", "premium", 150.0, price_usd_per_kwh=0.30, penalty_usd_per_kwh=0.30, allowed_sites=("TX",)),
    Commitment("standard", "standard", 300.0, price_usd_per_kwh=0.18, penalty_usd_per_kwh=0.09, allowed_sites=("TX",)),
    Commitment("spot", "spot", 150.0, price_usd_per_kwh=0.06, penalty_usd_per_kwh=0.0, allowed_sites=("TX",)),
)
STANDARD_UPTIME = 0.95
RATE = 60.0  # USD per kW-year, ENERGYARB["CP_RATE_USD_PER_KW_YEAR"]'s default (docs/grid.md)


def read_prices(year: int) -> dict[datetime, dict[str, float]]:
    rows = {}
    with open(PRICES, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            start = datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00"))
            local = start.astimezone(ERCOT_TZ)
            if local.year != year or local.month not in CP_MONTHS:
                continue
            if any(row[c] == "" for c in row):
                continue  # an hour the sources lack: not planned, not counted
            rows[start] = {k: float(v) for k, v in row.items() if k != "timestamp_utc"}
    return rows


def hour_problem(row: dict[str, float], *, probability: float, programs: bool, allowance: float) -> Problem:
    grid = None
    if programs:
        reserves = tuple(
            ReserveOffer(product, "TX", ENROLLED_KW, np.array([row[column]]), response_s=response)
            for product, (column, response) in PRODUCTS.items()
        )
        peak = CoincidentPeak(np.array([probability]), RATE, 4, ("TX",))
        grid = GridInputs(reserves=reserves, peak=peak, allowance_kwh={"standard": allowance})
    return Problem(
        sites=(Site("TX", CAPACITY_KW, "americas"),),
        hardware=HARDWARE,
        inventory_units=INVENTORY,
        period_hours=[1.0],
        pue=[[PUE]],
        energy_price_usd_per_mwh=[[row["da_spp_hb_hubavg_usd_per_mwh"]]],
        market=Market(
            hashprice_usd_per_ph_day=[HASHPRICE],
            inference_price_usd_per_mtok=[TOKEN_PRICE],
            inference_demand_mtok_per_h={"americas": [TOKEN_DEMAND]},
        ),
        commitments=CONTRACTS,
        settings=Settings(integer=False, time_limit_s=10.0),
        grid=grid,
    )


def run_summer(year: int, *, programs: bool, prices, probability, strategy: str = "lp") -> dict:
    books: dict[str, float] = defaultdict(float)
    capacity_mwh: dict[str, float] = defaultdict(float)
    load_at: dict[datetime, float] = {}
    allowance: dict[int, float] = {}
    curtailed_hours = 0
    for start, row in prices.items():
        month = start.astimezone(ERCOT_TZ).month
        budget = allowance.setdefault(month, (1 - STANDARD_UPTIME) * CONTRACTS[1].capacity_kw * 24 * 30)
        problem = hour_problem(row, probability=probability.get(start, 0.0), programs=programs, allowance=budget)
        solution = solve(problem) if strategy == "lp" else evaluate(problem, greedy(problem))
        assert solution.ok, solution.status
        totals = solution.totals
        facility_kw = float(solution.ledger.facility_kw[0, 0])
        load_at[start] = facility_kw
        rt = row["rt_spp_hb_hubavg_hourly_mean_usd_per_mwh"]
        books["mining"] += totals.mining_revenue_usd
        books["spot inference"] += totals.inference_revenue_usd
        books["SLA contracts"] += totals.contract_revenue_usd
        books["energy (real-time)"] -= facility_kw / 1000 * rt
        grid_books = solution.grid_books
        books["AS capacity"] += grid_books.get("as_capacity_usd", 0.0)
        waived = grid_books.get("sla_credit_waived_usd", 0.0)
        books["penalties"] -= totals.penalty_usd - waived
        standard = next(c for c in solution.commitments if str(c.id) == "standard")
        allowance[month] = max(0.0, budget - standard.unserved_kw)
        if programs and probability.get(start, 0.0) >= 0.5:
            curtailed_hours += 1
        for key, kw in grid_books.items():
            if key.startswith("held_kw:"):
                capacity_mwh[key.split(":", 1)[1]] += kw / 1000  # one hour
    return {"books": dict(books), "capacity_mwh": dict(capacity_mwh), "load_at": load_at, "hours": curtailed_hours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--strategy", choices=("lp", "greedy"), default="lp")
    args = parser.parse_args()
    started = time.perf_counter()
    prices = read_prices(args.year)
    series = read_load_csv(LOAD)
    probs = PeakPredictor().probabilities(series)
    probability = dict(zip(series.starts, probs.tolist(), strict=True))
    peaks = [series.starts[t] for t in monthly_peaks(series, args.year).values()]
    results = {}
    for programs in (False, True):
        result = run_summer(
            args.year, programs=programs, prices=prices, probability=probability, strategy=args.strategy
        )
        peak_kw = [result["load_at"].get(p, float("nan")) for p in peaks]
        result["peak_kw"] = peak_kw
        result["books"]["CP transmission charge"] = -RATE * float(np.nanmean(peak_kw))
        results[programs] = result
    base, grid = results[False], results[True]
    streams = [
        "mining",
        "spot inference",
        "SLA contracts",
        "AS capacity",
        "energy (real-time)",
        "CP transmission charge",
        "penalties",
    ]
    print(f"Texas site, ERCOT summer {args.year} (June-September, {len(prices)} hours with data), {args.strategy}, USD")
    print(f"{'stream':<28}{'without programs':>18}{'with programs':>16}{'difference':>14}")
    for name in streams:
        a, b = base["books"].get(name, 0.0), grid["books"].get(name, 0.0)
        print(f"{name:<28}{a:>18,.0f}{b:>16,.0f}{b - a:>14,.0f}")
    total_a, total_b = sum(base["books"].get(n, 0.0) for n in streams), sum(grid["books"].get(n, 0.0) for n in streams)
    print(f"{'profit':<28}{total_a:>18,.0f}{total_b:>16,.0f}{total_b - total_a:>14,.0f}")
    avoided = grid["books"]["CP transmission charge"] - base["books"]["CP transmission charge"]
    print(f"CP charges avoided: {avoided:,.0f} USD/year")
    print(
        "capacity sold, MWh (MW held x hours): " + ", ".join(f"{k} {v:,.0f}" for k, v in grid["capacity_mwh"].items())
    )
    caught = sum(1 for kw in grid["peak_kw"] if kw < 0.5 * np.nanmean(base["peak_kw"]))
    print(
        f"peaks: site load at the 4 actual peak hours without {[round(k) for k in base['peak_kw']]} kW, "
        f"with {[round(k) for k in grid['peak_kw']]} kW; caught {caught}/4; hours flagged by the predictor "
        f"{grid['hours']}"
    )
    print(f"({time.perf_counter() - started:.0f} s, {2 * len(prices)} hourly solves)")


if __name__ == "__main__":
    main()
