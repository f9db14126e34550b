"""Forecasts judged on real prices: ERCOT 2024 real-time hub average, ridge against persistence and seasonal-naive.

    .venv/bin/python bench/forecast_real.py [--data /work/shared/data/real] [--every-hours 3] [--horizon-hours 6]

The 15-minute real-time series is placed on the live optimizer's 5-minute grid (steps, as the importer stores it).
Rolling origins every ``--every-hours`` from day 29 of 2024 to the year's end: at each origin every model sees only
the past and forecasts the next ``--horizon-hours`` (the live optimizer's planning horizon, 6 h):

- ``persistence``: the last value held;
- ``seasonal-naive``: the same time one day earlier;
- ``ridge``: optimizer.forecast.ridge_forecast (daily and weekly Fourier terms, the seasonal lag, an AR(1)
  residual correction), fitted at each origin on up to four weeks, as the live optimizer refits.

Errors per lead band (5 min, the first hour, 1-6 h, the whole horizon): MAPE in percent (actuals within 5 USD/MWh
of zero left out, as the backtest does), pinball loss at the median (half the MAE, USD/MWh), and the mean of the
period means over the live horizon's periods (12 x 5 min, then hourly), which is what the planner consumes.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizer.forecast import mape, pinball_loss, ridge_forecast, seasonal_naive

DEFAULT_DATA = Path("/work/shared/data/real")
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
STEP_MINUTES = 5
DAY = 288
MAPE_FLOOR = 5.0  # USD/MWh, as optimizer.backtest's forecast errors
BANDS = (("5 min", 0, 1), ("0-1 h", 0, 12), ("1-6 h", 12, 72), ("0-6 h", 0, 72))


def real_series(data: Path) -> np.ndarray:
    """ERCOT HB_HUBAVG real-time 2024 on the 5-minute grid (quarters as steps; a missing quarter holds the last)."""
    values = np.full(366 * DAY, np.nan)
    with (data / "ercot_rt15_hb_hubavg_2024.csv").open() as handle:
        for row in csv.DictReader(handle):
            start = datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00"))
            index = int((start - YEAR_START).total_seconds() // 300)
            if row["rt_spp_hb_hubavg_usd_per_mwh"] and 0 <= index < values.size:
                values[index : index + 3] = float(row["rt_spp_hb_hubavg_usd_per_mwh"])
    for i in np.flatnonzero(np.isnan(values)):
        values[i] = values[i - 1] if i else np.nanmean(values)
    return values


def forecasts(history: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    return {
        "persistence": np.repeat(history[-1:], horizon),
        "seasonal-naive": seasonal_naive(history, DAY, horizon),
        "ridge": ridge_forecast(history[-28 * DAY - DAY :], horizon, STEP_MINUTES),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--every-hours", type=float, default=3.0)
    parser.add_argument("--horizon-hours", type=float, default=6.0)
    args = parser.parse_args()
    series = real_series(args.data)
    horizon = round(args.horizon_hours * 12)
    origins = range(29 * DAY, series.size - horizon, round(args.every_hours * 12))
    actual_rows, predicted = [], {name: [] for name in ("persistence", "seasonal-naive", "ridge")}
    started = time.perf_counter()
    for origin in origins:
        actual_rows.append(series[origin : origin + horizon])
        for name, path in forecasts(series[:origin], horizon).items():
            predicted[name].append(path)
    actual = np.array(actual_rows)
    print(f"ERCOT HB_HUBAVG real-time 2024 on 5-minute steps: {len(actual)} origins every {args.every_hours:g} h, "
          f"horizon {args.horizon_hours:g} h ({time.perf_counter() - started:.1f} s)")  # fmt: skip
    print(f"\n{'model':<15}" + "".join(f" {band + ' MAPE %':>14} {band + ' q50':>11}" for band, _, _ in BANDS))
    results = {}
    for name, rows in predicted.items():
        forecast = np.array(rows)
        cells = []
        for _, lo, hi in BANDS:
            a, f = actual[:, lo:hi], forecast[:, lo:hi]
            cells.append((mape(a, f, floor=MAPE_FLOOR), pinball_loss(a, f, 0.5)))
        results[name] = cells
        print(f"{name:<15}" + "".join(f" {m:>14.1f} {p:>11.2f}" for m, p in cells))
    best = min(results, key=lambda name: results[name][-1][1])
    print(f"\nlowest pinball loss over the whole horizon: {best}")


if __name__ == "__main__":
    main()
