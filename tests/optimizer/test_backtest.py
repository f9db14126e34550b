"""`manage.py backtest` and optimizer.backtest: the event trace through the hackathon's accounting, worlds, files,
bounds, determinism, and the database path.

World-based runs need no database; the two tests marked ``django_db`` read seeded sites and stored history.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from PIL import Image

from optimizer import backtest, engine
from optimizer.engine import evaluate, mara
from optimizer.forecast import RidgeForecast
from sites.bulk import bulk_load_energy_prices, bulk_load_market_prices, simulate_price_history
from sites.models import Site
from sites.seeding import seed_physical_world
from sites.simulation import hall_pue_grid

WORLDS = Path(settings.BASE_DIR) / "optimizer" / "worlds"
MARA_WORLD = WORLDS / "mara-hackathon-site.json"
TEN_SITES = WORLDS / "ten-sites.json"
TEN_SITES_SLA = WORLDS / "ten-sites-sla.json"
TRACE_NAME = "mara-hackathon-2025-06-21-prices.csv"
TRACE = next(
    (
        path
        for path in (
            Path(settings.BASE_DIR) / "data" / TRACE_NAME,
            Path(settings.BASE_DIR).parent / "shared" / "data" / TRACE_NAME,
        )
        if path.is_file()
    ),
    Path(settings.BASE_DIR).parent / "shared" / "data" / TRACE_NAME,
)
needs_trace = pytest.mark.skipif(not TRACE.is_file(), reason="the shared event trace is not present")
WEEK_START = datetime(2025, 6, 16, tzinfo=UTC)
TIMINGS = ("solve_seconds", "perfect_solve_seconds")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("backtest", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def event_trace(out: Path, strategy: str) -> dict:
    run(
        "--world",
        str(MARA_WORLD),
        "--prices",
        str(TRACE),
        "--format",
        "mara",
        "--strategy",
        strategy,
        "--out",
        str(out),
    )
    return json.loads((out / "summary.json").read_text())


def allocation_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def lp_on_event_trace(tmp_path_factory) -> tuple[Path, dict]:
    if not TRACE.is_file():
        pytest.skip("the shared event trace is not present")
    out = tmp_path_factory.mktemp("lp")
    return out, event_trace(out, "lp")


@pytest.fixture(scope="module")
def ten_site_window() -> tuple[backtest.World, backtest.History, backtest.Bound]:
    """Two hours of the ten sites with switching costs, a Premium N-1 and a Standard contract."""
    world = backtest.load_world(TEN_SITES_SLA)
    history = backtest.simulate_history(world, start=WEEK_START + timedelta(hours=12), periods=24)
    return world, history, backtest.perfect_bound(world, history)


@pytest.fixture(scope="module")
def warm_ten_site_window() -> tuple[backtest.World, backtest.History, backtest.Bound]:
    """The same two hours with the live plan's warm-ups (3 minutes a miner, 10 a GPU node), as the command runs it."""
    world = backtest.with_warmups(backtest.load_world(TEN_SITES_SLA), miner_minutes=3.0, inference_minutes=10.0)
    history = backtest.simulate_history(world, start=WEEK_START + timedelta(hours=12), periods=24)
    return world, history, backtest.perfect_bound(world, history)


# --- the event trace through the hackathon API's accounting --------------------------------------------------------


@needs_trace
def test_lp_earns_the_best_integer_allocation_of_every_event_interval(lp_on_event_trace):
    out, summary = lp_on_event_trace
    rows = mara.read_price_csv(str(TRACE))
    best = [mara.best_allocation(row)[1] for row in rows]  # the exact knapsack optimum of each interval
    assert round(summary["capture_ratio"], 3) == 1.000
    assert summary["perfect_profit"] == pytest.approx(sum(best), rel=1e-12)
    # Each interval's applied allocation, scored again by the API's own arithmetic, earns that interval's best.
    by_interval: dict[str, dict[str, int]] = {}
    for row in allocation_rows(out / "allocations.csv"):
        by_interval.setdefault(row["interval_start"], {})[row["hardware"]] = int(row["units"])
    earned = [mara.score_allocation(units, row).profit for units, row in zip(by_interval.values(), rows, strict=True)]
    np.testing.assert_allclose(earned, best, rtol=1e-12)


