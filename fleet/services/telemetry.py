"""Telemetry: every device and site meter polled, stored, rolled up per site and 5 minutes, and pruned.

A poll also measures what each contract was delivered: the inference nodes serving its placements report
their placements and tokens per second; a placement's delivered kW is the kW-equivalent of that throughput
(node kW x measured tokens/s / nominal tokens/s), capped at the placement. A placement short of its kW opens a
Downtime at this poll (so within one telemetry period of a node stopping), closed when served again; a node
that stopped serving without being told to is faulted, leaves the plan (the optimizer re-plans), and the next
dispatch round gives its placements to running nodes. Measured deliveries replace the plan's estimate in the
contract's uptime (sla `record_deliveries(source="meter")`), and credits follow from them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Avg, Count, F, Max, Sum
from django.utils import timezone

from sites.models import Site, SiteInventory
from sites.simulation import floor_to_step
from sla.models import Contract, Downtime, Placement
from sla.services.uptime import DeliveryRow, record_deliveries

from .. import credentials
from ..choices import PLANNABLE_STATUSES, DeviceStatus
from ..dispatcher import MeterTarget, poll
from ..drivers import DriverError, Reading
from ..models import Device, MeterReading, SiteFleet, SiteTelemetryRollup, TelemetryReading
from ..signals import capacity_lost
from .dispatch import endpoint_of, tuning_from_settings
from .registry import save_device_states, sync_inventory

BUCKET_MINUTES = 5
MEASURED = "Measured:"
COPY_COLUMNS = (
    "device_id",
    "site_id",
    "observed_at",
    "running",
    "power_w",
    "hashrate_th_per_s",
    "tokens_per_s",
    "temperature_c",
    "placements",
)


def store_readings(rows: list[tuple]) -> int:
    """Insert raw readings (tuples in COPY_COLUMNS order): PostgreSQL COPY, else bulk_create. Returns the count."""
    if connection.vendor == "postgresql":
        sql = f"COPY fleet_telemetryreading ({', '.join(COPY_COLUMNS)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row((*row[:-1], json.dumps(row[-1])))
        return len(rows)
    TelemetryReading.objects.bulk_create(
        [TelemetryReading(**dict(zip(COPY_COLUMNS, row, strict=True))) for row in rows], batch_size=1000
    )
    return len(rows)


def poll_telemetry(*, now: datetime | None = None) -> dict:
    """Poll every enabled device and meter once, store, roll up, measure deliveries. Returns counts."""
    now = now or timezone.now()
    devices = list(Device.objects.exclude(status=DeviceStatus.DISABLED).select_related("hardware_model", "site"))
    fleets = list(SiteFleet.objects.filter(meter_address__isnull=False).select_related("site"))
    meters: list[MeterTarget] = [
        (f.site_id, f.meter_address, f.meter_port, credentials.resolve(f.meter_credentials_ref))
        for f in fleets
        if f.meter_address is not None  # always, by the filter; narrows the nullable field
    ]
    endpoints = [(endpoint_of(d), d.nominal_w) for d in devices]
    readings, meter_reads = poll(endpoints, meters, tuning_from_settings())
    return _store_poll(now, devices, readings, meters, meter_reads)


@transaction.atomic
def _store_poll(now, devices, readings, meters, meter_reads) -> dict:
    rows, lost_sites, changed = [], set(), []
    for device, reading in zip(devices, readings, strict=True):
        if isinstance(reading, DriverError):
            if device.status in PLANNABLE_STATUSES:
                device.status, device.status_reason = DeviceStatus.OFFLINE, str(reading)[:200]
                lost_sites.add(device.site_id)
            changed.append(device)
            continue
        rows.append(
            (
                device.pk,
                device.site_id,
                now,
                reading.running,
                reading.power_w,
                reading.hashrate_th_per_s,
                reading.tokens_per_s,
                reading.temperature_c,
                reading.placements,
            )
        )
        if _observe(device, reading, now):
            lost_sites.add(device.site_id)
        changed.append(device)
    stored = store_readings(rows)
    MeterReading.objects.bulk_create(
        [
            MeterReading(site_id=site_id, observed_at=now, power_kw=Decimal(str(round(kw, 3))))
            for (site_id, *_rest), kw in zip(meters, meter_reads, strict=True)
            if not isinstance(kw, DriverError)
        ]
    )
    save_device_states(changed)
    site_ids = {d.site_id for d in devices}
    rolled = rollup_sites(site_ids=site_ids, bucket_start=floor_to_step(now, BUCKET_MINUTES))
    tokens = {
        d.pk: r.tokens_per_s or 0.0
        for d, r in zip(devices, readings, strict=True)
        if not d.is_miner and not isinstance(r, DriverError)
    }
    measured = measure_deliveries(now=now, nodes=[d for d in devices if not d.is_miner], tokens=tokens)
    if lost_sites:
        from ..tasks import dispatch_fleet

        sync_inventory(site_ids=lost_sites)
        codes = sorted(Site.objects.filter(pk__in=lost_sites).values_list("code", flat=True))
        transaction.on_commit(
            lambda: capacity_lost.send_robust(
                sender=TelemetryReading, site_codes=codes, reason="devices stopped or vanished"
            )
        )
        dispatch_fleet.delay_on_commit(trigger="schedule")  # fail over within the site at once
    return {"readings": stored, "meters": len(meters), "rollups": rolled, "left_plan": len(lost_sites), **measured}


def _observe(device: Device, reading: Reading, now: datetime) -> bool:
    """Update a device from a poll; True when it left the plan (a node stopped serving on its own)."""
    left = False
    if not device.is_miner and device.is_running and not reading.running and device.status in PLANNABLE_STATUSES:
        device.status, device.status_reason = DeviceStatus.FAULTED, "stopped serving without a command"
        left = True
    elif device.status == DeviceStatus.OFFLINE or device.status == DeviceStatus.UNKNOWN:
        device.status, device.status_reason = DeviceStatus.ONLINE, ""
    if reading.running != device.is_running:
        device.running_changed_at = now
    device.is_running = reading.running
    device.power_w = reading.power_w
    device.placements = reading.placements
    device.last_seen_at = now
    return left


def rollup_sites(*, site_ids, bucket_start: datetime) -> int:
    """(Re)compute one 5-minute rollup per site from the raw readings and meter reads in the bucket (upsert)."""
    end = bucket_start + timedelta(minutes=BUCKET_MINUTES)
    readings = {
        row["site_id"]: row
        for row in TelemetryReading.objects.filter(
            site_id__in=site_ids, observed_at__gte=bucket_start, observed_at__lt=end
        )
        .order_by()
        .values("site_id")
        .annotate(
            polls=Count("observed_at", distinct=True),
            power=Sum("power_w"),
            hashrate=Sum("hashrate_th_per_s"),
            tokens=Sum("tokens_per_s"),
            temp=Max("temperature_c"),
        )
    }
    meter = dict(
        MeterReading.objects.filter(site_id__in=site_ids, observed_at__gte=bucket_start, observed_at__lt=end)
        .order_by()
        .values_list("site_id")
        .annotate(kw=Avg("power_kw"))
    )
    planned = dict(
        SiteInventory.objects.filter(site_id__in=site_ids)
        .order_by()
        .values_list("site_id")
        .annotate(kw=Sum(F("units_running") * F("hardware_model__power_kw_per_unit")))
    )
    status = {row["site_id"]: row for row in Device.objects.filter(site_id__in=site_ids).status_counts()}
    rollups = []
    for site_id, row in readings.items():
        polls = max(row["polls"], 1)
        rollups.append(
            SiteTelemetryRollup(
                site_id=site_id,
                bucket_start=bucket_start,
                samples=row["polls"],
                device_power_kw=(row["power"] or 0) / 1000 / polls,
                meter_power_kw=float(meter[site_id]) if meter.get(site_id) is not None else None,
                planned_it_kw=float(planned.get(site_id) or 0),
                hashrate_th_per_s=(row["hashrate"] or 0) / polls,
                tokens_per_s=(row["tokens"] or 0) / polls,
                max_temperature_c=row["temp"],
                devices_online=status.get(site_id, {}).get("online", 0),
                devices_faulted=status.get(site_id, {}).get("faulted", 0),
            )
        )
    SiteTelemetryRollup.objects.bulk_create(
        rollups,
        update_conflicts=True,
        unique_fields=("site", "bucket_start"),
        update_fields=(
            "samples",
            "device_power_kw",
            "meter_power_kw",
            "planned_it_kw",
            "hashrate_th_per_s",
            "tokens_per_s",
            "max_temperature_c",
            "devices_online",
            "devices_faulted",
        ),
    )
    return len(rollups)


def _served_kw(nodes: list[Device], tokens: dict[int, float]) -> dict[str, float]:
    """kW-equivalent each placement key is served now, from the nodes' latest readings."""
    served: dict[str, float] = defaultdict(float)
    for node in nodes:
        if not node.is_running or not node.placements:
            continue
        nominal_tps = float(node.hardware_model.tokens_per_s or 0)
        measured = tokens.get(node.pk)
        if not nominal_tps or measured is None:
            continue
        share = min(measured / nominal_tps, 1.0) * node.nominal_w / 1000 / len(node.placements)
        for key in node.placements:
            served[key] += share
    return served


