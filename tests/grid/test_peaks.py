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

from grid.peaks import LoadSeries, PeakPredictor, evaluate, read_load_csv

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
