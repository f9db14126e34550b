"""The backtest's files: DIR/allocations.csv, DIR/summary.json and DIR/profit.png (byte-identical on a re-run,
apart from the timings in summary.json)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .history import iso
from .replay import BacktestResult

ALLOCATION_COLUMNS = ("interval_start", "site", "hardware", "units")


def write_outputs(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the three files into ``out_dir`` (created if needed); returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"allocations": out / "allocations.csv", "summary": out / "summary.json", "plot": out / "profit.png"}
    write_allocations_csv(result, paths["allocations"])
    paths["summary"].write_text(json.dumps(result.summary(), indent=2) + "\n")
    plot_profit(result, paths["plot"])
    return paths


def write_allocations_csv(result: BacktestResult, path: Path) -> None:
    """One row per interval x site x hardware model of the world, zeros included: every run has the same rows."""
    sites, hardware = result.world.site_codes, result.world.hardware_codes
    units = np.rint(result.units).astype(np.int64)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ALLOCATION_COLUMNS)
        for t, moment in enumerate(result.interval_starts):
            stamp = iso(moment)
            writer.writerows(
                (stamp, site, hw, int(units[s, h, t])) for s, site in enumerate(sites) for h, hw in enumerate(hardware)
            )


def plot_profit(result: BacktestResult, path: Path) -> None:
    """Cumulative profit of the strategy against the perfect-foresight bound (matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit: this runs in commands, workers and CI
    from matplotlib import pyplot as plt

    # An object array of datetimes: what matplotlib makes of a list, in the type its stubs take.
    times = np.array([moment.replace(tzinfo=None) for moment in result.interval_starts], dtype=object)
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        if result.strategy != "perfect":
            axes.plot(times, np.cumsum(result.score.profit_per_interval), label=result.strategy, color="#1f77b4", lw=2)
        bound = np.cumsum(result.bound.score.profit_per_interval)
        axes.plot(times, bound, label="perfect (bound)", color="#333333", lw=1.2, ls="--")  # on top: visible when equal
        ratio = result.capture_ratio
        captured = "n/a" if ratio is None else f"{ratio:.3f}"
        axes.set_title(f"{result.world.name}: {result.strategy}, capture ratio {captured}")
        axes.set_xlabel("interval start (UTC)")
        axes.set_ylabel(f"cumulative profit ({result.world.money_unit})")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left")
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(path, format="png", metadata={"Software": None})  # no version stamp: same run, same bytes
    finally:
        plt.close(figure)
