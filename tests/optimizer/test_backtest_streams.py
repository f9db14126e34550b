"""`manage.py backtest` split by revenue stream, with a world's grid programs (reserves, a demand-response event and
a coincident peak) planned by the strategies that can and scored on every allocation. No database."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from optimizer import backtest
from optimizer.streams import MEMO, STREAM_KEYS, STREAMS

START = datetime(2025, 7, 15, 20, tzinfo=UTC)
STEP = timedelta(minutes=5)
N = 24  # two hours


def at(k: int) -> str:
    return (START + k * STEP).isoformat().replace("+00:00", "Z")


# One site, PUE 1: 300 miners of 2 kW (margin 0.05 USD/kWh at 50 USD/MWh and 48 USD/PH/day), 300 GPUs of 1 kW with
# no Spot market (they run only for the 100 kW Standard contract). ECRS at 20 USD/MW-h; a DR event over intervals
# 6-11 asks 300 kW below a 700 kW baseline, paying 200 USD/MWh; intervals 18-20 are 10 % likely to hold a 4CP peak.
WORLD = {
    "schema": "energyarb-world/1",
    "name": "one Texas site with grid programs",
    "format": "energyarb",
    "hardware": [
        {"code": "m", "kind": "miner", "power_kw": 2.0, "hashrate_th_s": 100.0},
        {"code": "g", "kind": "inference", "power_kw": 1.0, "tokens_per_s": 1000.0},
    ],
    "sites": [{"code": "tx", "power_capacity_kw": 1000, "region": "americas", "inventory": {"m": 300, "g": 300}}],
    "commitments": [
        {"id": "std-1", "tier": "standard", "capacity_kw": 100, "price_usd_per_kwh": 0.6, "penalty_usd_per_kwh": 0.6}
    ],
    "grid": {
        "reserves": [{"product": "ecrs", "site": "tx", "max_kw": 1000, "price_usd_per_mw_h": 20.0}],
        "events": [
            {
                "id": "dr-1",
                "site": "tx",
                "start": at(6),
                "end": at(12),
                "baseline_kw": 700,
                "reduction_kw": 300,
                "payment_usd_per_mwh": 200,
                "penalty_usd_per_mwh": 1000,
            }
        ],
        "coincident_peak": {
            "sites": ["tx"],
            "rate_usd_per_kw_year": 60,
            "intervals": [{"start": at(18), "end": at(21), "probability": 0.1}],
        },
    },
}


def history() -> backtest.History:
    return backtest.History(
        interval_starts=tuple(START + k * STEP for k in range(N)),
        energy_price_usd_per_mwh=np.full((1, N), 50.0),
        pue=np.ones((1, N)),
        hashprice_usd_per_ph_day=np.full(N, 48.0),
        inference_price_usd_per_mtok=np.zeros(N),
    )


@pytest.fixture(scope="module")
def results() -> dict[str, backtest.BacktestResult]:
    world = backtest.parse_world(WORLD)
    bound = backtest.perfect_bound(world, history())
    horizon = backtest.Horizon(fine_steps=12, hours=1.0)
    return {
        strategy: backtest.run_backtest(world, history(), strategy, bound=bound, horizon=horizon)
        for strategy in ("lp", "greedy", "perfect")
    }


def test_every_strategy_is_split_by_stream_and_the_streams_add_up_to_its_profit(results):
    for strategy, result in results.items():
        summary = result.summary()
        streams = summary["streams"]
        # The one taxonomy (optimizer/streams.py), the run books' too.
        assert tuple(streams) == STREAM_KEYS
        assert sum(streams.values()) == pytest.approx(summary["profit"], abs=1e-6), strategy
        assert sum(summary["perfect_streams"].values()) == pytest.approx(summary["perfect_profit"], abs=1e-6)
        assert summary["profit"] == pytest.approx(float(result.score.profit_per_interval.sum()), abs=1e-6)
        assert streams["mining"] > 0 and streams["energy_cost"] < 0 and streams["sla_contracts"] > 0
        assert streams["spot_inference"] == 0  # no Spot market in this world


def test_the_plan_that_knows_the_programs_earns_them(results):
    lp = results["lp"].summary()
    # ECRS held on the running miners (20 USD/MW-h) in every interval.
    assert lp["streams"]["as_capacity"] > 0
    # The event: 300 kW below the 700 kW baseline for 30 minutes at 200 USD/MWh = 30 USD, no shortfall.
    assert lp["event_payments"] == pytest.approx(30.0, abs=1e-6)
    assert lp["event_penalty"] == pytest.approx(0.0, abs=1e-6)
    assert lp["streams"]["event_payments"] == pytest.approx(30.0, abs=1e-6)
    assert lp["streams"]["penalties"] == pytest.approx(-lp["sla_penalty"], abs=1e-6)  # no event shortfall
    # The likely peak: 0.1 x 60 / 4 = 1.50 USD per kW drawn in each of 3 intervals, more than any margin: all
    # load is shed (the Standard contract too: its credit for 5 minutes is 0.05 USD/kW), so no charge is paid and
    # the charge of the 700 kW drawn before is avoided: 700 x 1.50 x 3 = 3,150 USD.
    assert lp["streams"]["cp_charge"] == pytest.approx(0.0, abs=1e-6)
    assert lp["cp_charge_avoided"] == pytest.approx(3150.0, rel=1e-6)


def test_greedy_follows_the_programs_by_its_rules_and_lp_still_beats_it(results):
    greedy, lp = results["greedy"].summary(), results["lp"].summary()
    # The event (400 kW cap): greedy keeps the Standard contract's 100 kW and 150 miners (300 kW), so it is not
    # short and is paid its 300 kW below the 700 kW baseline for 30 min at 200 USD/MWh = 30 USD (before this rule:
    # 700 kW, 300 kW short, 150 USD of penalty, nothing paid).
    assert greedy["event_penalty"] == pytest.approx(0.0, abs=1e-6)
    assert greedy["event_payments"] == pytest.approx(30.0, abs=1e-6)
    # The likely peak: 1.50 USD per kW drawn exceeds every miner's margin, so they stop; the Standard contract has
    # no downtime allowance in this world, so greedy keeps it (lp pays its credit instead): 100 x 1.50 x 3 = 450 USD
    # (before: 700 x 1.50 x 3 = 3,150 USD).
    assert greedy["streams"]["cp_charge"] == pytest.approx(-450.0, rel=1e-6)
    assert greedy["streams"]["penalties"] == pytest.approx(-greedy["sla_penalty"], abs=1e-6)
    # Reserve capacity sold only on the miners it runs: less than lp's, never more than the load it holds.
    assert 0 < greedy["streams"]["as_capacity"] <= lp["streams"]["as_capacity"] + 1e-6
    assert greedy["profit"] < lp["profit"] <= lp["perfect_upper_bound"] + 1e-6


def test_the_command_prints_the_streams_and_writes_them_to_summary_json(tmp_path):
    world_path, prices = tmp_path / "world.json", tmp_path / "prices.csv"
    world_path.write_text(json.dumps(WORLD))
    backtest.write_prices_csv(history(), backtest.parse_world(WORLD), prices)
    out = io.StringIO()
    args = ["--world", str(world_path), "--prices", str(prices), "--strategy", "lp", "--out", str(tmp_path / "bt")]
    call_command("backtest", *args, "--fine-steps", "12", "--horizon-hours", "1", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    summary = json.loads((tmp_path / "bt" / "summary.json").read_text())
    # label (52 characters), then the strategy's figure and the bound's
    lines = {line[2:54].strip(): line[54:].split() for line in text.splitlines() if line.startswith("  ")}
    for stream in STREAMS:  # every stream under its one label
        mine, bound = summary["streams"][stream.key], summary["perfect_streams"][stream.key]
        assert lines[stream.label] == [f"{mine:,.2f}", f"{bound:,.2f}"]
    assert lines[MEMO.label] == [f"{summary['cp_charge_avoided']:,.2f}"]
    assert summary["streams"]["event_payments"] == pytest.approx(30.0, abs=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g["reserves"][0].update(site="nowhere"), r"\$\.grid\.reserves\[0\]\.site: must be one of tx"),
        (lambda g: g["reserves"][0].update(product="fast"), r"\$\.grid\.reserves\[0\]\.product: must be one of"),
        (lambda g: g["events"][0].update(end=at(0)), r"\$\.grid\.events\[0\]\.end: must be after its start"),
        (lambda g: g["events"][0].update(start="soon"), r"\$\.grid\.events\[0\]\.start: not an ISO 8601 time"),
        (lambda g: g["events"][0].pop("baseline_kw"), r"\$\.grid\.events\[0\]\.baseline_kw: required"),
        (
            lambda g: g["coincident_peak"]["intervals"][0].update(probability=2),
            r"coincident_peak\.intervals\[0\]\.probability: must be <= 1",
        ),
        (lambda g: g.update(colour="red"), r"\$\.grid\.colour: unknown field"),
    ],
)
def test_grid_errors_name_the_json_path(tmp_path, change, message):
    data = copy.deepcopy(WORLD)
    change(data["grid"])
    path = Path(tmp_path) / "world.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError, match=message):
        call_command("backtest", "--world", str(path), "--out", str(tmp_path), "--start", at(0), "--end", at(2))