def measure_deliveries(*, now: datetime, nodes: list[Device], tokens: dict[int, float]) -> dict:
    """Record measured deliveries of contracts placed on sites with registered nodes; open/close downtimes.

    `tokens`: tokens/s each node answered with at this poll (a node that did not answer serves nothing).
    """
    measured_sites = {d.site_id for d in nodes}
    if not measured_sites:
        return {"deliveries": 0, "downtimes_opened": 0, "downtimes_closed": 0}
    served = _served_kw(nodes, tokens)
    placements = list(
        Placement.objects.current(now)
        .committed()
        .filter(contract__starts_at__lte=now, site_id__in=measured_sites)
        .select_related("contract")
    )
    bucket = floor_to_step(now, BUCKET_MINUTES)
    delivered: dict[int, float] = defaultdict(float)
    short: dict[tuple[int, int], float] = defaultdict(float)
    contracts: dict[int, Contract] = {}
    for placement in placements:
        kw = float(placement.capacity_kw)
        got = min(served.get(f"{placement.contract_id}:{placement.pk}", 0.0), kw)
        delivered[placement.contract_id] += got
        contracts[placement.contract_id] = placement.contract
        if kw - got > max(0.005 * kw, 0.001):
            short[(placement.contract_id, placement.site_id)] += kw - got
    rows = [
        DeliveryRow(
            contract_id=contract_id,
            interval_start=bucket,
            interval_minutes=BUCKET_MINUTES,
            committed_kw=contract.capacity_kw,
            delivered_kw=min(Decimal(str(round(delivered[contract_id], 3))), contract.capacity_kw),
        )
        for contract_id, contract in contracts.items()
    ]
    # One poll in a bucket is what the bucket is worth until the next poll overwrites it with a fresher read:
    # a node down at any poll of the bucket counts the whole bucket short (conservative for the customer's side).
    record_deliveries(rows=rows, source="meter")
    opened, closed = _track_downtime(now, short, {(p.contract_id, p.site_id) for p in placements})
    return {"deliveries": len(rows), "downtimes_opened": opened, "downtimes_closed": closed}