@needs_trace
def test_summary_fields_are_present_and_consistent(lp_on_event_trace):
    _, summary = lp_on_event_trace
    for field in ("revenue", "energy_cost", "profit", "perfect_profit", "capture_ratio", "sla_shortfall_kwh"):
        assert isinstance(summary[field], float), field
    assert summary["solve_seconds"] >= 0
    assert summary["profit"] == pytest.approx(summary["revenue"] - summary["energy_cost"], rel=1e-12)
    assert summary["capture_ratio"] == pytest.approx(summary["profit"] / summary["perfect_profit"], rel=1e-12)
    assert summary["sla_shortfall_kwh"] == 0.0
    assert (summary["format"], summary["intervals"], summary["start"]) == ("mara", 110, "2025-06-21T12:00:00Z")


@needs_trace
def test_seed_reproduces_the_originals_loss_and_greedy_is_bounded(tmp_path):
    seed = event_trace(tmp_path / "seed", "seed")
    greedy = event_trace(tmp_path / "greedy", "greedy")
    # The original's fixed allocation (79 GPU, 1 ASIC, 10 immersion) lost money: -12.8 % of the best.
    assert seed["capture_ratio"] == pytest.approx(-0.128, abs=0.001)
    assert seed["profit"] < 0 < seed["perfect_profit"]
    assert greedy["profit"] <= greedy["perfect_profit"] * (1 + 1e-12)


@needs_trace
def test_allocations_csv_has_one_integer_row_per_interval_site_and_hardware(lp_on_event_trace):
    out, _ = lp_on_event_trace
    text = (out / "allocations.csv").read_text()
    assert text.splitlines()[0] == "interval_start,site,hardware,units"
    rows = allocation_rows(out / "allocations.csv")
    assert len(rows) == 110 * 1 * 5
    keys = {(r["interval_start"], r["site"], r["hardware"]) for r in rows}
    assert len(keys) == len(rows)
    assert {r["hardware"] for r in rows} == {"air", "hydro", "immersion", "gpu", "asic"}
    assert all(r["units"].isdigit() for r in rows)  # whole, non-negative unit counts


@needs_trace
def test_profit_png_is_a_valid_png(lp_on_event_trace):
    out, _ = lp_on_event_trace
    png = out / "profit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (900, 450)


