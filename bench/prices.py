"""Generate and store one year of 5-minute prices for the ten seeded sites on PostgreSQL; report speed and statistics.

    .venv/bin/python bench/prices.py [--database-url URL] [--start 2025-01-01] [--days 365] [--jobs N] [--force]

DATABASE_URL (default postgres://postgres@127.0.0.1:5432/energyarb_bench, shared with the other benchmarks) names
the database; it is created when missing, migrated and seeded (``migrate``, ``seed_sites``), and ALL its energy and
market prices are deleted before the load (a database whose name lacks "bench" needs ``--force``). Prices come from
the simulator (``sites.bulk.simulate_price_history``: the values the periodic refresh would store) and are stored
with ``sites.bulk`` (binary COPY into a temporary table, then one INSERT ... ON CONFLICT DO NOTHING per table),
sites split between ``--jobs`` parallel connections. About 1.05 million energy rows and 105,120 market rows;
target: under 30 s in total.

Prints the time of each phase, rows per second, peak memory (ru_maxrss), and the simulator's statistics per site
as measured on the generated year, checked against what the database holds.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/energyarb_bench"
TARGET_S = 30.0
INTERVALS_PER_HOUR = 12


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--start", default="2025-01-01", help="first day (UTC), YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--force",
        action="store_true",
        help="run on a database whose name does not contain 'bench' (its prices are deleted first)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="parallel loads (one connection and one transaction each, sites split between them; default: CPUs, max 4)",
    )
    return parser.parse_args()


def ensure_database(url: str, *, force: bool) -> None:
    """Create the PostgreSQL database named in ``url`` when it does not exist (migrate cannot)."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(f"bench/prices.py measures PostgreSQL; DATABASE_URL is {config['ENGINE']}.")
    if "bench" not in config["NAME"] and not force:
        raise SystemExit(
            f"bench/prices.py deletes every energy and market price in {config['NAME']!r} before loading; its name"
            " does not contain 'bench'. Pass --force to run there anyway."
        )
    params = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
            print(f"created database {config['NAME']}")


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    import django

    django.setup()


phases: dict[str, float] = {}


@contextmanager
def phase(name: str) -> Iterator[None]:
    began = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - began


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kilobytes


