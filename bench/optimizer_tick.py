"""One live optimization tick end to end on the ten seeded sites: read the database, build, solve, store, apply.

Prints the median and p90 over N ticks (target: median <= 150 ms) and how the time splits between building
inputs and the rest. Uses DATABASE_URL (default: PostgreSQL database energyarb_tick_bench). The live optimizer
plans on the ridge forecast of stored history (settings FORECAST), so the database first gets ``--history-days``
of simulated 5-minute prices (bulk-loaded; intervals already stored are kept). The forecast's fits are kept
between ticks and refitted hourly: the ticks measured reuse them, and the refit tick is measured on its own.

    .venv/bin/python bench/optimizer_tick.py [--ticks 15] [--forecast ridge|persistence] [--history-days 29]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/energyarb_tick_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
os.environ.setdefault("DEBUG", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--forecast", choices=("ridge", "persistence"), help="default: settings FORECAST")
    parser.add_argument("--history-days", type=float, default=29.0, help="stored price history to forecast from")
    args = parser.parse_args()
    if args.forecast:
        os.environ["OPTIMIZER_FORECAST"] = args.forecast

    import django

    django.setup()
    from datetime import timedelta

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from optimizer import inputs
    from optimizer.choices import RunStatus, RunTrigger
    from optimizer.inputs import build_inputs
    from optimizer.services import optimize_now
    from sites.bulk import bulk_load_energy_prices, bulk_load_market_prices, simulate_price_history
    from sites.models import Site
    from sites.simulation import floor_to_step

    call_command("migrate", verbosity=0)
    call_command("seed_sites", stdout=StringIO())
    periods = round(args.history_days * 288)
    if periods:
        end = floor_to_step(timezone.now())
        start = end - timedelta(minutes=5 * (periods - 1))
        history = simulate_price_history(sites=list(Site.objects.order_by("pk")), start=start, periods=periods)
        bulk_load_energy_prices(
            site_ids=history.site_ids, start=start, prices_usd_per_mwh=history.energy_usd_per_mwh, source="simulator"
        )
        bulk_load_market_prices(
            start=start,
            hashprice_usd_per_ph_day=history.hashprice_usd_per_ph_day,
            inference_price_usd_per_mtok=history.inference_price_usd_per_mtok,
            source="simulator",
        )
    call_command("refresh_data", stdout=StringIO())
    inputs.FITS.clear()
    started = time.perf_counter()
    build_inputs(at=timezone.now())
    refit = time.perf_counter() - started  # reads four weeks and fits every series (once an hour per worker)
    optimize_now(trigger=RunTrigger.MANUAL)  # warm imports and caches
    build, total = [], []
    for _ in range(args.ticks):
        started = time.perf_counter()
        build_inputs(at=timezone.now())
        build.append(time.perf_counter() - started)
        started = time.perf_counter()
        run = optimize_now(trigger=RunTrigger.MANUAL)
        total.append(time.perf_counter() - started)
        if run.status != RunStatus.SUCCEEDED:
            raise SystemExit(f"run {run.pk} {run.status}: {run.error}")
    ms = sorted(t * 1000 for t in total)
    print(f"ten-site tick end to end ({args.ticks} ticks, horizon {run.details['horizon_hours']} h, integer units):")
    print(f"  median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, min {ms[0]:.0f} ms")
    print(f"  of which building inputs from the database: median {statistics.median(build) * 1000:.0f} ms")
    forecast = run.inputs.get("forecast", {})
    print(f"  forecast: {settings.ENERGYARB.get('FORECAST')} (used: {forecast.get('used', 'persistence')})")
    print(f"  building inputs on the hourly refit tick (reads {args.history_days:g} days, fits): {refit * 1000:.0f} ms")
    print(f"  target median <= 150 ms: {'met' if statistics.median(ms) <= 150 else 'MISSED'}")
    print(f"  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