@needs_trace
def test_running_again_writes_the_same_files(lp_on_event_trace, tmp_path):
    first, summary = lp_on_event_trace
    again = event_trace(tmp_path, "lp")
    for name in ("allocations.csv", "profit.png"):
        assert (first / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert {k: v for k, v in summary.items() if k not in TIMINGS} == {
        k: v for k, v in again.items() if k not in TIMINGS
    }


@needs_trace
def test_the_api_accounting_equals_the_engines_objective_on_the_trace():
    world = backtest.load_world(MARA_WORLD)
    history = backtest.read_prices(TRACE, world)
    units = backtest.perfect_bound(world, history).units
    problem = backtest.realized_outlook(history).problem(world, np.full(len(history), 1 / 12), None)
    api = backtest.score_units(world, history, units)
    assert evaluate(problem, units).objective_usd == pytest.approx(api.profit, rel=1e-12)


# --- ten sites: switching costs and SLA contracts ------------------------------------------------------------------


def test_no_strategy_beats_the_perfect_foresight_bound(ten_site_window):
    world, history, bound = ten_site_window
    assert world.settings.switching_cost_usd_per_unit > 0 and {c.tier for c in world.commitments} == {
        "premium",
        "standard",
    }
    ceiling = bound.ceiling  # the LP relaxation's optimum: proven, no allocation earns more
    results = {
        name: backtest.run_backtest(world, history, name, bound=bound, horizon=backtest.Horizon(fine_steps=3, hours=1))
        for name in ("greedy", "seed", "lp")
    }
    for name, result in results.items():
        assert result.score.profit <= ceiling, name
        assert result.capture_ratio == pytest.approx(result.score.profit / bound.ceiling)
    assert results["lp"].capture_ratio > 0.99
    assert results["lp"].score.sla_shortfall_kwh == 0.0  # the contracts are served, Premium with N-1
    assert results["lp"].score.n_minus_1_shortfall_kwh == 0.0
    assert results["lp"].score.switching_cost > 0


@pytest.mark.parametrize("window", ["ten_site_window", "warm_ten_site_window"])
def test_the_controllable_margin_is_the_bound_above_doing_nothing_and_shows_the_decisions(request, window):
    world, history, bound = request.getfixturevalue(window)
    baseline = bound.baseline
    # Doing nothing: the first interval's allocation on its own values, held for the whole window.
    first = backtest.realized_outlook(history.window(0, 1)).problem(
        world, np.array([5 / 60]), None, history.interval_starts[:1]
    )
    planned = engine.solve(first).units[:, :, 0]
    held, previous = np.zeros((*planned.shape, len(history))), None
    for t in range(len(history)):  # dispatched like any plan: power at each interval's realized PUE
        held[:, :, t] = previous = backtest.dispatch(world, history, t, previous, planned)
    assert baseline.profit == pytest.approx(backtest.score_units(world, history, held).profit)
    results = {
        name: backtest.run_backtest(world, history, name, bound=bound, horizon=backtest.Horizon(fine_steps=3, hours=1))
        for name in ("greedy", "lp", "perfect")
    }
    margin = bound.ceiling - baseline.profit
    assert margin > 0
    for name, result in results.items():
        summary = result.summary()
        assert summary["controllable_margin"] == pytest.approx(margin), name
        assert summary["baseline_profit"] == pytest.approx(baseline.profit), name
        assert result.margin_capture == pytest.approx((result.score.profit - baseline.profit) / margin), name
        assert result.margin_capture <= 1.0, name
    # Total capture hides the decisions (the SLA book is most of the profit of every strategy); the margin does not.
    assert min(r.capture_ratio for r in results.values()) > 0.9
    assert results["perfect"].margin_capture > results["lp"].margin_capture > results["greedy"].margin_capture
    assert results["lp"].margin_capture > 0  # lp earns more than doing nothing


def gpu_starts(world: backtest.World, units: np.ndarray) -> int:
    gpu = units[:, world.hardware_codes.index("inference_gpu"), :].sum(axis=0)
    return int(np.clip(np.diff(gpu), 0, None).sum())


@pytest.mark.parametrize("hours", [1.0, 6.0])
def test_with_warm_ups_lp_keeps_idle_gpu_nodes_warm_through_a_dip_and_beats_doing_nothing(
    warm_ten_site_window, monkeypatch, hours
):
    """Demand is held flat over the horizon, so a dip showed no restart ahead: with free stops lp stopped the idle
    GPU nodes and the next tick restarted them at a full warm-up each (47 starts, margin capture -2.4 on the live
    6-hour horizon). Charging the warm-up on the stop (ROLLING_PLAN_STOP_WARMUP_SHARE) keeps them warm."""
    world, history, bound = warm_ten_site_window
    horizon = backtest.Horizon(fine_steps=3, hours=hours)
    fixed = backtest.run_backtest(world, history, "lp", bound=bound, horizon=horizon)
    monkeypatch.setattr(engine, "ROLLING_PLAN_STOP_WARMUP_SHARE", 0.0)  # the warm-up on starts only, stops free
    free_stops = backtest.run_backtest(world, history, "lp", bound=bound, horizon=horizon)

    assert free_stops.margin_capture < 0 < fixed.margin_capture
    assert gpu_starts(world, fixed.units) * 5 < gpu_starts(world, free_stops.units)
    assert fixed.score.switching_cost * 5 < free_stops.score.switching_cost


def test_worlds_get_the_live_plans_warm_up_per_start_and_the_score_charges_it():
    """Ten GPU nodes started at Singapore in the second interval: with the live warm-ups (a GPU node loads its
    model for INFERENCE_WARMUP_MINUTES = 10) each start loses 10 minutes of what it earns, 12,000 tokens/s =
    43.2 Mtok/h at that interval's token price; miners keep the warm-up the JSON gave them."""
    data = json.loads(TEN_SITES.read_text())
    data["hardware"][0]["warmup_minutes"] = 1.5  # miner_air: the JSON's own figure wins
    world = backtest.parse_world(data)
    history = backtest.simulate_history(world, start=WEEK_START, periods=2)
    warm = backtest.with_warmups(world, miner_minutes=3.0, inference_minutes=10.0)

    assert {h.code: h.warmup_minutes for h in world.hardware}["inference_gpu"] == 0.0
    assert {h.code: h.warmup_minutes for h in warm.hardware} == {
        "miner_air": 1.5,
        "miner_hydro": 3.0,
        "miner_immersion": 3.0,
        "inference_gpu": 10.0,
    }
    units = np.zeros((len(world.sites), len(world.hardware), 2))
    units[world.site_codes.index("site_4_singapore"), world.hardware_codes.index("inference_gpu"), 1] = 10
    lost = 10 * 10 / 60 * 43.2 * history.inference_price_usd_per_mtok[1]
    cold, hot = backtest.score_units(world, history, units), backtest.score_units(warm, history, units)
    assert hot.switching_cost - cold.switching_cost == pytest.approx(lost, rel=1e-9)
    assert hot.profit == pytest.approx(cold.profit - lost, rel=1e-9)


def test_the_backtest_command_plans_and_scores_with_the_warm_up_knobs(tmp_path, settings):
    args = ["--world", str(TEN_SITES), "--simulate-prices", "--start", "2025-06-16T12:00Z"]
    args += ["--end", "2025-06-16T13:00Z", "--strategy", "greedy"]
    settings.ENERGYARB = {**settings.ENERGYARB, "MINER_WARMUP_MINUTES": 0.0, "INFERENCE_WARMUP_MINUTES": 0.0}
    run(*args, "--out", str(tmp_path / "cold"))
    settings.ENERGYARB = {**settings.ENERGYARB, "MINER_WARMUP_MINUTES": 3.0, "INFERENCE_WARMUP_MINUTES": 10.0}
    run(*args, "--out", str(tmp_path / "warm"))
    cold, warm = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("cold", "warm"))

    assert warm["switching_cost"] > cold["switching_cost"]


