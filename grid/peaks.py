"""ERCOT coincident-peak (4CP) predictor and its backtest; pure Python + numpy, no Django.

ERCOT sets a load's transmission charge for a year from its demand in the four intervals of system peak, one each
in June, July, August and September (4CP). A flexible load that is curtailed in those intervals avoids the charge,
but every curtailed hour costs production, so the predictor must flag the peak intervals and few others.

The predictor works on hourly system load (hour beginning) and uses, for the hour t being decided, only what was
known before t:
- a one-hour-ahead forecast: the load of hour t-1 plus yesterday's change from t-1 to t (the daily ramp);
- the month's running maximum (the highest load of the month before t), the level a new monthly peak must beat;
- early in the month (first `early_days` days), when the running maximum is still low, at least `early_ref` times
  the highest load of the trailing 30 days (so the first hot day of a month is judged against last month's heat);
- the clock: only hours beginning 15:00-18:00 Central (where ERCOT's summer peaks fall).
The peak probability of hour t is a logistic function of the margin between forecast and that reference; the
fleet is curtailed when it reaches 50 %. `evaluate` counts, per summer, the monthly peaks caught and the hours
curtailed, for the predictor and for a naive rule (weekday 15:00-18:00 when the last hour's load is above a
threshold).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ERCOT_TZ = ZoneInfo("America/Chicago")
CP_MONTHS = (6, 7, 8, 9)
TRAILING_HOURS = 30 * 24


@dataclass(frozen=True)
class LoadSeries:
    """Hourly system load: interval starts (aware, UTC) and MW; consecutive hours, no gaps."""

    starts: tuple[datetime, ...]
    load_mw: np.ndarray

    def __post_init__(self) -> None:
        if len(self.starts) != len(self.load_mw) or len(self.starts) < 48:
            raise ValueError("a load series needs matching starts and values, at least two days of them")
        gaps = {(b - a).total_seconds() for a, b in zip(self.starts, self.starts[1:], strict=False)}
        if gaps != {3600.0}:
            raise ValueError("a load series must be hourly without gaps")
        if np.any(~np.isfinite(self.load_mw)):
            raise ValueError("a load series must not have empty or non-finite values")

    @property
    def local(self) -> list[datetime]:
        return [start.astimezone(ERCOT_TZ) for start in self.starts]


def read_load_csv(path: str | Path, column: str = "load_ercot_mw") -> LoadSeries:
    """A load CSV in the shared tidy format (`timestamp_utc,<series>...`, interval starts in UTC)."""
    starts, values = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "timestamp_utc" not in reader.fieldnames or column not in reader.fieldnames:
            raise ValueError(f"{path}: needs columns timestamp_utc and {column}")
        for line, row in enumerate(reader, start=2):
            try:
                starts.append(datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00")))
                values.append(float(row[column]))
            except ValueError as error:
                raise ValueError(f"{path}, line {line}: {error}") from None
    return LoadSeries(tuple(starts), np.array(values))


@dataclass(frozen=True)
class PeakPredictor:
    """Parameters of the predictor (see the module docstring); defaults are the ones reported in docs/grid.md."""

    margin: float = 0.005  # flag when the forecast is within 0.5 % of the reference
    early_days: int = 7
    early_ref: float = 0.98
    floor: float = 0.90  # never flag below 90 % of the trailing 30-day maximum
    first_hour: int = 15
    last_hour: int = 18
    scale: float = 0.004  # logistic width of the probability, in fractions of the reference

    def probabilities(self, series: LoadSeries) -> np.ndarray:
        """[n] probability that each hour is its month's coincident peak, from what was known before it."""
        load = series.load_mw
        n = load.size
        local = series.local
        month = np.array([t.month for t in local])
        day = np.array([t.day for t in local])
        hour = np.array([t.hour for t in local])
        running = np.zeros(n)
        for t in range(1, n):
            running[t] = max(running[t - 1], load[t - 1]) if month[t - 1] == month[t] else 0.0
        trailing = np.zeros(n)
        for t in range(1, n):
            trailing[t] = load[max(0, t - TRAILING_HOURS) : t].max()
        forecast = np.full(n, np.nan)
        forecast[25:] = load[24:-1] + (load[1:-24] - load[:-25])  # t-1 plus yesterday's ramp into t
        reference = np.where(day <= self.early_days, np.maximum(running, self.early_ref * trailing), running)
        with np.errstate(invalid="ignore", divide="ignore"):
            margin = forecast / np.where(reference > 0, reference, np.nan) - (1.0 - self.margin)
            prob = 1.0 / (1.0 + np.exp(-margin / self.scale))
        eligible = (hour >= self.first_hour) & (hour <= self.last_hour) & (forecast >= self.floor * trailing)
        return np.where(eligible & np.isfinite(prob), prob, 0.0)


def naive_flags(series: LoadSeries, *, threshold_mw: float = 70000.0) -> np.ndarray:
    """[n] the naive rule: weekdays, hours beginning 15:00-17:00 Central, when the last hour's load >= threshold."""
    local = series.local
    flags = np.zeros(series.load_mw.size, dtype=bool)
    for t in range(1, flags.size):
        when = local[t]
        flags[t] = when.weekday() < 5 and 15 <= when.hour <= 17 and series.load_mw[t - 1] >= threshold_mw
    return flags


@dataclass
class SummerResult:
    year: int
    peaks: list[dict] = field(default_factory=list)  # month, interval start (UTC and Central), MW, caught by each
    predictor_hours: int = 0
    naive_hours: int = 0

    @property
    def predictor_caught(self) -> int:
        return sum(p["predictor"] for p in self.peaks)

    @property
    def naive_caught(self) -> int:
        return sum(p["naive"] for p in self.peaks)


def monthly_peaks(series: LoadSeries, year: int, months: Sequence[int] = CP_MONTHS) -> dict[int, int]:
    """Month -> index of the hour of highest system load (the month's coincident peak, to the hour)."""
    local = series.local
    found: dict[int, int] = {}
    for t, when in enumerate(local):
        known = found.get(when.month)
        if when.year == year and when.month in months and (known is None or series.load_mw[t] > series.load_mw[known]):
            found[when.month] = t
    return found


def evaluate(
    series: LoadSeries,
    *,
    predictor: PeakPredictor | None = None,
    naive_threshold_mw: float = 70000.0,
    years: Iterable[int] | None = None,
) -> list[SummerResult]:
    """Per summer (June-September): the actual monthly peaks, which each rule caught, and the hours it curtailed."""
    predictor = predictor or PeakPredictor()
    curtailed = predictor.probabilities(series) >= 0.5
    naive = naive_flags(series, threshold_mw=naive_threshold_mw)
    local = series.local
    summer = np.array([when.month in CP_MONTHS for when in local])
    year_of = np.array([when.year for when in local])
    results = []
    for year in sorted(set(years or year_of[summer].tolist())):
        peaks = monthly_peaks(series, year)
        if len(peaks) < len(CP_MONTHS):
            continue  # a summer the series does not cover whole
        result = SummerResult(year=year)
        in_summer = summer & (year_of == year)
        result.predictor_hours = int((curtailed & in_summer).sum())
        result.naive_hours = int((naive & in_summer).sum())
        for month, t in sorted(peaks.items()):
            result.peaks.append(
                {
                    "month": month,
                    "interval_start_utc": series.starts[t].isoformat().replace("+00:00", "Z"),
                    "interval_start_central": local[t].isoformat(),
                    "load_mw": float(series.load_mw[t]),
                    "predictor": bool(curtailed[t]),
                    "naive": bool(naive[t]),
                }
            )
        results.append(result)
    return results
