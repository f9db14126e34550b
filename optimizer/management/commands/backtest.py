"""`manage.py backtest`: replay a strategy over realized prices and compare it with perfect foresight.

    manage.py backtest --world optimizer/worlds/mara-hackathon-site.json \
        --prices ../shared/data/mara-hackathon-2025-06-21-prices.csv --format mara --strategy lp --out var/bt
    manage.py backtest --world optimizer/worlds/ten-sites-sla.json --simulate-prices \
        --start 2025-06-16 --end 2025-06-23 --strategy greedy --out var/bt-week
    manage.py backtest --start 2025-06-16T00:00Z --end 2025-06-17T00:00Z --out var/bt-db   # the database
    manage.py backtest --world optimizer/worlds/ten-sites-sla.json --simulate-prices --train-days 14 \
        --start 2025-06-16 --end 2025-06-18 --strategy lp --forecast ridge --out var/bt-ridge   # learned forecast

Writes DIR/allocations.csv, DIR/summary.json and DIR/profit.png (and DIR/prices.csv with --simulate-prices).
docs/backtest.md describes WORLD.json, the price files and the figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from optimizer import backtest
from optimizer.backtest import database
from optimizer.backtest.history import to_utc
from optimizer.forecast import FORECASTS, RIDGE, RidgeForecast
from optimizer.inputs import forecast_setting
from optimizer.streams import MEMO, STREAMS


class Command(BaseCommand):
    help = "Backtest a strategy (lp, greedy, seed, perfect) over realized prices against the perfect-foresight bound."

    def add_arguments(self, parser):
        source = parser.add_argument_group("world and prices")
        source.add_argument(
            "--world",
            help="WORLD.json (docs/backtest.md). Without it: the database's sites (energyarb) or the hackathon's site "
            "(mara).",
        )
        source.add_argument(
            "--prices",
            help="CSV of realized prices in the format's columns. Without it: stored history over --start/--end.",
        )
        source.add_argument(
            "--simulate-prices",
            action="store_true",
            help="simulate the realized prices over --start/--end (energyarb worlds); also writes DIR/prices.csv",
        )
        source.add_argument(
            "--format", choices=backtest.FORMATS, help="accounting: 'mara' (the hackathon API's) or 'energyarb'"
        )
        source.add_argument("--start", type=_moment, help="first interval (ISO 8601; UTC when no offset is given)")
        source.add_argument("--end", type=_moment, help="end of the window, exclusive (ISO 8601)")
        source.add_argument(
            "--seed", type=int, help="simulator seed for --simulate-prices (default: settings SIMULATOR_SEED)"
        )
        run = parser.add_argument_group("the run")
        run.add_argument("--strategy", choices=backtest.STRATEGIES, default="lp")
        run.add_argument("--out", required=True, help="output directory (created if missing)")
        run.add_argument("--switching-cost", type=float, help="USD per unit started or stopped (overrides the world)")
        run.add_argument("--carbon-price", type=float, help="USD per tonne CO2 (overrides the world)")
        run.add_argument("--horizon-hours", type=float, help="lp horizon length (default: settings HORIZON_HOURS, 6 h)")
        run.add_argument("--fine-steps", type=int, default=12, help="lp 5-minute periods before hourly ones (12)")
        run.add_argument("--coarse-hours", type=float, default=1.0, help="lp length of the later periods (1 h)")
        run.add_argument("--replan-every", type=int, default=1, help="lp solves every k intervals (1)")
        run.add_argument(
            "--forecast",
            choices=FORECASTS,
            help="what lp plans on: the last values held (persistence) or the learned model (ridge); default: "
            "settings FORECAST, the live optimizer's",
        )
        run.add_argument(
            "--train-days",
            type=float,
            default=0.0,
            help="days of history before --start the ridge forecast learns from before the replay (default 0: it "
            "learns from the replayed window only, persistence until it has two days)",
        )

    def handle(self, *args, **options):
        try:
            self._run(options)
        except backtest.BacktestInputError as exc:
            raise CommandError(str(exc)) from None

    def _run(self, options) -> None:
        verbose = options["verbosity"] >= 1
        world = self._world(options)
        train_days = options["train_days"]
        if not 0 <= train_days <= 366:
            raise CommandError(f"--train-days must be between 0 and 366, got {train_days}")
        history, notes = self._history(world, options)
        if len(history) == 0:  # before anything reads its first interval (the progress line, the prior)
            raise CommandError("the price history has no interval in the requested window")
        try:
            forecast_choice = options["forecast"] or forecast_setting()
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        learns = forecast_choice == RIDGE and options["strategy"] == "lp"  # only lp plans beyond the interval
        prior = self._prior(world, options, history, timedelta(days=train_days)) if learns and train_days else None
        forecast = RidgeForecast(prior=prior) if forecast_choice == RIDGE else backtest.persistence_forecast
        horizon_hours = options["horizon_hours"]
        if horizon_hours is None:
            horizon_hours = settings.ENERGYARB["HORIZON_HOURS"]
        horizon = backtest.Horizon(
            fine_steps=options["fine_steps"],
            hours=horizon_hours,
            coarse_hours=options["coarse_hours"],
            replan_every=options["replan_every"],
        )
        strategy = options["strategy"]
        if verbose:
            self.stdout.write(
                f"{world.name}: {len(world.sites)} site(s), {len(history)} intervals from "
                f"{history.interval_starts[0].isoformat()}; solving the perfect-foresight bound..."
            )
        bound = backtest.perfect_bound(world, history)
        with tqdm(
            total=len(history), desc=strategy, unit="interval", file=sys.stderr, disable=None if verbose else True
        ) as bar:
            result = backtest.run_backtest(
                world, history, strategy, forecast=forecast, horizon=horizon, bound=bound, progress=bar.update
            )
        if prior is not None:
            notes = [*notes, f"{forecast_choice}: learned from {len(prior)} intervals before the window"]
        if notes:
            result = _with_notes(result, notes)
        paths = backtest.write_outputs(result, options["out"])
        if options["simulate_prices"]:
            backtest.write_prices_csv(history, world, paths["summary"].parent / "prices.csv")
        if verbose:
            summary = result.summary()
            ratio, margin = summary["capture_ratio"], summary["margin_capture"]
            self.stdout.write(
                f"{strategy}: profit {summary['profit']:,.2f} of {summary['perfect_profit']:,.2f} "
                f"({world.money_unit}); capture ratio {'n/a' if ratio is None else f'{ratio:.4f}'}; "
                f"controllable margin {_number(summary['controllable_margin'])} above doing nothing "
                f"({_number(summary['baseline_profit'])}), captured {'n/a' if margin is None else f'{margin:.3f}'}; "
                f"SLA shortfall {summary['sla_shortfall_kwh']:,.1f} kWh; planned in {summary['solve_seconds']:.1f} s "
                f"(bound {summary['perfect_solve_seconds']:.1f} s)"
            )
            self._print_streams(summary, world.money_unit)
            if summary["forecast"]:
                self.stdout.write(f"forecast {summary['forecast']}, errors per planning period after the first:")
                for name, scores in summary["forecast_errors"].items():
                    mape = "n/a" if scores["mape_pct"] is None else f"{scores['mape_pct']:.2f} %"
                    self.stdout.write(
                        f"  {name}: MAPE {mape}, pinball loss (q 0.5) {scores['pinball_loss_q50']:.4g}, "
                        f"MAE {scores['mae']:.4g} ({scores['points']:,} points)"
                    )
            for note in summary["notes"]:
                self.stdout.write(self.style.WARNING(f"note: {note}"))
            self.stdout.write(self.style.SUCCESS(f"Wrote {', '.join(str(p) for p in paths.values())}"))

    def _print_streams(self, summary: dict, unit: str) -> None:
        """Profit by revenue stream, the strategy's next to the perfect-foresight bound's."""
        self.stdout.write(f"{'by stream (' + unit + ')':<54}{summary['strategy']:>16}{'perfect':>16}")
        for stream in STREAMS:
            mine, bound = summary["streams"][stream.key], summary["perfect_streams"][stream.key]
            self.stdout.write(f"  {stream.label:<52}{mine:>16,.2f}{bound:>16,.2f}")
        self.stdout.write(f"  {'= profit':<52}{summary['profit']:>16,.2f}{summary['perfect_profit']:>16,.2f}")
        self.stdout.write(f"  {MEMO.label:<52}{summary['cp_charge_avoided']:>16,.2f}")

    def _world(self, options) -> backtest.World:
        fmt = options["format"]
        if options["world"]:
            world = backtest.load_world(options["world"])
            if fmt and fmt != world.format:
                raise CommandError(f"{options['world']} is a {world.format} world, but --format {fmt} was given")
        elif fmt == "mara":
            world = backtest.hackathon_world()
        else:
            start = options["start"]
            if start is None:
                raise CommandError("without --world the database's sites are used: give --start (and --end)")
            world = database.world_from_database(at=start)
        knobs = settings.ENERGYARB  # warm-ups per start as the live plan has them (optimizer.inputs)
        world = backtest.with_warmups(
            world, miner_minutes=knobs["MINER_WARMUP_MINUTES"], inference_minutes=knobs["INFERENCE_WARMUP_MINUTES"]
        )
        return backtest.with_settings(
            world,
            switching_cost_usd_per_unit=_non_negative(options["switching_cost"], "--switching-cost"),
            carbon_price_usd_per_t=_non_negative(options["carbon_price"], "--carbon-price"),
        )

    def _history(self, world: backtest.World, options) -> tuple[backtest.History, list[str]]:
        start, end = options["start"], options["end"]
        if start is not None and end is not None and start >= end:
            raise CommandError("--start must be before --end")
        if options["prices"] and options["simulate_prices"]:
            raise CommandError("give --prices or --simulate-prices, not both")
        if options["prices"]:
            return backtest.read_prices(options["prices"], world).between(start, end), []
        if start is None or end is None:
            source = "--simulate-prices" if options["simulate_prices"] else "stored history (no --prices)"
            raise CommandError(f"{source} needs --start and --end")
        if options["simulate_prices"]:
            seed = options["seed"] if options["seed"] is not None else settings.ENERGYARB["SIMULATOR_SEED"]
            periods = len(database.interval_grid(start, end))
            history = backtest.simulate_history(
                world,
                start=start,
                periods=periods,
                seed=seed,
                spike_cap_usd_per_mwh=settings.ENERGYARB["PRICE_SPIKE_CAP_USD_PER_MWH"],
                hashprice_level_usd_per_ph_day=settings.ENERGYARB["HASHPRICE_LEVEL_USD_PER_PH_DAY"],
            )
            return history, []
        if world.format == "mara":
            return database.hackathon_history_from_database(world, start=start, end=end), []
        return database.history_from_database(world, start=start, end=end)

    def _prior(
        self, world: backtest.World, options, history: backtest.History, days: timedelta
    ) -> backtest.History | None:
        """The realized history of the ``days`` before the window, from the same source: what ridge learns from."""
        first = history.interval_starts[0]
        options = {**options, "start": first - days, "end": first}
        try:
            if options["prices"]:
                prior = backtest.read_prices(options["prices"], world).between(first - days, first)
            else:
                prior, _ = self._history(world, options)
        except backtest.BacktestInputError as exc:
            raise CommandError(f"--train-days: the history before the window: {exc}") from None
        return prior if len(prior) else None


def _moment(value: str) -> datetime:
    try:
        return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None


def _non_negative(value: float | None, flag: str) -> float | None:
    if value is not None and not value >= 0:
        raise CommandError(f"{flag} must be >= 0, got {value}")
    return value


def _with_notes(result: backtest.BacktestResult, notes: list[str]) -> backtest.BacktestResult:
    return replace(result, notes=(*notes, *result.notes))


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"
