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
import itertools
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

    def probabilities(self, series: LoadSeries, known: Features | None = None) -> np.ndarray:
        """[n] probability that each hour is its month's coincident peak, from what was known before it (``known``:
        the series' features, when already worked out)."""
        known = known or features(series)
        reference = np.where(
            known.day <= self.early_days, np.maximum(known.running, self.early_ref * known.trailing), known.running
        )
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            margin = known.forecast / np.where(reference > 0, reference, np.nan) - (1.0 - self.margin)
            prob = 1.0 / (1.0 + np.exp(-margin / self.scale))
        hour = known.hour
        eligible = (
            (hour >= self.first_hour) & (hour <= self.last_hour) & (known.forecast >= self.floor * known.trailing)
        )
        return np.where(eligible & np.isfinite(prob), prob, 0.0)


@dataclass(frozen=True, eq=False)
class Features:
    """What the predictor reads of a series, whatever its parameters: each hour's Central day and hour, the month's
    running maximum before it, the trailing 30-day maximum before it and the one-hour-ahead forecast."""

    day: np.ndarray
    hour: np.ndarray
    running: np.ndarray
    trailing: np.ndarray
    forecast: np.ndarray


def features(series: LoadSeries) -> Features:
    """The parameter-free part of the predictor over ``series`` (each hour sees only the hours before it)."""
    load = series.load_mw
    n = load.size
    local = series.local
    month = np.array([t.month for t in local])
    running = np.zeros(n)
    for t in range(1, n):
        running[t] = max(running[t - 1], load[t - 1]) if month[t - 1] == month[t] else 0.0
    trailing = np.zeros(n)
    for t in range(1, n):
        trailing[t] = load[max(0, t - TRAILING_HOURS) : t].max()
    forecast = np.full(n, np.nan)
    forecast[25:] = load[24:-1] + (load[1:-24] - load[:-25])  # t-1 plus yesterday's ramp into t
    day = np.array([t.day for t in local])
    hour = np.array([t.hour for t in local])
    return Features(day=day, hour=hour, running=running, trailing=trailing, forecast=forecast)


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


# Out of sample: the parameters are fitted on one summer and judged on another they never saw.
PARAMETER_GRID: dict[str, tuple[float, ...]] = {
    "margin": (0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02),
    "early_days": (0, 3, 7, 10),
    "early_ref": (0.96, 0.97, 0.98, 0.99, 1.0),
    "floor": (0.85, 0.88, 0.90, 0.92),
    "first_hour": (14, 15, 16),
    "last_hour": (17, 18),
}


def parameter_sets(grid: dict[str, tuple[float, ...]] = PARAMETER_GRID) -> list[PeakPredictor]:
    """Every predictor of the grid (the defaults' scale), in the grid's order."""
    return [
        PeakPredictor(
            margin=margin,
            early_days=int(early_days),
            early_ref=early_ref,
            floor=floor,
            first_hour=int(first_hour),
            last_hour=int(last_hour),
        )
        for margin, early_days, early_ref, floor, first_hour, last_hour in itertools.product(
            grid["margin"], grid["early_days"], grid["early_ref"], grid["floor"], grid["first_hour"], grid["last_hour"]
        )
    ]


def score_flags(flags: np.ndarray, summer: np.ndarray, peaks: np.ndarray) -> tuple[int, int]:
    """(peaks caught, hours curtailed) of boolean flags over one summer."""
    return int(flags[peaks].sum()), int((flags & summer).sum())


@dataclass(frozen=True)
class Fit:
    """The predictor chosen on one summer: every peak caught with the fewest hours curtailed (ties: the widest
    margin, the most cautious; then the grid's order), and how many parameter sets were tried, caught every
    training peak, and tied for best."""

    year: int
    predictor: PeakPredictor
    caught: int
    hours: int
    tried: int
    qualifying: int
    tied: tuple[PeakPredictor, ...]
    catching: tuple[PeakPredictor, ...]  # every set that caught every training peak


