"""The 4CP peak predictor on ERCOT's real summers, and `peak_backtest`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from grid.peaks import LoadSeries, PeakPredictor, evaluate, fit_predictor, out_of_sample, parameter_sets, read_load_csv

LOAD = Path(settings.BASE_DIR) / "data" / "ercot_native_load_hourly_2023-2024.csv"  # the real file, committed


@pytest.fixture(scope="module")
def series():
    return read_load_csv(LOAD)


def test_predictor_catches_every_peak_of_both_real_summers_within_80_hours(series):
    results = {r.year: r for r in evaluate(series)}
    for year in (2023, 2024):
        assert results[year].predictor_caught == 4
        assert results[year].predictor_hours <= 80
    # The naive weekday rule misses Sunday 2024-06-30 and curtails about three times as long.
    assert results[2024].naive_caught == 3 and results[2024].naive_hours > 2 * results[2024].predictor_hours


def test_predictor_uses_only_the_past(series):
    """Changing every hour from t on leaves the probabilities before t as they were."""
    cut = 15000
    changed = series.load_mw.copy()
    changed[cut:] *= 1.3
    before = PeakPredictor().probabilities(series)
    after = PeakPredictor().probabilities(LoadSeries(series.starts, changed))
    assert np.array_equal(before[:cut], after[:cut])
    assert not np.array_equal(before[cut:], after[cut:])


def test_command_prints_the_table_and_json(tmp_path):
    out = StringIO()
    call_command("peak_backtest", "--load", str(LOAD), stdout=out)
    assert "2024                   4/4      72" in out.getvalue()
    out = StringIO()
    call_command("peak_backtest", "--load", str(LOAD), "--json", stdout=out)
    summers = {s["year"]: s for s in json.loads(out.getvalue())["summers"]}
    assert summers[2023]["peaks"][2]["interval_start_central"].startswith("2023-08-10T17:00")
    assert all(p["predictor"] for p in summers[2024]["peaks"])


def test_command_refuses_a_file_with_gaps_or_no_summer(tmp_path):
    bad = tmp_path / "gap.csv"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines = ["timestamp_utc,load_ercot_mw"]
    lines += [f"{(start + timedelta(hours=h * (1 if h < 30 else 2))).isoformat()},40000" for h in range(60)]
    bad.write_text("\n".join(lines))
    with pytest.raises(CommandError, match="hourly without gaps"):
        call_command("peak_backtest", "--load", str(bad))
    winter = tmp_path / "winter.csv"
    winter.write_text(
        "\n".join(
            ["timestamp_utc,load_ercot_mw"] + [f"{(start + timedelta(hours=h)).isoformat()},4e4" for h in range(60)]
        )
    )
    with pytest.raises(CommandError, match="no whole summer"):
        call_command("peak_backtest", "--load", str(winter))


def test_parameters_fitted_on_one_summer_never_read_the_other_summer(series):
    """Fitting on 2023 gives the same parameters and training figures whatever 2024's summer held; fitting on a
    changed 2023 does not."""
    candidates = parameter_sets()[::40]
    fit = fit_predictor(series, 2023, candidates=candidates)
    local = series.local
    summer_2024 = np.array([t.year == 2024 and t.month in (6, 7, 8, 9) for t in local])
    changed = series.load_mw.copy()
    changed[summer_2024] *= np.random.default_rng(7).uniform(0.8, 1.2, summer_2024.sum())
    again = fit_predictor(LoadSeries(series.starts, changed), 2023, candidates=candidates)
    assert (again.predictor, again.caught, again.hours, again.tied) == (fit.predictor, fit.caught, fit.hours, fit.tied)
    assert fit.caught == 4 and fit.tried == len(candidates) and fit.predictor in fit.catching
    summer_2023 = np.array([t.year == 2023 and t.month in (6, 7, 8, 9) for t in local])
    other = series.load_mw.copy()
    other[summer_2023] *= np.random.default_rng(7).uniform(0.8, 1.2, summer_2023.sum())
    moved = fit_predictor(LoadSeries(series.starts, other), 2023, candidates=candidates)
    assert (moved.predictor, moved.hours) != (fit.predictor, fit.hours)


def test_out_of_sample_check_on_the_real_summers(series):
    rows = {(r["train"], r["test"]): r for r in out_of_sample(series)}
    assert set(rows) == {(2023, 2024), (2024, 2023)}
    forward = rows[(2023, 2024)]  # fitted on 2023 alone, judged on 2024: the figures docs/grid.md reports
    assert (forward["train_caught"], forward["train_hours"]) == (4, 39)
    assert (forward["test_caught"], forward["test_hours"]) == (4, 38)
    assert forward["tied_sets_catching_every_test_peak"] == 3 and forward["sets_tied_best"] == 4
    backward = rows[(2024, 2023)]
    assert (backward["test_caught"], backward["test_hours"]) == (4, 39)


def test_command_prints_the_out_of_sample_check(tmp_path):
    out = StringIO()
    call_command("peak_backtest", "--load", str(LOAD), "--out-of-sample", stdout=out)
    assert "2023         4/4     39     2024     4/4     38" in out.getvalue()
    out = StringIO()
    call_command("peak_backtest", "--load", str(LOAD), "--out-of-sample", "--json", stdout=out)
    checks = json.loads(out.getvalue())["out_of_sample"]
    assert [(c["train"], c["test"]) for c in checks] == [(2023, 2024), (2024, 2023)]
