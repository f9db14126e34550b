"""A real year backtested: the ten-site world through 2024 with Texas, Germany and Australia on real prices.

    .venv/bin/python bench/real_year.py [--data /work/shared/data/real] [--weeks N] [--workers 2] [--out DIR]
    .venv/bin/python bench/real_year.py --texas-only          # the Texas site alone on the real 15-minute series

World: optimizer/worlds/ten-sites-sla.json. Prices, temperatures and demand of 2024 come from the simulators
(seeded, optimizer.backtest.simulate_history); then the energy prices of three sites are replaced by real ones
(times each site's energy-cost multiplier, the rule the simulator applies to its regional price):

- site_5_texas: ERCOT real-time HB_HUBAVG, 15 minutes, the whole of 2024, each quarter as three 5-minute steps;
- site_10_germany: ENTSO-E DE-LU day-ahead, hourly, EUR -> USD at the ECB's daily rate, 2024-01-01..06-30; the
  shared data stops there, so July-December stay simulated (the calibrated DE-LU simulator);
- site_8_australia: the shared data holds no 2024 NSW1 prices (two weeks of September 2022 only), so it stays
  on the simulator calibrated against them (docs/simulation.md).

Decomposition (why it fits in minutes): the year is cut into weeks, solved independently in ``--workers``
processes: per week the perfect-foresight bound (one MILP over the week), greedy, and lp on the bench horizon
(one 5-minute plus one 10-minute period, persistence forecast, bench/backtest.py's). Weeks start from nothing
running, so a switch at a week boundary is not charged: per week that is at most one start per unit, noted in the
report. The perfect bound is then the sum of weekly bounds: a week-decomposed bound, not one solve over the year.
Prints per strategy profit, revenue, energy cost, capture ratio (profit / perfect), and where the time went;
peak memory is the largest resident set of this process and of any worker (ru_maxrss). Writes DIR/profit.png
with the daily profit of each strategy and the scarcity days marked, and DIR/summary.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer import backtest, engine
from optimizer.backtest.replay import INTERVAL_HOURS, _replay_lp, _replay_myopic, _score_solution

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "optimizer" / "worlds" / "ten-sites-sla.json"
DEFAULT_DATA = Path("/work/shared/data/real")
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_INTERVALS = 366 * 288
WEEK = 7 * 288
BENCH_HORIZON = backtest.Horizon(fine_steps=1, hours=0.25)
SCARCITY = (datetime(2024, 5, 9, 1, 0, tzinfo=UTC), datetime(2024, 8, 21, 0, 30, tzinfo=UTC))
TARGET_S, TARGET_GB = 300.0, 2.0


def read_tidy(path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(interval offsets from YEAR_START in 5-minute steps, values) of a tidy real file's non-empty cells."""
    offsets, values = [], []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if row[column]:
                start = datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00"))
                offsets.append(int((start - YEAR_START).total_seconds() // 300))
                values.append(float(row[column]))
    return np.array(offsets), np.array(values)


def on_grid(offsets: np.ndarray, values: np.ndarray, native_steps: int, fallback: np.ndarray) -> np.ndarray:
    """Native prices as 5-minute steps over the year; intervals the source lacks keep ``fallback``."""
    series = fallback.copy()
    for k in range(native_steps):
        index = offsets + k
        keep = (index >= 0) & (index < series.size)
        series[index[keep]] = values[keep]
    return series


def eur_to_usd(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """EUR values at the ECB reference rate of their UTC day (the newest earlier business day's on weekends)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from calibration import ecb_usd_per_unit

    rates = ecb_usd_per_unit("EUR")
    ordered = sorted(rates)
    days = np.array([(YEAR_START + timedelta(minutes=5 * int(o))).date() for o in offsets], dtype="datetime64[D]")
    index = np.searchsorted(np.array(ordered, dtype="datetime64[D]"), days, side="right") - 1
    return values * np.array([rates[ordered[i]] for i in index])


def real_history(world: backtest.World, data: Path, periods: int) -> tuple[backtest.History, dict[str, str]]:
    history = backtest.simulate_history(world, start=YEAR_START, periods=periods)
    prices = history.energy_price_usd_per_mwh.copy()
    codes = list(world.site_codes)
    sources = dict.fromkeys(codes, "simulator")

    def put(code: str, offsets, values, steps: int, label: str) -> None:
        if code not in codes:
            return
        row = codes.index(code)
        multiplier = world.locations[row].energy_cost_multiplier if world.locations else 1.0
        prices[row] = on_grid(offsets, values * multiplier, steps, prices[row])
        sources[code] = label

    offsets, values = read_tidy(data / "ercot_rt15_hb_hubavg_2024.csv", "rt_spp_hb_hubavg_usd_per_mwh")
    put("site_5_texas", offsets, values, 3, "ERCOT HB_HUBAVG real-time 15 min (real, 2024)")
    offsets, values = read_tidy(data / "entsoe_da_de_lu_hourly_2024-01_2024-06.csv", "da_price_de_lu_eur_per_mwh")
    put("site_10_germany", offsets, eur_to_usd(offsets, values), 12, "DE-LU day-ahead (real H1 2024, simulated H2)")
    if "site_8_australia" in sources:
        sources["site_8_australia"] = "simulator calibrated to NSW1 (no real 2024 data)"
    return replace(history, energy_price_usd_per_mwh=prices), sources


def lp_week(args: tuple) -> dict:
    """lp over one week (a worker process): scores, daily profit, seconds and peak memory."""
    world, history, integer = args
    planner = replace(world, settings=replace(world.settings, integer=integer))
    started, cpu = time.perf_counter(), time.process_time()
    statuses: Counter = Counter()
    units = _replay_lp(planner, history, backtest.persistence_forecast, BENCH_HORIZON, statuses, [], lambda n: None)
    score = backtest.score_units(world, history, units)
    seconds, cpu = {"lp": time.perf_counter() - started}, {"lp": time.process_time() - cpu}
    return week_result({"lp": score}, history, seconds, cpu)


def compare_week(args: tuple) -> dict:
    """The perfect-foresight bound and greedy, for the capture ratios.

    ``milp``: the integer perfect plan (one MILP over the week, then its LP relaxation as the proven ceiling).
    ``relaxation``: the LP relaxation alone, the same ceiling that capture is measured against in ``milp`` mode,
    at a third of the cost; its row is a fractional plan (an upper bound, not a plan one could run).
    """
    world, history, bound_kind = args
    seconds, cpu, scores, notes = {}, {}, {}, []
    started, begun = time.perf_counter(), time.process_time()
    if bound_kind == "relaxation":
        problem = backtest.realized_outlook(history).problem(world, np.full(len(history), INTERVAL_HOURS), None)
        relaxed = engine.solve(replace(problem, settings=replace(problem.settings, integer=False)))
        if not relaxed.ok:
            raise backtest.BacktestInputError(f"the week's LP relaxation ended {relaxed.status}")
        scores["perfect"] = _score_solution(relaxed)
    else:
        bound = backtest.perfect_bound(world, history)
        scores["perfect"], notes = bound.score, list(bound.notes)
    seconds["perfect"], cpu["perfect"] = time.perf_counter() - started, time.process_time() - begun
    started, begun = time.perf_counter(), time.process_time()
    greedy = _replay_myopic(world, history, backtest.persistence_forecast, "greedy", lambda n: None)
    scores["greedy"] = backtest.score_units(world, history, greedy)
    seconds["greedy"], cpu["greedy"] = time.perf_counter() - started, time.process_time() - begun
    result = week_result(scores, history, seconds, cpu)
    result["notes"] = notes
    return result


def week_result(scores: dict, history, seconds: dict, cpu: dict) -> dict:
    return {
        "scores": {name: score_dict(score) for name, score in scores.items()},
        "daily": {name: daily_profit(history, score) for name, score in scores.items()},
        "seconds": seconds,
        "cpu": cpu,
        "notes": [],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def merge(lp_weeks: list[dict], compare_weeks: list[dict]) -> list[dict]:
    merged = []
    for lp, other in zip(lp_weeks, compare_weeks or [{}] * len(lp_weeks), strict=True):
        week = {key: {**lp[key], **other.get(key, {})} for key in ("scores", "daily", "seconds", "cpu")}
        week["notes"] = other.get("notes", [])
        week["max_rss_mb"] = max(lp["max_rss_mb"], other.get("max_rss_mb", 0))
        merged.append(week)
    return merged


def score_dict(score) -> dict:
    return {"profit": score.profit, "revenue": score.revenue, "energy_cost": score.energy_cost}


def daily_profit(history, score) -> list[tuple[str, float]]:
    per = score.profit_per_interval
    return [(history.interval_starts[first].date().isoformat(), float(per[first : first + 288].sum()))
            for first in range(0, len(history), 288)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weeks", type=int, default=0, help="only the first N weeks (0 = the whole year)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--texas-only", action="store_true", help="the Texas site alone on the real 15-min series")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "real-year")
    parser.add_argument("--integer", action="store_true", help="lp solves with whole units (MILP) each interval")
    parser.add_argument("--lp-only", action="store_true", help="skip the perfect bound and greedy")
    parser.add_argument(
        "--bound",
        choices=("milp", "relaxation"),
        default="milp",
        help="the weekly perfect-foresight bound: the integer plan (milp) or its LP relaxation only (cheaper)",
    )
    args = parser.parse_args()
    wall = time.perf_counter()
    world = backtest.load_world(WORLD)
    if args.texas_only:
        world = only_site(world, "site_5_texas")
    periods = min(YEAR_INTERVALS, args.weeks * WEEK) if args.weeks else YEAR_INTERVALS
    started = time.perf_counter()
    history, sources = real_history(world, args.data, periods)
    build_s = time.perf_counter() - started
    windows = [history.window(lo, min(lo + WEEK, periods)) for lo in range(0, periods, WEEK)]
    chunks = [(world, window, args.integer) for window in windows]
    print(f"{world.name}: {len(world.sites)} site(s), {periods} intervals from {YEAR_START:%Y-%m-%d}, "
          f"{len(chunks)} weekly chunks on {args.workers} worker(s)")  # fmt: skip
    for code, source in sources.items():
        if source != "simulator":
            print(f"  {code}: {source}")
    print(f"history (simulate + real prices): {build_s:.1f} s")
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        started = time.perf_counter()
        lp_weeks = list(pool.map(lp_week, chunks))
        lp_wall = build_s + time.perf_counter() - started
        print(
            f"lp ({'integer' if args.integer else 'relaxed, whole units at dispatch'}) over the year: "
            f"{lp_wall:.1f} s wall (history included; target <= {TARGET_S:.0f} s, ratio {lp_wall / TARGET_S:.2f})"
        )
        week_cpu = [week["cpu"]["lp"] for week in lp_weeks]
        print(f"  lp: {sum(week_cpu):.1f} CPU s over {len(week_cpu)} weeks (median {np.median(week_cpu):.2f} a week);"
              f" on {args.workers} free core(s) about {build_s + sum(week_cpu) / args.workers:.0f} s wall; peak memory"
              f" per worker {max(w['max_rss_mb'] for w in lp_weeks):,.0f} MB")  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "lp_weeks.json").write_text(json.dumps(lp_weeks))  # kept if the comparison is cut short
        compare_weeks = []
        if not args.lp_only:
            with (args.out / "compare_weeks.jsonl").open("w") as partial:
                for week in pool.map(compare_week, [(world, window, args.bound) for window in windows]):
                    compare_weeks.append(week)
                    partial.write(json.dumps(week) + "\n")
                    partial.flush()
    report(world, merge(lp_weeks, compare_weeks), time.perf_counter() - wall, args.out, periods)


def only_site(world: backtest.World, code: str) -> backtest.World:
    index = list(world.site_codes).index(code)
    return replace(
        world,
        name=f"{world.name} ({code} alone)",
        sites=(world.sites[index],),
        inventory_units=world.inventory_units[index : index + 1],
        cooling_types=(world.cooling_types[index],),
        locations=(world.locations[index],) if world.locations else (),
        commitments=(),  # the world's contracts span several sites (N-1): the site alone sells at spot
    )


def report(world, weeks: list[dict], wall_s: float, out: Path, periods: int) -> None:
    names = [name for name in ("perfect", "greedy", "lp") if name in weeks[0]["scores"]]
    totals = {name: {k: sum(w["scores"][name][k] for w in weeks) for k in ("profit", "revenue", "energy_cost")}
              for name in names}  # fmt: skip
    seconds = {name: sum(w["seconds"][name] for w in weeks) for name in names}
    cpu = {name: sum(w["cpu"][name] for w in weeks) for name in names}
    perfect = totals.get("perfect", {}).get("profit")
    peak_mb = max([w["max_rss_mb"] for w in weeks] + [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])
    print(
        f"\n{'strategy':<8} {'profit $':>14} {'revenue $':>14} {'energy $':>12} {'capture':>8} "
        f"{'wall s':>8} {'cpu s':>8}"
    )
    for name, total in totals.items():
        capture = total["profit"] / perfect if perfect else float("nan")
        print(f"{name:<8} {total['profit']:>14,.0f} {total['revenue']:>14,.0f} {total['energy_cost']:>12,.0f} "
              f"{capture:>8.4f} {seconds[name]:>8.1f} {cpu[name]:>8.1f}")  # fmt: skip
    print("(wall s: summed over the workers' weeks; cpu s: their process time, what a quiet machine would take)")
    print(f"\nwall, all strategies: {wall_s:.1f} s; peak memory per process {peak_mb:,.0f} MB "
          f"(target <= {TARGET_GB * 1024:,.0f} MB, ratio {peak_mb / TARGET_GB / 1024:.2f})")  # fmt: skip
    print("time per week, median s: " + ", ".join(
        f"{name} {np.median([w['seconds'][name] for w in weeks]):.2f}" for name in seconds))  # fmt: skip
    notes = sorted({note for w in weeks for note in w["notes"]})
    for note in notes[:5]:
        print(f"  note: {note}")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"world": world.name, "intervals": periods, "totals": totals, "worker_wall_seconds": seconds,
               "cpu_seconds": cpu,
               "wall_seconds": wall_s, "peak_rss_mb": peak_mb}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(weeks, out / "profit.png", world.name)
    print(f"wrote {out / 'summary.json'} and {out / 'profit.png'}")


def plot(weeks: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for name, colour in (("perfect", "#111827"), ("lp", "#2563eb"), ("greedy", "#f59e0b")):
        if name not in weeks[0]["daily"]:
            continue
        days = [(date.fromisoformat(d), p) for w in weeks for d, p in w["daily"][name]]
        ax.plot([d for d, _ in days], [p for _, p in days], label=name, color=colour, linewidth=0.9)
    for moment in SCARCITY:
        ax.axvline(moment.date(), color="#dc2626", linestyle="--", linewidth=0.8)
        ax.annotate(f"scarcity {moment:%b %d}", (moment.date(), ax.get_ylim()[1]), color="#dc2626", fontsize=8,
                    ha="center", va="bottom")  # fmt: skip
    ax.set_ylabel("profit per day, USD")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