def whole_summers(series: LoadSeries) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Whole summers of the series: year -> (mask of its June-September hours, indices of its monthly peaks)."""
    local = series.local
    summer = np.array([when.month in CP_MONTHS for when in local])
    year_of = np.array([when.year for when in local])
    found = {}
    for year in sorted(set(year_of[summer].tolist())):
        peaks = monthly_peaks(series, year)
        if len(peaks) == len(CP_MONTHS):
            found[year] = (summer & (year_of == year), np.array(sorted(peaks.values())))
    return found


def fit_predictor(
    series: LoadSeries, year: int, *, candidates: Sequence[PeakPredictor] | None = None, known: Features | None = None
) -> Fit:
    """Choose the parameters on the summer ``year`` alone (its peaks and hours; the load before it only as the
    predictor reads it, hour by hour)."""
    known = known or features(series)
    candidates = list(candidates or parameter_sets())
    summer, peaks = whole_summers(series)[year]
    scored = []
    for order, predictor in enumerate(candidates):
        caught, hours = score_flags(predictor.probabilities(series, known) >= 0.5, summer, peaks)
        scored.append(((-caught, hours, -predictor.margin, order), predictor, caught, hours))
    scored.sort(key=lambda row: row[0])
    best_key, chosen, caught, hours = scored[0]
    tied = tuple(row[1] for row in scored if row[0][:2] == best_key[:2])
    catching = tuple(row[1] for row in scored if row[2] == len(peaks))
    return Fit(year, chosen, caught, hours, len(candidates), len(catching), tied, catching)


def out_of_sample(series: LoadSeries, *, candidates: Sequence[PeakPredictor] | None = None) -> list[dict]:
    """For every ordered pair of whole summers: the predictor fitted on the first, judged on the second (peaks
    caught, hours curtailed), and how the sets tied for best on the first, and all those that caught every peak of
    the first, fare on the second."""
    known = features(series)
    summers = whole_summers(series)
    rows = []
    for train in summers:
        fit = fit_predictor(series, train, candidates=candidates, known=known)
        for test, (summer, peaks) in summers.items():
            if test == train:
                continue
            caught, hours = score_flags(fit.predictor.probabilities(series, known) >= 0.5, summer, peaks)
            tied = [score_flags(p.probabilities(series, known) >= 0.5, summer, peaks) for p in fit.tied]
            still = sum(
                score_flags(p.probabilities(series, known) >= 0.5, summer, peaks)[0] == len(peaks) for p in fit.catching
            )
            rows.append(
                {
                    "train": train,
                    "test": test,
                    "predictor": fit.predictor.__dict__,
                    "train_caught": fit.caught,
                    "train_hours": fit.hours,
                    "test_caught": caught,
                    "test_hours": hours,
                    "parameter_sets": fit.tried,
                    "sets_catching_every_training_peak": fit.qualifying,
                    "of_which_catch_every_test_peak": int(still),
                    "sets_tied_best": len(fit.tied),
                    "tied_sets_catching_every_test_peak": sum(1 for c, _ in tied if c == len(peaks)),
                    "tied_sets_test_hours": [min(h for _, h in tied), max(h for _, h in tied)],
                }
            )
    return rows


def out_of_sample_lines(rows: list[dict]) -> list[str]:
    """The out-of-sample check as a table (``peak_backtest --out-of-sample`` and bench/grid_peaks.py)."""
    lines = [
        f"Out of sample: parameters fitted on one summer alone ({len(parameter_sets())} sets tried), judged on another",
        f"{'fit on':<8}{'caught':>8}{'hours':>7}{'test on':>9}{'caught':>8}{'hours':>7}  chosen parameters",
    ]
    for row in rows:
        p, low_high = row["predictor"], row["tied_sets_test_hours"]
        train_caught, test_caught = f"{row['train_caught']}/4", f"{row['test_caught']}/4"
        lines.append(
            f"{row['train']:<8}{train_caught:>8}{row['train_hours']:>7}{row['test']:>9}{test_caught:>8}"
            f"{row['test_hours']:>7}  margin {p['margin']}, first {p['early_days']} d at {p['early_ref']} of the "
            f"30-day max, floor {p['floor']}, hours {p['first_hour']}-{p['last_hour']}"
        )
        lines.append(
            f"  tied best on {row['train']}: {row['sets_tied_best']} sets, {row['tied_sets_catching_every_test_peak']}"
            f" of them catch every {row['test']} peak ({low_high[0]}-{low_high[1]} h); of the "
            f"{row['sets_catching_every_training_peak']} sets catching every {row['train']} peak, "
            f"{row['of_which_catch_every_test_peak']} catch every {row['test']} peak"
        )
    return lines
