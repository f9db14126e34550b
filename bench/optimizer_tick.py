"""One live optimization tick end to end on the ten seeded sites: read the database, build, solve, store, apply.

Prints the median and p90 over N ticks (target: median <= 150 ms) and how the time splits between building
inputs and the rest. Uses DATABASE_URL (default: PostgreSQL database energyarb_tick_bench).

    .venv/bin/python bench/optimizer_tick.py [--ticks 15]
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
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from optimizer.choices import RunStatus, RunTrigger
    from optimizer.inputs import build_inputs
    from optimizer.services import optimize_now

    call_command("migrate", verbosity=0)
    call_command("seed_sites", stdout=StringIO())
    call_command("refresh_data", stdout=StringIO())
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
    print(f"  target median <= 150 ms: {'met' if statistics.median(ms) <= 150 else 'MISSED'}")
    print(f"  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
