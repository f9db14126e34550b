"""Grid events move the fleet fast: notice to applied plan, end to end with a real Celery worker.

Sets up PostgreSQL (DATABASE_URL, default .../ea_grid_bench, created and migrated if missing) and Redis (REDIS_URL,
default redis://127.0.0.1:6379/6): the ten seeded sites with fresh prices, a booked fleet (`--contracts` SLA
contracts of every tier bought through admission), the Texas site enrolled in ERS-10. Starts one Celery worker on
the `grid` queue (as deployed: `worker_grid` in deploy/Procfile), then `--events` times: notify an ERS-10 event
through `grid.services.create_grid_event` (what the admin, `POST /api/grid/events/` and the VEN call), wait for the
re-plan the event queues, and read notice -> applied from the database (event `notified_at` -> run `finished_at`,
the moment its allocation was committed). Each event is then cancelled and its re-plan waited for.

    .venv/bin/python bench/grid_events.py [--events 20] [--contracts 200]

Prints p50 / p95 / max of notice -> applied, split into queue wait (notice -> run started) and solve + apply.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ea_grid_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/6"


def setup_world(contracts: int) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    from grid.models import Enrollment, GridEvent, GridProgram
    from grid.seeding import seed_programs
    from grid.services import enroll_site
    from optimizer.choices import RunTrigger
    from optimizer.services import optimize_now
    from sites.models import Site
    from sla.models import Contract, Customer, Tier
    from sla.services import AdmissionRefused, CapacityRequest, create_contract, ensure_user

    call_command("migrate", "--noinput", verbosity=0)
    call_command("seed_sites", stdout=StringIO())
    seed_programs()
    call_command("refresh_data", stdout=StringIO())
    GridEvent.objects.filter(status__in=("notified", "active")).update(status="cancelled")
    now = timezone.now()
    texas = Site.objects.get(code="site_5_texas")
    ers = GridProgram.objects.get(code="ercot-ers10")
    if not Enrollment.objects.filter(site=texas, program=ers, ends_at__gt=now + timedelta(days=1)).exists():
        Enrollment.objects.filter(site=texas, program=ers).delete()
        enroll_site(site=texas, program=ers, committed_mw=Decimal("1"), starts_at=now, ends_at=now + timedelta(days=30))
    customer = Customer.objects.filter(user__username="bench-grid").first()
    if customer is None:
        customer = ensure_user(username="bench-grid", password="bench-grid-pw-1", staff=False, customer_name="Bench")
        customer = Customer.objects.get(user__username="bench-grid")
    tiers = list(Tier.objects.order_by("priority"))
    booked = Contract.objects.filter(customer=customer, status="active", ends_at__gt=now + timedelta(hours=2)).count()
    for i in range(max(0, contracts - booked)):
        request = CapacityRequest(
            tier=tiers[i % len(tiers)], capacity_kw=Decimal("5"), starts_at=now, ends_at=now + timedelta(days=7)
        )
        try:
            create_contract(customer=customer, request=request)
        except AdmissionRefused:
            break
    optimize_now(trigger=RunTrigger.MANUAL)


def start_worker(env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "energyarb", "worker", "-Q", "grid", "--concurrency", "1"]
    command += ["--hostname", f"bench-grid-{os.getpid()}@%h", "--loglevel", "WARNING", "--without-mingle"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env)
    from energyarb.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return worker
    worker.terminate()
    raise SystemExit("the Celery worker did not answer within 60 s")


def wait_for_run(after, timeout: float = 60.0):
    from optimizer.choices import RunTrigger
    from optimizer.models import OptimizationRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = (
            OptimizationRun.objects.filter(trigger=RunTrigger.GRID, queued_at__gte=after, finished_at__isnull=False)
            .order_by("queued_at")
            .first()
        )
        if run is not None:
            return run
        time.sleep(0.05)
    raise SystemExit("no grid re-plan finished within 60 s: is the worker consuming the grid queue?")


def one_event(program, site):
    from django.utils import timezone

    from grid.services import EventRequest, cancel_event, create_grid_event

    start = timezone.now() + timedelta(minutes=10)
    event = create_grid_event(
        request=EventRequest(
            program=program,
            sites=(site,),
            starts_at=start,
            ends_at=start + timedelta(minutes=30),
            reduction_kw=Decimal("300"),
        )
    )
    run = wait_for_run(event.notified_at)
    cancelled_at = timezone.now()
    cancel_event(event=event)
    wait_for_run(cancelled_at)
    return event, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--contracts", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    from api_load import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from tqdm import tqdm

    from grid.models import GridProgram
    from sites.models import Site

    setup_world(args.contracts)
    worker = start_worker({**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        program, site = GridProgram.objects.get(code="ercot-ers10"), Site.objects.get(code="site_5_texas")
        one_event(program, site)  # warm-up: imports and connections of the worker
        totals, waits, solves = [], [], []
        for _ in tqdm(range(args.events), desc="events", unit="event"):
            event, run = one_event(program, site)
            totals.append((run.finished_at - event.notified_at).total_seconds())
            waits.append((run.started_at - event.notified_at).total_seconds())
            solves.append((run.finished_at - run.started_at).total_seconds())
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    from sla.models import Contract

    booked = Contract.objects.filter(status="active").count()
    print(f"grid event -> applied plan, {args.events} ERS-10 events, {booked} active contracts, one grid worker")
    print(f"{'':<26}{'p50':>8}{'p95':>8}{'max':>8}   (seconds)")
    for name, values in (("notice -> applied", totals), ("  queue wait", waits), ("  solve + apply", solves)):
        p95 = statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]
        print(f"{name:<26}{statistics.median(values):>8.2f}{p95:>8.2f}{max(values):>8.2f}")
    print("target: notice -> applied p95 <= 10 s")


if __name__ == "__main__":
    main()