def test_no_capture_ratio_exceeds_one_where_lp_beats_the_integer_perfect_plan():
    """Two hours of the ten sites (WEEK_START + 3 h on the catalogue of docs/economics.md): solved to the default
    0.1 % MILP gap, the integer perfect plan earns less than `lp` (by about 1 USD; the probe saw 1.000089
    elsewhere). Capture is measured against the LP relaxation's optimum, which no allocation beats. Every machine
    at its site's PUE, as the window was found (with halls lp and the integer plan tie on it)."""
    world = replace(backtest.load_world(TEN_SITES), hardware_halls=())
    history = backtest.simulate_history(world, start=WEEK_START + timedelta(hours=3), periods=24)
    bound = backtest.perfect_bound(world, history)
    results = {
        name: backtest.run_backtest(world, history, name, bound=bound, horizon=backtest.Horizon(fine_steps=3, hours=1))
        for name in ("lp", "perfect")
    }

    assert results["lp"].score.profit > bound.score.profit  # the integer plan is no bound by itself here
    assert bound.upper_profit >= results["lp"].score.profit
    for name, result in results.items():
        assert result.capture_ratio <= 1.0, name
        assert result.summary()["perfect_upper_bound"] == bound.ceiling


def test_a_forecast_only_ever_sees_the_past_and_plans_the_same_each_run(ten_site_window):
    world, history, bound = ten_site_window
    seen: list[datetime] = []

    def recording(observed: backtest.History, bounds: np.ndarray) -> backtest.Outlook:
        seen.append(observed.interval_starts[-1])
        return backtest.persistence_forecast(observed, bounds)

    horizon = backtest.Horizon(fine_steps=2, hours=0.5)
    first = backtest.run_backtest(world, history, "lp", forecast=recording, bound=bound, horizon=horizon)
    assert seen == list(history.interval_starts)  # called once per interval, with history up to that interval
    again = backtest.run_backtest(world, history, "lp", bound=bound, horizon=horizon)
    np.testing.assert_array_equal(first.units, again.units)  # the same forecast plans the same, run after run


