"""Do optimization runs stall customers? API latency while runs apply on a booked fleet, against between runs.

Books ``--contracts`` running contracts (2-20 kW, random tiers, through admission: ``booked_fleet.py``), starts
gunicorn as ``api_load.py`` does, then alternates windows of ``--window`` seconds: customers only ("between
runs"), and customers while a separate process applies optimization runs back to back ("during runs": solve,
guard, migration pricing, then the transaction that writes the plan). Customers are ``--clients`` concurrent
loops of quote + buy (``api_load.LoadRun``). Prints p50 / p99 / max of every request in each kind of window and
the ratio of the p99s (target, issue 13: during <= 1.5 x between).

    .venv/bin/python bench/api_during_runs.py [--contracts 300] [--clients 16] [--window 20] [--windows 3]

DATABASE_URL default postgres://postgres@127.0.0.1:5432/energyarb_runs_bench (created, migrated, seeded);
REDIS_URL default redis://127.0.0.1:6379/9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_load  # noqa: E402  (the same server, clients and percentiles as the API load benchmark)


def runner(seconds: float) -> None:
    """Child process: apply optimization runs back to back for ``seconds`` (the run under way is finished)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    import django

    django.setup()
    from optimizer.choices import RunTrigger
    from optimizer.services import optimize_now

    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        began = time.perf_counter()
        run = optimize_now(trigger=RunTrigger.MANUAL)
        print(f"RUN {run.status} {run.is_applied} {time.perf_counter() - began:.2f}", flush=True)


def prepare(args) -> str:
    """Migrate, seed, refresh prices and book the fleet; the demo customer's token for the clients."""
    token = api_load.prepare(args)  # also sets the server's environment in this process and runs django.setup()
    from booked_fleet import book_running_contracts
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    call_command("refresh_data", stdout=StringIO())
    book = book_running_contracts(contracts=args.contracts, kw_range=(2, 20), start=timezone.now())
    print(f"booked fleet: {book.line()}")
    connections.close_all()
    api_load.vacuum(args.database_url)
    return token


def summary(name: str, latencies: list[float]) -> str:
    p50, p99 = api_load.percentile(latencies, 50), api_load.percentile(latencies, 99)
    return (
        f"  {name:<13} {len(latencies):6d} requests  p50 {p50:6.0f} ms  p99 {p99:6.0f} ms  max {max(latencies):6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--window", type=float, default=20.0, help="seconds per window")
    parser.add_argument("--windows", type=int, default=3, help="pairs of windows (between, during)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--runner", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/energyarb_runs_bench"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", api_load.DEFAULT_REDIS_URL))
    args = parser.parse_args()
    args.threads, args.keep_contracts = 1, False
    if args.runner is not None:
        return runner(args.runner)
    token = prepare(args)
    port = api_load.free_port()
    server = api_load.start_gunicorn(args, port)
    between: list[float] = []
    during: list[float] = []
    runs: list[str] = []
    try:
        api_load.run_load(port=port, token=token, clients=args.clients, seconds=3, seed=0)  # warm-up
        for window in range(args.windows):
            tally, _ = api_load.run_load(
                port=port, token=token, clients=args.clients, seconds=args.window, seed=window + 1
            )
            between += tally.latencies_ms
            child = subprocess.Popen(
                [sys.executable, __file__, "--runner", str(args.window)],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=subprocess.PIPE,
                text=True,
            )
            tally, _ = api_load.run_load(
                port=port, token=token, clients=args.clients, seconds=args.window, seed=window + 100
            )
            during += tally.latencies_ms
            out, _ = child.communicate(timeout=600)
            runs += out.split("\n")
    finally:
        server.terminate()
        server.wait(timeout=30)
    runs = [line.split()[1:] for line in runs if line.startswith("RUN ")]  # HiGHS prints its banner there too
    seconds = [float(run[2]) for run in runs]
    applied = sum(1 for run in runs if run[1] == "True")
    print(f"API under {args.clients} clients (quote + buy), {args.windows} x {args.window:g} s windows of each kind:")
    print(summary("between runs", between))
    print(summary("during runs", during))
    if runs:
        print(f"  runs applied during the windows: {applied} of {len(runs)}, median {statistics.median(seconds):.2f} s")
    ratio = api_load.percentile(during, 99) / api_load.percentile(between, 99)
    print(f"  p99 during / between: {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'MISSED'})")
    print(f"  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