def negative_hour_share(prices: np.ndarray) -> float:
    """Share of whole hours whose mean price is below zero."""
    hours = prices[: prices.size // INTERVALS_PER_HOUR * INTERVALS_PER_HOUR].reshape(-1, INTERVALS_PER_HOUR)
    return float(np.mean(hours.mean(axis=1) < 0))


def main() -> None:
    args = parse_args()
    began = time.perf_counter()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    periods = args.days * 24 * INTERVALS_PER_HOUR

    with phase("setup (create db, migrate, seed_sites)"):
        ensure_database(args.database_url, force=args.force)
        setup_django(args.database_url)
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_sites", stdout=StringIO())

    from django.db import connection
    from django.db.models import Avg, Count, Max, Min

    from sites.bulk import simulate_price_history
    from sites.models import EnergyPrice, MarketPrice, Site

    sites = list(Site.objects.order_by("pk"))
    print(
        f"database {connection.settings_dict['NAME']} on {connection.settings_dict['HOST']}, {len(sites)} sites,"
        f" {args.days} days of 5-minute intervals from {start:%Y-%m-%d} ({periods:,} per series)"
    )

    with phase("delete existing prices"):
        deleted_energy, _ = EnergyPrice.objects.all().delete()
        deleted_market, _ = MarketPrice.objects.all().delete()

    baseline_mb = peak_memory_mb()  # Django, numpy and scipy loaded, nothing generated yet
    with phase("simulate"):
        history = simulate_price_history(sites=sites, start=start, periods=periods)

    # Each job loads a group of sites in its own transaction: PostgreSQL spends the time on per-row index and
    # foreign-key work in one backend per connection, so groups load in parallel. The groups are disjoint and
    # every load is insert-only, so they never wait on each other's rows.
    jobs = max(1, min(args.jobs, len(sites)))
    with phase(f"store (COPY + INSERT, {jobs} job{'s' * (jobs > 1)})"):
        energy_rows, market_rows = store_history(history, start=start, jobs=jobs)

    with phase("verify (aggregate in SQL)"):
        stored = {
            row["site_id"]: row
            for row in EnergyPrice.objects.values("site_id").annotate(
                rows=Count("id"),
                mean=Avg("price_usd_per_mwh"),
                low=Min("price_usd_per_mwh"),
                high=Max("price_usd_per_mwh"),
            )
        }
        market_count = MarketPrice.objects.count()

    total = time.perf_counter() - began
    rows = energy_rows + market_rows
    store_s = next(seconds for name, seconds in phases.items() if name.startswith("store"))
    generate_s = phases["simulate"] + store_s
    print(f"deleted {deleted_energy:,} energy and {deleted_market:,} market prices first")
    print()
    for name, seconds in phases.items():
        print(f"  {name:40} {seconds:7.2f} s")
    verdict = "met" if total < TARGET_S else "MISSED"
    print(f"  {'total (whole script)':40} {total:7.2f} s   target < {TARGET_S:.0f} s: {verdict}")
    print()
    print(f"rows written: {energy_rows:,} energy + {market_rows:,} market = {rows:,}")
    print(
        f"store rate:              {rows / store_s:12,.0f} rows/s  (COPY + INSERT ... ON CONFLICT, indexes maintained)"
    )
    print(f"simulate + store rate:   {rows / generate_s:12,.0f} rows/s")
    print(f"whole-script rate:       {rows / total:12,.0f} rows/s")
    print(f"peak memory (ru_maxrss): {peak_memory_mb():12,.0f} MB  ({baseline_mb:,.0f} MB before simulating)")

    print_price_table(sites, history, stored, periods)
    assert market_count == periods, f"{market_count} market rows stored, expected {periods}"


def store_history(history, *, start: datetime, jobs: int) -> tuple[int, int]:
    """The simulated history stored by ``jobs`` threads (disjoint groups of sites, then the market): rows written."""
    from django.db import connection

    from sites.bulk import bulk_load_energy_prices, bulk_load_market_prices
    from sites.choices import DataSource

    def load_energy(rows: slice) -> int:
        try:
            return bulk_load_energy_prices(
                site_ids=history.site_ids[rows],
                start=start,
                prices_usd_per_mwh=history.energy_usd_per_mwh[rows],
                source=DataSource.SIMULATOR,
            )
        finally:
            connection.close()  # this thread's connection

    def load_market() -> int:
        try:
            return bulk_load_market_prices(
                start=start,
                hashprice_usd_per_ph_day=history.hashprice_usd_per_ph_day,
                inference_price_usd_per_mtok=history.inference_price_usd_per_mtok,
                source=DataSource.SIMULATOR,
            )
        finally:
            connection.close()

    groups = [slice(i, None, jobs) for i in range(jobs)]
    with ThreadPoolExecutor(jobs) as pool:
        energy_futures = [pool.submit(load_energy, group) for group in groups]
        market_future = pool.submit(load_market)
        return sum(future.result() for future in energy_futures), market_future.result()


def print_price_table(sites: list, history, stored: dict, periods: int) -> None:
    """Energy prices per site and for the fleet (each site's rows checked against the database), then the market."""
    energy = history.energy_usd_per_mwh
    print()
    print(f"Energy prices, USD/MWh, seed {history_seed()} (spikes = scarcity events in the year)")
    header = (
        f"  {'site':20} {'region':12} {'mean':>7} {'p50':>7} {'p99':>8} {'max':>7} {'neg 5-min %':>11}"
        f" {'neg hours %':>11} {'spikes':>6} {'db mean':>8}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for site, series in zip(sites, history.energy, strict=True):
        prices = series.usd_per_mwh
        db = stored[site.pk]
        assert db["rows"] == periods, f"{site.code}: {db['rows']} rows stored, expected {periods}"
        print(
            f"  {site.code:20} {site.grid_region:12} {prices.mean():7.2f} {np.median(prices):7.2f}"
            f" {np.percentile(prices, 99):8.2f} {prices.max():7.0f} {100 * np.mean(prices < 0):11.2f}"
            f" {100 * negative_hour_share(prices):11.2f} {series.spike_count:6d} {float(db['mean']):8.2f}"
        )
    fleet_spikes = sum(series.spike_count for series in history.energy)
    print(
        f"  {'fleet':20} {'':12} {energy.mean():7.2f} {np.median(energy):7.2f} {np.percentile(energy, 99):8.2f}"
        f" {energy.max():7.0f} {100 * np.mean(energy < 0):11.2f}"
        f" {100 * np.mean([negative_hour_share(row) for row in energy]):11.2f} {fleet_spikes:6d}"
    )
    hashprice, token_price = history.hashprice_usd_per_ph_day, history.inference_price_usd_per_mtok
    print(
        f"hashprice USD per PH/s per day: mean {hashprice.mean():.2f}, min {hashprice.min():.2f},"
        f" max {hashprice.max():.2f}; inference USD per million tokens: mean {token_price.mean():.3f},"
        f" p1 {np.percentile(token_price, 1):.3f}, p99 {np.percentile(token_price, 99):.3f}"
    )


def history_seed() -> int:
    from django.conf import settings

    return settings.ENERGYARB["SIMULATOR_SEED"]


if __name__ == "__main__":
    main()