def test_forecast_errors_compare_each_later_period_with_what_then_happened():
    starts = tuple(WEEK_START + timedelta(minutes=5 * i) for i in range(4))
    history = backtest.History(
        interval_starts=starts,
        energy_price_usd_per_mwh=np.array([[10.0, 20.0, 30.0, 40.0]]),
        pue=np.ones((1, 4)),
        hashprice_usd_per_ph_day=np.full(4, 50.0),
        inference_price_usd_per_mtok=np.array([2.0, 2.0, 4.0, 4.0]),
    )
    errors = backtest.ForecastErrors(history)
    bounds = np.array([0, 1, 3])
    for t in range(4):  # persistence: period 1 (intervals t+1, t+2) is scored only while it ends in the window
        errors.add(t, bounds, backtest.persistence_forecast(history.window(0, t + 1), bounds))
    summary = errors.summary()
    energy = summary["energy_price_usd_per_mwh"]
    # t=0: 10 against mean(20, 30) = 25; t=1: 20 against 35. t=2, 3: period 1 runs past the window.
    assert energy["points"] == 2
    assert energy["mape_pct"] == pytest.approx((15 / 25 + 15 / 35) / 2 * 100, rel=1e-4)
    assert energy["pinball_loss_q50"] == pytest.approx(0.5 * 15)
    assert summary["inference_price_usd_per_mtok"]["mae"] == pytest.approx((1 + 2) / 2)
    assert summary["hashprice_usd_per_ph_day"]["mape_pct"] == 0.0
    assert "inference_demand_mtok_per_h" not in summary  # no demand in this history: nothing to score


def test_lp_reports_its_forecast_and_the_learned_one_errs_less_on_a_daily_shape():
    world = backtest.load_world(TEN_SITES)
    full = backtest.simulate_history(world, start=WEEK_START, periods=3 * 288 + 36)
    prior, window = full.window(0, 3 * 288), full.window(3 * 288, len(full))
    bound = backtest.perfect_bound(world, window)
    horizon = backtest.Horizon(fine_steps=2, hours=3)
    held = backtest.run_backtest(world, window, "lp", bound=bound, horizon=horizon)
    learned = backtest.run_backtest(
        world, window, "lp", bound=bound, horizon=horizon, forecast=RidgeForecast(prior=prior)
    )
    assert (held.summary()["forecast"], learned.summary()["forecast"]) == ("persistence", "ridge")
    for result in (held, learned):
        errors = result.summary()["forecast_errors"]
        assert set(errors) == set(backtest.ForecastErrors.SERIES)
        assert all(e["points"] > 0 and e["pinball_loss_q50"] >= 0 for e in errors.values())
    demand_mape = {
        name: result.forecast_errors["inference_demand_mtok_per_h"]["mape_pct"]
        for name, result in (("held", held), ("learned", learned))
    }
    assert demand_mape["learned"] < demand_mape["held"]  # regional demand has a strong daily shape
    assert backtest.run_backtest(world, window, "greedy", bound=bound).summary()["forecast"] is None


def test_dispatch_scales_a_plan_down_to_the_power_of_a_hotter_interval(ten_site_window):
    world, history, _ = ten_site_window
    hot = backtest.History(**{**history.__dict__, "pue": history.pue * 1.5})
    full = world.inventory_units.copy()
    units = backtest.dispatch(world, hot, 0, None, full + 0.4)
    kw = np.array([h.power_kw for h in world.hardware])
    capacity = np.array([s.power_capacity_kw for s in world.sites])
    assert np.all(units == np.floor(units)) and np.all(units <= full)
    assert np.all(np.einsum("sh,h,sh->s", units, kw, hot.hall_pue[:, :, 0]) <= capacity + 1e-9)


