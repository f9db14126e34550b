"""Dispatch: the applied plan (SiteInventory.units_running) carried out on the registered devices, audited.

A round reads the registry in a handful of queries, decides per site (`fleet.planning`), sends and reads back
on one asyncio loop (`fleet.dispatcher`), then writes the audit, the devices' new state and the inventory in
one transaction. Devices that did not follow are taken out of the plan (faulted or offline): the inventory's
available units drop and `capacity_lost` asks the optimizer, after commit, to plan again without them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from sites.models import SiteInventory
from sites.units import INTERVALS_PER_HOUR
from sla.models import Placement

from .. import credentials
from ..choices import PLANNABLE_STATUSES, Action, DeviceStatus, Outcome
from ..dispatcher import Job, Result, Tuning, run_jobs
from ..drivers import Endpoint, Setpoint
from ..models import Device, DeviceCommand, DispatchRound, SiteFleet
from ..planning import Decision, DeviceState, PlacementDemand, SiteRules, plan_site
from ..signals import capacity_lost
from .registry import save_device_states, sync_inventory

logger = logging.getLogger(__name__)
ACTIONS = {"start": Action.START, "stop": Action.STOP, "serve": Action.SERVE}


def tuning_from_settings() -> Tuning:
    knobs = settings.FLEET
    return Tuning(
        timeout_s=knobs["DEVICE_TIMEOUT_S"],
        retries=knobs["RETRIES"],
        backoff_s=knobs["BACKOFF_S"],
        settle_s=knobs["SETTLE_S"],
        confirmations=knobs["READBACK_CONFIRMATIONS"],
        concurrency=knobs["CONCURRENCY"],
        workers=knobs["WORKERS"],
        min_shard=knobs["MIN_SHARD"],
    )


def endpoint_of(device: Device) -> Endpoint:
    return Endpoint(
        device_id=device.pk,
        driver=device.driver,
        address=device.address,
        port=device.port,
        firmware_model=device.firmware_model,
        secret=credentials.resolve(device.credentials_ref),
    )


def _rules(fleet: SiteFleet, started_kw: float, hourly_starts_left: dict[int, int] | None) -> SiteRules:
    return SiteRules(
        kill_switch=fleet.kill_switch,
        ramp_kw_per_min=float(fleet.ramp_kw_per_min),
        min_on_minutes=fleet.min_on_minutes,
        min_off_minutes=fleet.min_off_minutes,
        max_restarts_per_day=fleet.max_restarts_per_day,
        started_kw_last_minute=started_kw,
        hourly_starts_left=hourly_starts_left,
    )


def _state(device: Device, starts: dict[int, int]) -> DeviceState:
    return DeviceState(
        id=device.pk,
        hardware_id=device.hardware_model_id,
        is_node=not device.is_miner,
        nominal_w=device.nominal_w,
        running=device.is_running,
        plannable=device.status in PLANNABLE_STATUSES,
        changed_at=device.running_changed_at,
        starts_24h=starts.get(device.pk, 0),
        placements=tuple(device.placements or ()),
    )


def _placements_by_site(now: datetime) -> dict[int, list[PlacementDemand]]:
    demands: dict[int, list[PlacementDemand]] = defaultdict(list)
    rows = (
        Placement.objects.current(now)
        .committed()
        .filter(contract__starts_at__lte=now)
        .values_list("pk", "site_id", "contract_id", "capacity_kw", "contract__tier__priority")
    )
    for pk, site_id, contract_id, kw, priority in rows:
        demands[site_id].append(PlacementDemand(key=f"{contract_id}:{pk}", kw=float(kw), priority=priority))
    return demands


def _recent_starts(now: datetime) -> tuple[dict[int, int], dict[int, float]]:
    """Starts sent per device in 24 h (restart cap) and kW started per site in the last minute (ramp)."""
    sent_starts = DeviceCommand.objects.filter(action=Action.START, sent=True)
    per_device = dict(
        sent_starts.filter(created_at__gte=now - timedelta(days=1))
        .order_by()
        .values_list("device_id")
        .annotate(n=Count("id"))
    )
    per_site = {
        site_id: float(kw or 0)
        for site_id, kw in sent_starts.filter(created_at__gte=now - timedelta(minutes=1))
        .order_by()
        .values_list("device__site_id")
        .annotate(kw=Sum("device__hardware_model__power_kw_per_unit"))
    }
    return per_device, per_site


def _hourly_starts_left(now: datetime, available: dict[int, dict[int, int]]) -> dict[int, dict[int, int]] | None:
    """Per site and hardware model, the units that may still start in the rolling hour under the engine's
    RAMP_LIMIT_FRACTION_PER_HOUR, less the starts sent in the last 60 minutes; None when the knob is not set (no
    per-hour limit). The hour's budget is the sum of the engine's per-period allowances (`max(f x units x h, 1)`,
    optimizer/engine/starts.py) over the live plan's 5-minute periods: `floor(max(f x units, periods per hour))`,
    so dispatch never defers a start the plan was allowed (docs/economics.md, "One ramp rule")."""
    fraction = settings.ENERGYARB.get("RAMP_LIMIT_FRACTION_PER_HOUR")
    if fraction is None:
        return None
    sent: dict[tuple[int, int], int] = {
        (site_id, hw_id): n
        for site_id, hw_id, n in DeviceCommand.objects.filter(
            action=Action.START, sent=True, created_at__gte=now - timedelta(hours=1)
        )
        .order_by()
        .values_list("device__site_id", "device__hardware_model_id")
        .annotate(n=Count("id"))
    }
    return {
        site_id: {
            hw: int(max(fraction * units, INTERVALS_PER_HOUR) + 1e-9) - sent.get((site_id, hw), 0)
            for hw, units in by_hw.items()
        }
        for site_id, by_hw in available.items()
    }


def _decide(
    now: datetime, devices: list[Device], fleets: dict[int, SiteFleet]
) -> tuple[dict[int, list[Decision]], dict]:
    wanted: dict[int, dict[int, int]] = defaultdict(dict)
    available: dict[int, dict[int, int]] = defaultdict(dict)
    for site_id, hw_id, units, units_available in SiteInventory.objects.filter(site_id__in=fleets).values_list(
        "site_id", "hardware_model_id", "units_running", "units_available"
    ):
        wanted[site_id][hw_id] = units
        available[site_id][hw_id] = units_available
    hourly = _hourly_starts_left(now, available)
    starts, started_kw = _recent_starts(now)
    placements = _placements_by_site(now)
    by_site: dict[int, list[Device]] = defaultdict(list)
    for device in devices:
        by_site[device.site_id].append(device)
    decisions, shortfalls = {}, {}
    for site_id, site_devices in by_site.items():
        plan = plan_site(
            [_state(d, starts) for d in site_devices],
            wanted[site_id],
            _rules(fleets[site_id], started_kw.get(site_id, 0.0), None if hourly is None else hourly.get(site_id, {})),
            now,
            placements.get(site_id, ()),
        )
        decisions[site_id] = plan.decisions
        shortfalls[site_id] = sum(plan.shortfall_units.values())
    return decisions, shortfalls


def dispatch_round(
    *,
    trigger: str,
    run_id: int | None = None,
    planned_at: datetime | None = None,
    dry_run: bool | None = None,
    tuning: Tuning | None = None,
) -> DispatchRound:
    """One round over every site with registered devices; returns the stored round with its per-site summary."""
    now = timezone.now()
    dry_run = settings.FLEET["DRY_RUN"] if dry_run is None else dry_run
    devices = list(Device.objects.select_related("hardware_model", "site").order_by("pk"))
    site_ids = {d.site_id for d in devices}
    for site_id in site_ids - set(SiteFleet.objects.filter(site_id__in=site_ids).values_list("site_id", flat=True)):
        SiteFleet.objects.get_or_create(site_id=site_id)
    fleets = {f.site_id: f for f in SiteFleet.objects.filter(site_id__in=site_ids)}
    decisions, shortfalls = _decide(now, devices, fleets)
    by_id = {d.pk: d for d in devices}
    jobs, held = [], []
    for site_id, site_decisions in decisions.items():
        for decision in site_decisions:
            device = by_id[decision.device_id]
            if decision.held or dry_run or fleets[site_id].dry_run:
                held.append(decision)
                continue
            setpoint = Setpoint(running=decision.running, power_w=decision.power_w, placements=decision.placements)
            jobs.append(Job(endpoint_of(device), setpoint, device.nominal_w, decision.action))
    results = run_jobs(jobs, tuning or tuning_from_settings()) if jobs else []
    return _record(trigger, run_id, planned_at, now, dry_run, by_id, results, held, shortfalls)


def _command(round_: DispatchRound, device: Device, now: datetime, **fields) -> DeviceCommand:
    return DeviceCommand(round=round_, device=device, created_at=now, **fields)


@transaction.atomic
def _record(trigger, run_id, planned_at, now, dry_run, by_id, results: list[Result], held, shortfalls) -> DispatchRound:
    finished = timezone.now()
    round_ = DispatchRound.objects.create(
        trigger=trigger, run_id=run_id, planned_at=planned_at, started_at=now, finished_at=finished, dry_run=dry_run
    )
    commands, changed = [], []
    summary: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for decision in held:
        device = by_id[decision.device_id]
        outcome = Outcome.DEFERRED if decision.held == "ramp" else (Outcome.HELD if decision.held else Outcome.DRY_RUN)
        commands.append(
            _command(
                round_,
                device,
                now,
                action=ACTIONS[decision.action],
                desired_running=decision.running,
                desired_power_w=decision.power_w,
                outcome=outcome,
                error=decision.held,
            )
        )
        summary[device.site_id][str(outcome)] += 1
    lost_sites = set()
    for result in results:
        device = by_id[result.job.endpoint.device_id]
        reading = result.reading
        commands.append(
            _command(
                round_,
                device,
                now,
                action=ACTIONS[result.job.action],
                desired_running=result.job.setpoint.running,
                desired_power_w=result.job.setpoint.power_w,
                sent=result.sent,
                acknowledged=result.acknowledged,
                observed_running=reading.running if reading else None,
                observed_power_w=reading.power_w if reading else None,
                attempts=result.attempts,
                outcome=result.outcome,
                error=result.error,
            )
        )
        counts = summary[device.site_id]
        counts["sent"] += int(result.sent)
        counts["acknowledged"] += int(bool(result.acknowledged))
        counts["observed"] += int(result.outcome == Outcome.OK)
        counts[str(result.outcome)] += 1
        if _apply_result(device, result, finished):
            lost_sites.add(device.site_id)
        changed.append(device)
    DeviceCommand.objects.bulk_create(commands, batch_size=2000)
    save_device_states(changed)
    round_.summary = _summary(summary, shortfalls, by_id)
    round_.save(update_fields=["summary"])
    if lost_sites:
        sync_inventory(site_ids=lost_sites)
        codes = sorted(_site_codes(by_id, lost_sites))
        transaction.on_commit(
            lambda: capacity_lost.send_robust(
                sender=DispatchRound, site_codes=codes, reason="devices did not follow dispatch"
            )
        )
    return round_


def _site_codes(by_id: dict[int, Device], site_ids: set[int]) -> set[str]:
    return {d.site.code for d in by_id.values() if d.site_id in site_ids}


def _apply_result(device: Device, result: Result, now: datetime) -> bool:
    """Update the device from a command's result; True when it left the plan (faulted or offline)."""
    reading = result.reading
    if reading is not None:
        if reading.running != device.is_running:
            device.running_changed_at = now
        device.is_running = reading.running
        device.power_w = reading.power_w
        device.placements = reading.placements
        device.last_seen_at = now
    if result.outcome == Outcome.OK:
        device.status, device.status_reason = DeviceStatus.ONLINE, ""
        return False
    was_plannable = device.status in PLANNABLE_STATUSES
    if result.outcome == Outcome.FAULTED:
        device.status = DeviceStatus.FAULTED
    else:
        device.status = DeviceStatus.OFFLINE
    device.status_reason = f"{result.job.action}: {result.error}"[:200]
    return was_plannable


def _summary(counts: dict[int, dict[str, int]], shortfalls: dict[int, int], by_id: dict[int, Device]) -> dict:
    codes = {d.site_id: d.site.code for d in by_id.values()}
    keys = ("sent", "acknowledged", "observed", "ok", "faulted", "unreachable", "deferred", "held", "dry_run")
    return {
        codes[site_id]: {**{k: counts.get(site_id, {}).get(k, 0) for k in keys}, "shortfall_units": shortfalls[site_id]}
        for site_id in sorted(shortfalls, key=lambda s: codes[s])
    }
