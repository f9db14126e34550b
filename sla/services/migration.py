"""Moving running placements between sites: what a move costs, when it pays, and the writes that record it.

The optimizer decides which placements move (`optimizer.migration_pricing`; `optimizer.services.migrate_after_run`
writes them after every applied run);
this module owns the cost model, the rule, and the locked writes, so the live optimizer and the maintenance
scenario price a move the same way:

- `migration_cost`: warm-up energy at the destination plus the cut-over downtime of the moved kW, priced at the
  contract's price and credit exposure;
- `migration_worth_it`: the saving over the hours left (after the downtime) must exceed that cost;
- `move_placements`: close the old placement at `now` and open one at the destination, re-checking under the
  admission locks that the destination has room (never overbooked), that the contract keeps its distinct sites
  (Premium N-1) and that the placement has stayed put for the minimum dwell time (hysteresis);
- `replace_lost_capacity`: contracts running short (Spot preempted, or a failover that found no room) get the gap
  re-placed as soon as some online site has room again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from core.auth import signed_in

from .. import capacity
from ..capacity import Booking, SiteRoom
from ..choices import ContractStatus, PlacementKind
from ..models import Contract, Downtime, Placement, PreemptionNotice
from .admission import displace_spot, load_bookings, read_fleet
from .placements import contract_bookings, contract_limit_kw

ZERO = Decimal("0")


# The cost model and the rule (pure).


@dataclass(frozen=True)
class MigrationCost:
    """What moving `capacity_kw` of a running placement costs, in USD, and why.

    energy: the destination powers the moved IT kW for the warm-up (model load) before the cut-over, at the PUE of
    the hall its inference hardware runs in (the caller's `destination_pue`):
    `warmup_kwh = kW x warmup_h x PUE`, paid at `max(energy + carbon price, 0)` USD/MWh (a negative price never
    makes a move pay by itself). downtime: during the cut-over the moved kW serves nothing; what the contract's
    other placements cannot cover (`unserved_kw`: all of it for a single placement, none for one site of an N-1
    Premium contract, whose other sites hold the full capacity) loses the contract price and exposes the tier's
    credit (the penalty per unserved kWh the optimizer uses): `downtime_usd = unserved_kw x downtime_h x
    (price + penalty)`.
    """

    capacity_kw: float
    unserved_kw: float
    warmup_minutes: float
    warmup_kwh: float
    energy_usd: float
    downtime_minutes: float
    downtime_usd_per_h: float

    @property
    def downtime_usd(self) -> float:
        return self.downtime_usd_per_h * self.downtime_minutes / 60.0

    @property
    def total_usd(self) -> float:
        return self.energy_usd + self.downtime_usd

    def as_dict(self) -> dict[str, float]:
        return {
            "unserved_kw": round(self.unserved_kw, 3),
            "warmup_kwh": round(self.warmup_kwh, 3),
            "energy_usd": round(self.energy_usd, 2),
            "downtime_minutes": self.downtime_minutes,
            "downtime_usd": round(self.downtime_usd, 2),
            "total_usd": round(self.total_usd, 2),
        }


def migration_cost(
    *,
    capacity_kw: float,
    price_usd_per_kwh: float,
    penalty_usd_per_kwh: float,
    destination_pue: float,
    destination_energy_usd_per_mwh: float,
    unserved_kw: float | None = None,
    warmup_minutes: float | None = None,
    downtime_minutes: float | None = None,
) -> MigrationCost:
    """The cost of moving `capacity_kw` (see `MigrationCost`); `unserved_kw` during the cut-over defaults to all of
    it, warm-up and downtime minutes to the settings."""
    unserved = capacity_kw if unserved_kw is None else min(max(unserved_kw, 0.0), capacity_kw)
    knobs = settings.ENERGYARB
    warmup = knobs["MIGRATION_WARMUP_MINUTES"] if warmup_minutes is None else warmup_minutes
    down = knobs["MIGRATION_DOWNTIME_MINUTES"] if downtime_minutes is None else downtime_minutes
    kwh = capacity_kw * warmup / 60.0 * destination_pue
    return MigrationCost(
        capacity_kw=capacity_kw,
        unserved_kw=unserved,
        warmup_minutes=warmup,
        warmup_kwh=kwh,
        energy_usd=kwh * max(destination_energy_usd_per_mwh, 0.0) / 1000.0,
        downtime_minutes=down,
        downtime_usd_per_h=unserved * (price_usd_per_kwh + penalty_usd_per_kwh),
    )


def migration_saving_usd(*, saving_usd_per_h: float, hours_remaining: float, cost: MigrationCost) -> float:
    """What the move earns: the saving per hour over the hours left after the cut-over."""
    return saving_usd_per_h * max(hours_remaining - cost.downtime_minutes / 60.0, 0.0)


def migration_worth_it(*, saving_usd_per_h: float, hours_remaining: float, cost: MigrationCost) -> bool:
    """The rule: move when `saving_usd_per_h x max(hours_remaining - downtime_h, 0) > cost.total_usd`.

    `saving_usd_per_h` is what the fleet earns per hour more with the placement at the destination (the
    optimizer's re-solve; everything the placement earns when its site is going away); `hours_remaining` is how
    long the saving can be counted (the rest of the placement, at most the planning horizon). A tie stays put.
    """
    return migration_saving_usd(saving_usd_per_h=saving_usd_per_h, hours_remaining=hours_remaining, cost=cost) > (
        cost.total_usd
    )


def dwell_time() -> timedelta:
    """How long a placement runs where it is before it may be moved voluntarily (hysteresis)."""
    return timedelta(minutes=settings.ENERGYARB["MIGRATION_MIN_DWELL_MINUTES"])


# Writes.


@dataclass(frozen=True)
class PlacementMove:
    """A decided move: this running placement goes to `to_site` (a site code) from `now` on."""

    placement_id: int
    to_site: str
    kind: str = PlacementKind.MIGRATION  # migration | return
    reason: str = ""
    downtime_minutes: float = 0.0  # the cut-over: a closed Downtime of the kW left unserved is recorded when > 0


@dataclass
class MoveReport:
    """What `move_placements` did: rows moved, and moves refused on re-check (with why)."""

    moved: list[Placement] = field(default_factory=list)  # the new rows
    refused: list[tuple[int, str]] = field(default_factory=list)  # (placement id, why)
    cutovers: list[Downtime] = field(default_factory=list)  # the closed downtime of each cut-over

    def cutover_kw_minutes(self) -> dict[int, Decimal]:
        """kW-minutes each contract went unserved during its cut-overs (what deliveries must not count)."""
        lost: dict[int, Decimal] = {}
        for downtime in self.cutovers:
            if downtime.ended_at is None:  # never: a cut-over's downtime is written closed
                continue
            minutes = Decimal((downtime.ended_at - downtime.started_at).total_seconds()) / 60
            lost[downtime.contract_id] = lost.get(downtime.contract_id, ZERO) + downtime.unserved_kw * minutes
        return lost

    def __str__(self) -> str:
        return f"{len(self.moved)} placements moved, {len(self.refused)} refused"


@transaction.atomic
def move_placements(*, moves: Iterable[PlacementMove], now: datetime | None = None, actor=None) -> MoveReport:
    """Apply decided moves: close each old placement at `now` and open the same kW at its destination.

    Every move is checked again under the admission locks (online sites, FOR UPDATE in pk order), so a decision
    made from an unlocked read never overbooks: the destination must be online with room for the kW over the
    rest of the placement counting every booking (a voluntary move displaces nobody, not even Spot); the placement
    must still be running, on an online site, of an active contract, and have run there for the dwell time; the
    contract must not already use the destination, so its distinct sites (Premium N-1, `Tier.min_sites`) never
    shrink; and one move per contract per batch, so two cut-overs of one contract never overlap. A move that
    fails a check is refused with the reason; the others go ahead.
    Cost: the lock with the fleet (1), overlapping placements (1), the moved placements (1), then two writes per
    move (plus one per downtime).
    """
    moves = list(moves)
    now = now or timezone.now()
    report = MoveReport()
    if not moves:
        return report
    rooms = {room.code: room for room in read_fleet(lock=True).rooms}
    by_id = {
        p.pk: p
        for p in Placement.objects.filter(pk__in=[m.placement_id for m in moves]).select_related(
            "site", "contract__tier"
        )
    }
    end = max((p.valid_to or p.contract.ends_at for p in by_id.values()), default=now)
    load_bookings(rooms.values(), start=now, end=max(end, now + timedelta(seconds=1)))
    earliest = now - dwell_time()
    user = signed_in(actor)
    downtimes = []
    moved_contracts: set[int] = set()
    for move in moves:
        placement = by_id.get(move.placement_id)
        if placement is None:
            report.refused.append((move.placement_id, "placement is gone"))
            continue
        why = _refusal(placement, move, rooms, now=now, earliest=earliest)
        if not why and placement.contract_id in moved_contracts:
            why = f"contract {placement.contract_id} already moves a placement now (cut-overs never overlap)"
        if why:
            report.refused.append((move.placement_id, why))
            continue
        contract = placement.contract
        end = min(placement.valid_to or contract.ends_at, contract.ends_at)
        destination = rooms[move.to_site]
        unserved = cutover_unserved_kw(contract, rooms.values(), moving=placement, now=now)
        Placement.objects.filter(pk=placement.pk).update(valid_to=now)
        new = Placement.objects.create(
            contract=contract,
            site_id=destination.site_id,
            capacity_kw=placement.capacity_kw,
            valid_from=now,
            valid_to=end,
            kind=move.kind,
            moved_from=placement.site,
            reason=(move.reason or f"{move.kind} from {placement.site.code}")[:200],
        )
        _rebook(rooms.get(placement.site.code), destination, old=placement, new=new, now=now)
        report.moved.append(new)
        moved_contracts.add(contract.pk)
        if move.downtime_minutes > 0 and unserved > 0:
            downtimes.append(
                Downtime(
                    contract=contract,
                    site=placement.site,
                    unserved_kw=unserved,
                    started_at=now,
                    ended_at=now + timedelta(minutes=move.downtime_minutes),
                    reason=f"cut-over of {placement.capacity_kw} kW {placement.site.code} -> {move.to_site}"[:200],
                    created_by=user,
                )
            )
    Downtime.objects.bulk_create(downtimes)
    report.cutovers = downtimes
    return report


def cutover_unserved_kw(contract: Contract, rooms: Iterable[SiteRoom], *, moving: Placement, now: datetime) -> Decimal:
    """kW of `contract` unserved while `moving` is cut over: its capacity minus what its other placements hold now
    (all of the moved kW for a single placement; nothing for one site of an N-1 contract)."""
    others = sum(
        (
            b.capacity_kw
            for room in rooms
            for b in room.bookings
            if b.contract_id == contract.pk
            and b.placement_id != moving.pk
            and b.starts_at <= now
            and (b.ends_at is None or b.ends_at > now)
        ),
        ZERO,
    )
    return min(max(contract.capacity_kw - others, ZERO), moving.capacity_kw)


def _refusal(
    placement: Placement,
    move: PlacementMove,
    rooms: Mapping[str, SiteRoom],
    *,
    now: datetime,
    earliest: datetime,
) -> str:
    """Why `move` may not happen now (empty when it may)."""
    contract = placement.contract
    end = min(placement.valid_to or contract.ends_at, contract.ends_at)
    if contract.status != ContractStatus.ACTIVE or not placement.valid_from <= now < end:
        return "placement is not running"
    if placement.valid_from > earliest:
        return f"placement has not run for the dwell time ({dwell_time()}) at {placement.site.code}"
    if placement.site.code not in rooms:
        return f"{placement.site.code} is not online (failover moves it)"
    destination = rooms.get(move.to_site)
    if destination is None:
        return f"{move.to_site} is not online or carries no inference"
    used = {
        code
        for code, room in rooms.items()
        for b in room.bookings
        if b.contract_id == contract.pk and (b.ends_at is None or b.ends_at > now) and b.starts_at < end
    }
    if move.to_site in used:
        return f"contract {contract.pk} already runs on {move.to_site}"
    if len(used) < contract.tier.min_sites:  # moving never merges sites, but never repair a broken spread either
        return f"contract {contract.pk} runs on {len(used)} sites, fewer than its tier's {contract.tier.min_sites}"
    free = capacity.room_kw(destination, now, end, preemptible=True)
    if free < placement.capacity_kw:
        return f"{move.to_site} has {free} kW free, {placement.capacity_kw} kW needed"
    return ""


def _rebook(source: SiteRoom | None, destination: SiteRoom, *, old: Placement, new: Placement, now: datetime) -> None:
    """Keep the in-memory bookings true after a move, so the next move of the batch is checked against it."""
    if source is not None:
        for booking in list(source.bookings):
            if booking.placement_id == old.pk:
                source.bookings.remove(booking)
                source.bookings.append(replace(booking, ends_at=now))
    destination.bookings.append(
        Booking(
            site_id=new.site_id,
            capacity_kw=new.capacity_kw,
            starts_at=new.valid_from,
            ends_at=new.valid_to,
            preemptible=old.contract.tier.is_preemptible,
            placement_id=new.pk,
            contract_id=new.contract_id,
        )
    )


@dataclass
class ReplacementReport:
    """What `replace_lost_capacity` did: kW re-placed per contract and site, and what is still short."""

    placed: list[tuple[int, str, Decimal]] = field(default_factory=list)  # (contract, site, kW)
    short: list[tuple[int, Decimal]] = field(default_factory=list)  # (contract, kW still unplaced)

    @property
    def placed_kw(self) -> Decimal:
        return sum((kw for _, _, kw in self.placed), ZERO)

    def __str__(self) -> str:
        return (
            f"{len(self.placed)} placements re-placed ({self.placed_kw:,.1f} kW), {len(self.short)} contracts "
            "still short"
        )


def short_contracts(now: datetime) -> list[Contract]:
    """Active contracts running now whose current placements hold less than their capacity (one query; only the
    short ones are read). Annotated with `placed_kw_now`; ordered by tier priority, then the earliest first."""
    return list(
        Contract.objects.filter(status=ContractStatus.ACTIVE, starts_at__lte=now, ends_at__gt=now)
        .with_placed_kw(now)
        .filter(placed_kw_now__lt=F("capacity_kw"))
        .select_related("tier")
        .order_by("tier__priority", "starts_at", "pk")
    )


@transaction.atomic
def replace_lost_capacity(
    *,
    now: datetime | None = None,
    site_cost: Mapping[str, float] | None = None,
    actor=None,
    reason: str = "",
) -> ReplacementReport:
    """Re-place the missing kW of every contract running short, on online sites with room, highest tier first.

    Who is short: Spot preempted by a failover or a higher tier, or any contract a failover could not fully
    place. The gap (capacity - kW placed now) goes from `now` to the contract's end on the sites the contract does
    not use yet, cheapest first (`site_cost`: site code -> USD per IT kWh, e.g. from the optimizer's plan;
    otherwise the site's energy cost multiplier), split over several sites when one has not enough room. Spot
    takes only free room; higher tiers may displace Spot, as in admission and failover (with a notice). Open
    Downtime records of a contract are closed when its gap is filled, and reopened for what is still missing.
    Nothing is locked when nobody is short (one query); otherwise the admission locks are taken first.
    """
    now = now or timezone.now()
    report = ReplacementReport()
    if not short_contracts(now):
        return report
    rooms = read_fleet(lock=True).rooms
    short = short_contracts(now)  # again, under the locks: a concurrent admission or failover may have changed it
    if not short or not rooms:
        report.short = [(c.pk, c.capacity_kw - c.placed_kw_now) for c in short]
        return report
    load_bookings(rooms, start=now, end=max(c.ends_at for c in short))
    cost = site_cost or {}

    def order(room: SiteRoom) -> tuple:
        return (cost.get(room.code, float(room.energy_cost_multiplier)), room.site_id)

    replacement = _Replacement(rooms=rooms, now=now, actor=actor, reason=reason, report=report, order=order)
    for contract in short:
        _refill(replacement, contract)
    Placement.objects.bulk_create(replacement.new_rows)
    PreemptionNotice.objects.bulk_create(replacement.notices)
    _restate_downtimes(replacement.restated, now=now, user=signed_in(actor))
    return report


@dataclass
class _Replacement:
    """Re-placement under way: the rooms (with the bookings made so far), the sites' order, the rows to write."""

    rooms: list[SiteRoom]
    now: datetime
    actor: object
    reason: str
    report: ReplacementReport
    order: Callable[[SiteRoom], tuple]
    new_rows: list[Placement] = field(default_factory=list)
    restated: dict[int, Decimal] = field(default_factory=dict)  # contract id -> kW still unserved, if given some back
    notices: list[PreemptionNotice] = field(default_factory=list)


def _refill(replacement: _Replacement, contract: Contract) -> None:
    """Place a short contract's gap from now to its end on sites it does not use yet, cheapest first, at most
    ``MAX_SITES_PER_CONTRACT`` sites in all and never more than the contract may hold; report what is left."""
    rooms, now, end = replacement.rooms, replacement.now, contract.ends_at
    gap = contract.capacity_kw - contract.placed_kw_now
    used = {
        room.site_id
        for room in rooms
        for b in room.bookings
        if b.contract_id == contract.pk and b.starts_at < end and (b.ends_at is None or b.ends_at > now)
    }
    pieces_left = max(capacity.MAX_SITES_PER_CONTRACT - len(used), 0)
    # Never more than the contract may hold at any moment of the rest of its window (placements it has later).
    room_left = capacity.contract_room_kw(
        contract_bookings(rooms, contract.pk), now, end, limit_kw=contract_limit_kw(contract)
    )
    wanted = min(gap, room_left)
    remaining = wanted
    for room in sorted((r for r in rooms if r.site_id not in used), key=replacement.order):
        if remaining <= 0 or pieces_left <= 0:
            break
        free = capacity.room_kw(room, now, end, preemptible=contract.tier.is_preemptible)
        take = min(free.quantize(capacity.KW_STEP, rounding=ROUND_DOWN), remaining)
        if take <= 0:
            continue
        _place_piece(replacement, contract, room, take, gap)
        remaining -= take
        pieces_left -= 1
    still_short = remaining + gap - wanted
    if remaining < wanted:
        replacement.restated[contract.pk] = still_short
    if still_short > 0:
        replacement.report.short.append((contract.pk, still_short))


def _place_piece(replacement: _Replacement, contract: Contract, room: SiteRoom, take: Decimal, gap: Decimal) -> None:
    """``take`` kW of a contract's gap on ``room`` from now to its end (displacing Spot there for a firm tier)."""
    tier, now, end = contract.tier, replacement.now, contract.ends_at
    if not tier.is_preemptible:
        replacement.notices += displace_spot(
            room,
            start=now,
            end=end,
            capacity_kw=take,
            now=now,
            by=contract,
            actor=replacement.actor,
            reason=f"displaced by {tier.name} contract {contract.pk} re-placing lost capacity",
        )
    replacement.new_rows.append(
        Placement(
            contract=contract,
            site_id=room.site_id,
            capacity_kw=take,
            valid_from=now,
            valid_to=end,
            kind=PlacementKind.REPLACEMENT,
            reason=(replacement.reason or f"re-placed {take} kW of {gap} kW lost")[:200],
        )
    )
    room.bookings.append(
        Booking(
            site_id=room.site_id,
            capacity_kw=take,
            starts_at=now,
            ends_at=end,
            preemptible=tier.is_preemptible,
            contract_id=contract.pk,
        )
    )
    replacement.report.placed.append((contract.pk, room.code, take))


def _restate_downtimes(unserved: dict[int, Decimal], *, now: datetime, user) -> None:
    """Close the open downtime records of these contracts (id -> kW still unserved) at `now`, and open one per
    contract for what is still unserved, if any, continuing its earliest open record; three queries at most."""
    if not unserved:
        return
    open_rows = list(
        Downtime.objects.filter(contract_id__in=unserved, ended_at__isnull=True).order_by(
            "contract_id", "started_at", "pk"
        )
    )
    if not open_rows:
        return
    # Greatest: a downtime recorded ahead (a failover of a placement not begun yet) never ends before it starts.
    Downtime.objects.filter(pk__in=[d.pk for d in open_rows]).update(ended_at=Greatest(F("started_at"), Value(now)))
    earliest: dict[int, Downtime] = {}
    for row in open_rows:
        earliest.setdefault(row.contract_id, row)
    Downtime.objects.bulk_create(
        Downtime(
            contract_id=contract_id,
            site_id=first.site_id,
            unserved_kw=unserved[contract_id],
            started_at=now,
            reason=f"{first.reason} (partly re-placed)"[:200],
            created_by=user,
        )
        for contract_id, first in earliest.items()
        if unserved[contract_id] > 0
    )