def test_backtest_worlds_run_each_machine_at_its_halls_pue_in_the_plan_and_at_dispatch():
    """Texas (1,500 kW, chilled air at 23.7 degC: PUE 1.2223) holds 200 air miners in a mining hall without chillers
    (PUE 1.03) and its GPU nodes in the chilled hall. 200 miners (700 kW x 1.03 = 721 kW) and 79 nodes (632 kW x
    1.2223 = 772.5 kW) draw 1,493.5 kW: they fit. Counted at the site's PUE (1,332 kW x 1.2223 = 1,628 kW) they did
    not, and dispatch cut the plan."""
    world = backtest.load_world(TEN_SITES)
    history = backtest.simulate_history(world, start=WEEK_START + timedelta(hours=12), periods=2)
    texas, air, gpu = 4, world.hardware_codes.index("miner_air"), world.hardware_codes.index("inference_gpu")
    assert world.site_codes[texas] == "site_5_texas"
    problem = backtest.realized_outlook(history).problem(world, np.full(2, 5 / 60), None, history.interval_starts)
    np.testing.assert_allclose(
        problem.hall_pue, hall_pue_grid(world.cooling_types, world.hardware_halls, history.temperature_c)
    )
    assert problem.hall_pue[texas, air, 0] == pytest.approx(1.03)
    assert problem.hall_pue[texas, gpu, 0] == pytest.approx(problem.pue[texas, 0]) == pytest.approx(1.2223, abs=1e-4)

    plan = np.zeros(world.inventory_units.shape)
    plan[texas, air], plan[texas, gpu] = 200, 79
    np.testing.assert_array_equal(backtest.dispatch(world, history, 0, None, plan), plan)
    # The engine's power row agrees: the plan is within Texas's power in both periods, 80 nodes are not.
    assert not engine.allocation_violations(problem, np.repeat(plan[:, :, None], 2, axis=2))
    plan[texas, gpu] = 80
    assert engine.allocation_violations(problem, np.repeat(plan[:, :, None], 2, axis=2))


def test_the_default_horizon_is_the_live_optimizers():
    assert backtest.Horizon().bounds().tolist() == [*range(13), 24, 36, 48, 60, 72]
    assert backtest.Horizon(fine_steps=3, hours=1).bounds().tolist() == [0, 1, 2, 3, 12]
    with pytest.raises(backtest.BacktestInputError, match="replan_every"):
        backtest.Horizon(fine_steps=2, replan_every=3)


# --- worlds and price files ----------------------------------------------------------------------------------------


def test_example_worlds_match_the_catalogue_and_the_hackathon_api():
    catalogue = backtest.catalogue_world()
    assert json.loads(TEN_SITES.read_text()) == catalogue
    sla = json.loads(TEN_SITES_SLA.read_text())
    assert (sla["sites"], sla["hardware"]) == (catalogue["sites"], catalogue["hardware"])
    world = backtest.load_world(TEN_SITES)
    assert len(world.sites) == 10 and world.inventory_units.sum(axis=0).tolist() == [500, 200, 100, 1300]
    hackathon = backtest.load_world(MARA_WORLD)
    assert hackathon.mara_power_w == 1_000_000 and hackathon.mara_inventory == mara.HACKATHON_INVENTORY
    # No per-type limit: as many units of each type as the site's power holds.
    assert dict(zip(hackathon.hardware_codes, hackathon.inventory_units[0], strict=True)) == {
        "air": 285, "hydro": 200, "immersion": 100, "asic": 66, "gpu": 200,
    }  # fmt: skip


def write_world(tmp_path: Path, change) -> Path:
    data = json.loads(TEN_SITES_SLA.read_text())
    change(data)
    path = tmp_path / "world.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema="world/0"), r"\$\.schema: must be 'energyarb-world/1'"),
        (
            lambda d: d["sites"][2].update(power_capacity_kw="abc"),
            r"\$\.sites\[2\]\.power_capacity_kw: must be a finite",
        ),
        (lambda d: d["sites"][0].update(power_kw=1), r"\$\.sites\[0\]\.power_kw: unknown field"),
        (lambda d: d["sites"][1]["inventory"].update(gpu=3), r"\$\.sites\[1\]\.inventory\.gpu: unknown hardware"),
        (lambda d: d["sites"][1]["inventory"].update(miner_air=-1), r"inventory\.miner_air: must be an integer >= 0"),
        (lambda d: d["sites"][3].update(region="mars"), r"\$\.sites\[3\]\.region: must be one of apac, europe"),
        (lambda d: d["sites"][4].update(code="site_1_nordic"), r"\$\.sites\[4\]: duplicate code 'site_1_nordic'"),
        (lambda d: d["hardware"][0].pop("hashrate_th_s"), r"\$\.hardware\[0\]\.hashrate_th_s: required for a miner"),
        (lambda d: d["commitments"][0].update(allowed_sites=["x"]), r"\$\.commitments\[0\]\.allowed_sites: unknown"),
        (lambda d: d["commitments"][0].update(min_sites=1), r"\$\.commitments\[0\]\.min_sites: an N-1 commitment"),
        (lambda d: d.update(settings=[]), r"\$\.settings: must be an object, got array"),
        (lambda d: d.update(format="mara"), r"\$\.hardware: not part of a mara world"),
    ],
)
def test_world_schema_errors_name_the_json_path(tmp_path, change, message):
    path = write_world(tmp_path, change)
    with pytest.raises(CommandError, match=message) as error:
        run(
            "--world",
            str(path),
            "--simulate-prices",
            "--start",
            "2025-06-16",
            "--end",
            "2025-06-16T01:00",
            "--out",
            str(tmp_path),
        )
    assert str(path) in str(error.value)


