"""Which device should do what: the applied plan's units per site and hardware turned into per-device setpoints.

Pure functions over plain dataclasses (no Django, no I/O), so the rules are tested directly:
- running devices are kept running first (fewest restarts), stopped ones are started in id order;
- a device started less than `min_on_minutes` ago is not stopped, one stopped less than `min_off_minutes` ago is
  not started, nor one already started `max_restarts_per_day` times in 24 h (held);
- starts at a site add at most `ramp_kw_per_min` kW per rolling minute and, with `hourly_starts_left` (the
  engine's RAMP_LIMIT_FRACTION_PER_HOUR), at most that many units of a hardware model per rolling hour; the rest
  wait for a later round (deferred); stops are never ramp-limited (miners must be able to shed load in seconds);
- the kill switch stops every device of the site and starts none;
- running inference nodes are given the site's contract placements, Premium first, a node serving one placement,
  keeping a node on the placement it already serves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class DeviceState:
    id: int
    hardware_id: int
    is_node: bool
    nominal_w: float
    running: bool
    plannable: bool
    changed_at: datetime | None
    starts_24h: int = 0
    placements: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteRules:
    kill_switch: bool = False
    ramp_kw_per_min: float = 2000.0
    min_on_minutes: int = 10
    min_off_minutes: int = 5
    max_restarts_per_day: int = 12
    started_kw_last_minute: float = 0.0
    # hardware id -> units that may still start in the rolling hour (RAMP_LIMIT_FRACTION_PER_HOUR); None: no limit
    hourly_starts_left: Mapping[int, int] | None = None


@dataclass(frozen=True)
class PlacementDemand:
    key: str  # "<contract id>:<placement id>"
    kw: float
    priority: int  # tier priority, 1 first


@dataclass
class Decision:
    device_id: int
    action: str  # start | stop | serve
    running: bool
    placements: tuple[str, ...] = ()
    held: str = ""  # why it was not sent: "ramp" (deferred) or a hysteresis reason
    power_w: float | None = None


@dataclass
class SitePlan:
    decisions: list[Decision] = field(default_factory=list)
    shortfall_units: dict[int, int] = field(default_factory=dict)  # hardware id -> units the plan wanted but lack


def _elapsed_min(now: datetime, since: datetime | None) -> float:
    return float("inf") if since is None else (now - since) / timedelta(minutes=1)


def may_stop(device: DeviceState, rules: SiteRules, now: datetime) -> bool:
    return _elapsed_min(now, device.changed_at) >= rules.min_on_minutes


def may_start(device: DeviceState, rules: SiteRules, now: datetime) -> bool:
    return (
        device.plannable
        and _elapsed_min(now, device.changed_at) >= rules.min_off_minutes
        and device.starts_24h < rules.max_restarts_per_day
    )


def plan_site(
    devices: Sequence[DeviceState],
    wanted_units: dict[int, int],
    rules: SiteRules,
    now: datetime,
    placements: Sequence[PlacementDemand] = (),
) -> SitePlan:
    """The decisions for one site (see the module docstring)."""
    plan = SitePlan()
    if rules.kill_switch:
        plan.decisions = [Decision(d.id, "stop", False, power_w=None) for d in devices if d.running]
        return plan
    ramp_left_kw = max(rules.ramp_kw_per_min - rules.started_kw_last_minute, 0.0)
    by_hw: dict[int, list[DeviceState]] = defaultdict(list)
    for device in devices:
        by_hw[device.hardware_id].append(device)
    running_nodes: list[DeviceState] = []
    for hw_id, group in sorted(by_hw.items()):
        ramp_left_kw = _plan_group(plan, group, wanted_units.get(hw_id, 0), rules, now, ramp_left_kw, running_nodes)
    if running_nodes:
        _assign_placements(plan, running_nodes, placements)
    return plan


def _plan_group(plan, group, wanted, rules, now, ramp_left_kw, running_nodes) -> float:
    """Decisions for the devices of one hardware model; returns the ramp budget (kW) left."""
    # Devices out of the plan (faulted, offline, disabled) are left alone: they are not counted on.
    running = [d for d in group if d.running and d.plannable]
    # Keep the ones that may not stop yet, then the longest running; stop the rest.
    keep_order = sorted(running, key=lambda d: (may_stop(d, rules, now), d.changed_at or now, d.id))
    keep = [d for i, d in enumerate(keep_order) if i < wanted or not may_stop(d, rules, now)]
    kept = {d.id for d in keep}
    plan.decisions.extend(Decision(d.id, "stop", False) for d in keep_order if d.id not in kept)
    plan.decisions.extend(
        Decision(d.id, "stop", False, held="minimum on time")
        for i, d in enumerate(keep_order)
        if i >= wanted and d.id in kept
    )
    on_count = len(keep)
    running_nodes.extend(d for d in keep if d.is_node)
    hourly = rules.hourly_starts_left
    starts_left = None if hourly is None else hourly.get(group[0].hardware_id, 0)
    for device in sorted((d for d in group if not d.running), key=lambda d: d.id):
        if on_count >= wanted:
            break
        if not may_start(device, rules, now):
            if device.plannable:
                off_long_enough = _elapsed_min(now, device.changed_at) >= rules.min_off_minutes
                reason = "restart cap" if off_long_enough else "minimum off time"
                plan.decisions.append(Decision(device.id, "start", True, held=reason))
            continue
        kw = device.nominal_w / 1000
        if kw > ramp_left_kw + 1e-9 or (starts_left is not None and starts_left <= 0):
            plan.decisions.append(Decision(device.id, "start", True, held="ramp", power_w=device.nominal_w))
            on_count += 1  # it will start in a later round: it is not a shortfall
            continue
        ramp_left_kw -= kw
        starts_left = None if starts_left is None else starts_left - 1
        on_count += 1
        decision = Decision(device.id, "start", True, power_w=device.nominal_w)
        plan.decisions.append(decision)
        if device.is_node:
            running_nodes.append(device)
    if on_count < wanted:
        plan.shortfall_units[group[0].hardware_id] = wanted - on_count
    return ramp_left_kw


def _assign_placements(plan: SitePlan, nodes: list[DeviceState], placements: Iterable[PlacementDemand]) -> None:
    """Give each running node at most one placement so that every placement's kW is covered, Premium first."""
    starting = {d.device_id: d for d in plan.decisions if d.action == "start" and not d.held}
    free = sorted(nodes, key=lambda d: d.id)
    assigned: dict[int, tuple[str, ...]] = {}
    for demand in sorted(placements, key=lambda p: (p.priority, p.key)):
        need_kw = demand.kw
        # Nodes already serving this placement keep it.
        for node in [n for n in free if demand.key in n.placements]:
            if need_kw <= 1e-9:
                break
            assigned[node.id] = (demand.key,)
            need_kw -= node.nominal_w / 1000
            free.remove(node)
        for node in list(free):
            if need_kw <= 1e-9:
                break
            assigned[node.id] = (demand.key,)
            need_kw -= node.nominal_w / 1000
            free.remove(node)
    for node in nodes:
        wanted = assigned.get(node.id, ())
        if node.id in starting:
            starting[node.id].placements = wanted
        elif tuple(node.placements) != wanted:
            plan.decisions.append(Decision(node.id, "serve", True, placements=wanted, power_w=node.nominal_w))