def _track_downtime(
    now: datetime, short: dict[tuple[int, int], float], placed: set[tuple[int, int]]
) -> tuple[int, int]:
    open_rows = {
        (d.contract_id, d.site_id): d
        for d in Downtime.objects.filter(
            ended_at__isnull=True, reason__startswith=MEASURED, site_id__in={s for _, s in placed}
        )
    }
    new = [
        Downtime(
            contract_id=contract_id,
            site_id=site_id,
            unserved_kw=Decimal(str(round(kw, 3))),
            started_at=now,
            reason=f"{MEASURED} the nodes serving it delivered {kw:.3f} kW less than placed.",
        )
        for (contract_id, site_id), kw in short.items()
        if (contract_id, site_id) not in open_rows and round(kw, 3) > 0
    ]
    Downtime.objects.bulk_create(new)
    ended = [key for key in open_rows if key not in short]
    Downtime.objects.filter(pk__in=[open_rows[k].pk for k in ended]).update(ended_at=now)
    return len(new), len(ended)


def prune_telemetry(*, now: datetime | None = None) -> dict[str, int]:
    """Delete raw readings past FLEET["TELEMETRY_RETENTION_HOURS"], rollups, meter reads and audit past
    ENERGYARB["RETENTION_DAYS"]."""
    now = now or timezone.now()
    raw_before = now - timedelta(hours=settings.FLEET["TELEMETRY_RETENTION_HOURS"])
    long_before = now - timedelta(days=settings.ENERGYARB["RETENTION_DAYS"])
    from ..models import DeviceCommand, DispatchRound

    return {
        "readings": TelemetryReading.objects.filter(observed_at__lt=raw_before).delete()[0],
        "meter_readings": MeterReading.objects.filter(observed_at__lt=long_before).delete()[0],
        "rollups": SiteTelemetryRollup.objects.filter(bucket_start__lt=long_before).delete()[0],
        "commands": DeviceCommand.objects.filter(created_at__lt=long_before).delete()[0],
        "rounds": DispatchRound.objects.filter(started_at__lt=long_before).delete()[0],
    }