def test_mara_world_errors_name_the_json_path(tmp_path):
    data = json.loads(MARA_WORLD.read_text())
    data["site"]["power"] = 1.5e6
    data["inventory"]["miners"]["air"].pop("hashrate")
    path = tmp_path / "mara.json"
    path.write_text(json.dumps(data))
    with pytest.raises(backtest.BacktestInputError, match=r"\$\.site\.power: must be an integer >= 1, got 1500000.0"):
        backtest.load_world(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--world", "missing.json", "--prices", "p.csv"], "world file not found: missing.json"),
        (["--world", str(MARA_WORLD), "--prices", "missing.csv"], "price file not found: missing.csv"),
        (["--format", "csv"], "argument --format: invalid choice: 'csv'"),
        (["--world", str(MARA_WORLD), "--format", "energyarb", "--prices", "p.csv"], "is a mara world, but --format"),
        (
            ["--world", str(TEN_SITES), "--start", "2025-06-16"],
            r"stored history \(no --prices\) needs --start and --end",
        ),
        (
            ["--world", str(MARA_WORLD), "--simulate-prices", "--start", "2025-06-16", "--end", "2025-06-17"],
            "energyarb",
        ),
        (["--world", str(MARA_WORLD), "--switching-cost", "1", "--prices", "p.csv"], "charges neither switching"),
        (["--start", "yesterday"], "argument --start: not an ISO 8601 time"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args, "--out", str(tmp_path))


@needs_trace
@pytest.mark.parametrize("verbosity", ["0", "1"])
def test_a_window_without_price_rows_is_refused_clearly_at_every_verbosity(tmp_path, verbosity):
    """The progress line read the window's first interval before the empty-window check: IndexError at -v 1."""
    args = ["--world", str(MARA_WORLD), "--prices", str(TRACE), "--format", "mara", "--out", str(tmp_path)]
    window = ["--start", "2030-01-01", "--end", "2030-01-02", "-v", verbosity]
    with pytest.raises(CommandError, match="no interval in the requested window"):
        run(*args, *window)


def test_price_file_errors_name_the_line_and_column(tmp_path):
    world = backtest.load_world(MARA_WORLD)
    path = tmp_path / "prices.csv"
    path.write_text("timestamp,energy_price,hash_price,token_price\n2025-06-21T12:00:00,3,4,x\n")
    with pytest.raises(backtest.BacktestInputError, match=r"line 2, column token_price: not a number: 'x'"):
        backtest.read_prices(path, world)
    path.write_text(
        "timestamp,energy_price,hash_price,token_price\n2025-06-21T12:00:00,3,4,2\n2025-06-21T12:15:00,3,4,2\n"
    )
    with pytest.raises(backtest.BacktestInputError, match=r"line 3: intervals must be consecutive 5-minute steps"):
        backtest.read_prices(path, world)
    ten = backtest.load_world(TEN_SITES)
    path.write_text("interval_start,hashprice_usd_per_ph_day\n2025-06-21T12:00:00Z,50\n")
    with pytest.raises(
        backtest.BacktestInputError, match=r"missing column\(s\) \['energy_usd_per_mwh\.site_10_germany'"
    ):
        backtest.read_prices(path, ten)


def test_simulated_prices_written_out_read_back_the_same(tmp_path):
    world = backtest.load_world(TEN_SITES)
    history = backtest.simulate_history(world, start=WEEK_START, periods=6)
    backtest.write_prices_csv(history, world, tmp_path / "prices.csv")
    again = backtest.read_prices(tmp_path / "prices.csv", world)
    assert again.interval_starts == history.interval_starts
    for name in ("energy_price_usd_per_mwh", "pue", "hashprice_usd_per_ph_day", "temperature_c"):
        np.testing.assert_array_equal(getattr(again, name), getattr(history, name), err_msg=name)
    assert again.inference_demand_mtok_per_h.keys() == history.inference_demand_mtok_per_h.keys()


def test_the_command_compares_forecasts_after_training_history(tmp_path):
    common = ["--world", str(TEN_SITES), "--simulate-prices", "--start", "2025-06-18T12:00Z"]
    common += ["--end", "2025-06-18T13:00Z", "--strategy", "lp", "--fine-steps", "2", "--horizon-hours", "1"]
    output = run(*common, "--forecast", "ridge", "--train-days", "2", "--out", str(tmp_path / "ridge"))
    summary = json.loads((tmp_path / "ridge" / "summary.json").read_text())
    assert summary["forecast"] == "ridge" and summary["intervals"] == 12
    assert any("learned from 576 intervals before the window" in note for note in summary["notes"])
    energy = summary["forecast_errors"]["energy_price_usd_per_mwh"]
    assert energy["mape_floor"] == 5.0 and energy["mape_pct"] >= 0 and energy["pinball_loss_q50"] >= 0
    assert "MAPE" in output and "pinball loss" in output
    run(*common, "--forecast", "persistence", "--out", str(tmp_path / "held"))
    held = json.loads((tmp_path / "held" / "summary.json").read_text())
    assert held["forecast"] == "persistence" and held["perfect_profit"] == summary["perfect_profit"]
    with pytest.raises(CommandError, match="--train-days"):
        run(*common, "--train-days", "-1", "--out", str(tmp_path / "bad"))


# --- the database path ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_world_the_seeded_sites_and_stored_history_are_backtested(tmp_path):
    seed_physical_world()
    sites = list(Site.objects.order_by("code"))
    start, periods = WEEK_START, 12
    simulated = simulate_price_history(sites=sites, start=start, periods=periods)
    bulk_load_energy_prices(
        site_ids=simulated.site_ids, start=start, prices_usd_per_mwh=simulated.energy_usd_per_mwh, source="simulator"
    )
    bulk_load_market_prices(
        start=start,
        hashprice_usd_per_ph_day=simulated.hashprice_usd_per_ph_day,
        inference_price_usd_per_mtok=simulated.inference_price_usd_per_mtok,
        source="simulator",
    )
    end = start + timedelta(minutes=5 * periods)
    output = run("--start", start.isoformat(), "--end", end.isoformat(), "--strategy", "greedy", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world"] == "database sites" and summary["intervals"] == periods
    assert 0 < summary["capture_ratio"] <= 1 + 1e-3
    assert "capture ratio" in output
    rows = allocation_rows(tmp_path / "allocations.csv")
    assert len(rows) == periods * 10 * 4 and {r["site"] for r in rows} == {s.code for s in sites}
    # The stored history is the simulator's, rounded to cents: the pure simulation of the same world agrees.
    world = backtest.database.world_from_database(at=start)
    stored, notes = backtest.database.history_from_database(world, start=start, end=end)
    ten = backtest.load_world(TEN_SITES)
    pure = backtest.simulate_history(ten, start=start, periods=periods)
    order = [ten.site_codes.index(code) for code in world.site_codes]  # the database lists sites by code
    np.testing.assert_allclose(stored.energy_price_usd_per_mwh, pure.energy_price_usd_per_mwh[order], atol=0.005)
    assert any("lack weather" in note for note in notes)  # no weather stored: PUE at 20 degC, and said so


@pytest.mark.django_db
@needs_trace
def test_mara_format_without_a_world_uses_the_imported_event_trace(tmp_path):
    call_command("import_prices", str(TRACE), "--format", "mara", stdout=io.StringIO(), stderr=io.StringIO())
    run("--format", "mara", "--start", "2025-06-21T12:00Z", "--end", "2025-06-21T13:00Z", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["intervals"] == 12 and round(summary["capture_ratio"], 3) == 1.000
