"""Dispatch and telemetry on a simulated fleet of 10,000 devices across the ten sites; prints the figures.

    .venv/bin/python bench/fleet.py [--database-url URL] [--devices 10000] [--rounds 6] [--batches 20]

DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ea_fleet_bench; a name without "bench" is refused) is
created, migrated and seeded when needed; its fleet tables are emptied first. The simulator (LuxOS and Avalon
miners on TCP 4028, node agents, meters, each device on its own 127.77.x.y address) runs in a child process, as
real machines would be elsewhere; this process is the dispatcher.

1. Dispatch rounds (setpoints + read-back, the whole fleet switching): the plan alternates between every unit
   running and half of them, so each round commands ~5,000-10,000 devices. The ramp limit is lifted for the
   measurement (with the default 2,000 kW/min per site a full start is spread over several rounds by design).
   The dispatcher splits a large round over FLEET_WORKERS worker processes (default: the CPUs, at most 4); its CPU
   is this process's plus its workers'. Prints each round's seconds, p50 / p99 (p99 of a handful of rounds is
   their maximum), commands per second, and CPU milliseconds per command (dispatcher; simulator apart): on a
   shared machine the seconds depend on the load, the CPU per command does not.
2. Telemetry ingestion: 10,000-reading batches (one poll of the fleet) stored by COPY, sustained readings/s;
   then one real poll of the simulated fleet (network + store + rollups + measured uptime).
3. Dispatcher memory: the peak RSS of this process and of each worker process (VmHWM).
Targets (issue #19): a round p50 and p99 <= 60 s; >= 10,000 readings/s into PostgreSQL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ea_fleet_bench"
NETWORK = "127.77.0.0/16"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=20, help="10,000-reading batches for the ingestion figure")
    return parser.parse_args()


def setup_django(url: str) -> None:
    import dj_database_url

    if "bench" not in dj_database_url.parse(url)["NAME"]:
        raise SystemExit("bench/fleet.py empties the fleet tables: use a database whose name contains 'bench'.")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("FLEET_DISPATCH_ON_PLAN", "0")
    import django

    django.setup()


def ensure_database(url: str) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    with psycopg.connect(dbname="postgres", host=config["HOST"] or None, user=config["USER"] or None,
                         autocommit=True) as admin:  # fmt: skip
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))


def serve(url: str, ready, stop) -> None:
    """Child process: serve the registered fleet until told to stop."""
    setup_django(url)
    from fleet.simulation import build_simulator

    sim = build_simulator(network=NETWORK)
    sim.start()
    ready.set()
    stop.wait()
    sim.stop()


def prepare(devices: int) -> None:
    from django.core.management import call_command

    from fleet.models import Device, DispatchRound, MeterReading, SiteFleet, SiteTelemetryRollup, TelemetryReading
    from fleet.simulation import layout, register_simulated_fleet
    from sites.models import SiteInventory

    call_command("migrate", verbosity=0)
    call_command("seed_sites", verbosity=0)
    for model in (TelemetryReading, MeterReading, SiteTelemetryRollup, DispatchRound, Device, SiteFleet):
        model.objects.all().delete()
    SiteInventory.objects.update(units_running=0)
    from sites.seeding import seed_physical_world

    seed_physical_world()  # the seeded inventory back (it followed the deleted devices)
    started = time.perf_counter()
    register_simulated_fleet(layout(devices), network=NETWORK)
    print(f"registered {Device.objects.count():,} devices in {time.perf_counter() - started:.1f} s")
    SiteFleet.objects.update(ramp_kw_per_min=10_000_000, min_on_minutes=0, min_off_minutes=0, max_restarts_per_day=1000)


def set_plan(share: float) -> None:
    from django.db.models import F

    from sites.models import SiteInventory

    SiteInventory.objects.update(units_running=F("units_available") * share)


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process `pid` from /proc (0 once it is gone)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids() -> list[int]:
    from fleet import dispatcher

    return [worker.pid for worker in dispatcher._workers]


def dispatcher_cpu(pids: list[int]) -> float:
    return cpu_seconds() + sum(cpu_seconds(pid) for pid in pids)


def dispatch_rounds(rounds: int, child_pid: int) -> tuple[list[float], list[float]]:
    from django.utils import timezone

    from fleet.models import DeviceCommand
    from fleet.services import dispatch_round

    seconds, cpu_per_command = [], []
    for n in range(rounds):
        set_plan(1.0 if n % 2 == 0 else 0.5)
        own, cpu, sim_cpu = cpu_seconds(), dispatcher_cpu(worker_pids()), cpu_seconds(child_pid)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        round_ = dispatch_round(trigger="manual")
        elapsed = time.perf_counter() - started
        own, cpu, sim_cpu = cpu_seconds() - own, dispatcher_cpu(worker_pids()) - cpu, cpu_seconds(child_pid) - sim_cpu
        commands = DeviceCommand.objects.filter(round=round_)
        sent = commands.filter(sent=True).count()
        ok = commands.filter(outcome="ok").count()
        print(
            f"round {n + 1}: {elapsed:6.1f} s  {sent:6,} commands sent, {ok:6,} read back as desired,"
            f" {sent / elapsed:5.0f} commands/s; CPU: dispatcher {cpu:5.1f} s ({1000 * cpu / max(sent, 1):4.1f} ms"
            f" per command; {own:4.1f} s in this process, the rest in {len(worker_pids())} workers),"
            f" simulator {sim_cpu:5.1f} s"
            f" ({1000 * sim_cpu / max(sent, 1):4.1f} ms); CPU use {(cpu + sim_cpu) / elapsed:.2f} of"
            f" {os.cpu_count()} CPUs, load average {load:.1f} at the start",
            flush=True,
        )
        seconds.append(elapsed)
        cpu_per_command.append(cpu / max(sent, 1))
        # Later rounds must not see the earlier starts as "in the last minute" or "today" (ramp and cap lifted).
        DeviceCommand.objects.update(created_at=timezone.now() - timedelta(days=2))
    return seconds, cpu_per_command


def ingestion(batches: int) -> float:
    from django.db import transaction
    from django.utils import timezone

    from fleet.models import Device, TelemetryReading
    from fleet.services.telemetry import store_readings

    ids = list(Device.objects.values_list("pk", "site_id"))
    now = timezone.now() - timedelta(days=1)
    total, started = 0, time.perf_counter()
    for b in range(batches):
        at = now + timedelta(seconds=60 * b)
        # One poll of a 10,000-device fleet, whatever --devices is (devices repeat when fewer are registered).
        rows = [(*ids[i % len(ids)], at, True, 3500.0 + i % 7, 200.0, None, 60.0, []) for i in range(10_000)]
        with transaction.atomic():
            total += store_readings(rows)
    elapsed = time.perf_counter() - started
    print(
        f"ingestion: {total:,} readings in {elapsed:.1f} s = {total / elapsed:,.0f} readings/s"
        " (COPY, one transaction per poll)"
    )
    TelemetryReading.objects.filter(observed_at__lt=now + timedelta(hours=1)).delete()
    return total / elapsed


def real_poll() -> None:
    from fleet.services import poll_telemetry

    started = time.perf_counter()
    result = poll_telemetry()
    elapsed = time.perf_counter() - started
    print(f"one poll of the simulated fleet: {result['readings']:,} devices + {result['meters']} meters in "
          f"{elapsed:.1f} s ({result['readings'] / elapsed:,.0f} readings/s end to end, network included)")  # fmt: skip


def settings_knob(name: str):
    from django.conf import settings

    return settings.FLEET[name]


def main() -> None:
    args = parse_args()
    ensure_database(args.database_url)
    setup_django(args.database_url)
    prepare(args.devices)
    from django import db

    db.connections.close_all()
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=serve, args=(args.database_url, ready, stop), daemon=True)
    child.start()
    if not ready.wait(timeout=600):
        raise SystemExit("the simulator did not start")
    try:
        seconds, cpu_per_command = dispatch_rounds(args.rounds, child.pid)
        rate = ingestion(args.batches)
        real_poll()
        workers_rss = [peak_rss_mib(pid) for pid in worker_pids()]
    finally:
        stop.set()
        child.join(timeout=60)
        from fleet.dispatcher import shutdown_workers

        shutdown_workers()
    p50 = statistics.median(seconds)
    p99 = max(seconds) if len(seconds) < 100 else statistics.quantiles(seconds, n=100)[98]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ndispatch round ({args.devices:,} devices): p50 {p50:.1f} s, p99 {p99:.1f} s (target <= 60 s: "
          f"p50 ratio {p50 / 60:.2f}, p99 ratio {p99 / 60:.2f})")  # fmt: skip
    print(f"telemetry ingestion: {rate:,.0f} readings/s (target >= 10,000: ratio {rate / 10_000:.1f})")
    reads = settings_knob("READBACK_CONFIRMATIONS")
    print(f"dispatcher CPU per command: median {1000 * statistics.median(cpu_per_command):.1f} ms (send + {reads}"
          " read-backs; a round's seconds follow from it, the commands and the CPUs it is given)")  # fmt: skip
    workers = ", ".join(f"{m:,.0f}" for m in workers_rss) or "-"
    print(f"dispatcher memory: peak RSS {rss:,.0f} MiB, worker processes {workers} MiB")


if __name__ == "__main__":
    main()
