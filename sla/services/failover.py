"""Maintenance failover: move placements off a site, Premium first; record what cannot be served."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.auth import signed_in
from sites.choices import SiteStatus
from sites.models import Site

from .. import capacity
from ..capacity import Booking, NoPlacement, SiteRoom
from ..choices import PlacementKind
from ..models import (
    Downtime,
    Placement,
    PreemptionNotice,
)
from .admission import displace_spot, load_bookings, read_fleet
from .placements import contract_bookings, contract_limit_kw

ZERO = Decimal("0")


@dataclass
class FailoverReport:
    """What `fail_over_site` did: kW moved and to where, and what could not be served."""

    site: str
    moved: list[tuple[int, str, Decimal]] = field(default_factory=list)  # (contract, to site, kW)
    preempted: list[int] = field(default_factory=list)  # Spot contracts that lost capacity
    downtimes: list[Downtime] = field(default_factory=list)

    @property
    def moved_kw(self) -> Decimal:
        return sum((kw for _, _, kw in self.moved), ZERO)

    @property
    def unserved_kw(self) -> Decimal:
        return sum((d.unserved_kw for d in self.downtimes), ZERO)

    def __str__(self) -> str:
        return (
            f"{self.site}: {len(self.moved)} placements moved ({self.moved_kw:,.1f} kW), "
            f"{len(self.preempted)} Spot contracts preempted, {len(self.downtimes)} downtime records "
            f"({self.unserved_kw:,.1f} kW unserved)"
        )


@transaction.atomic
def fail_over_site(*, site: Site, actor=None, reason: str = "") -> FailoverReport:
    """Move every current and future placement off `site` (going into maintenance) onto other online sites.

    Order: Premium first, then Standard, Flexible, Spot (tier priority), and within a tier the earliest
    contract first. Each placement is closed at now (or dropped if it had not begun) and its remaining window is
    re-placed on the cheapest site with room, split over several sites if needed, never on a site the contract
    already uses (so Premium keeps its N-1 spread). Higher tiers displace Spot at the destination (with a notice).
    When capacity runs out the lowest tiers are the ones left unplaced: Spot gets a preemption notice, and every
    contract whose remaining placements no longer cover its committed kW gets a Downtime record for the gap.
    New rows are `kind=failover`; what is left short is re-placed later by `replace_lost_capacity` (after each
    optimization run) once some site has room, and when the site is back online the optimizer may move the
    failed-over placements back (`kind=return`) when that pays (sla.services.migration).

    Call it with the site already set to maintenance (same transaction is fine), so no admission places new
    work on it. Locks the site and every online site in pk order, like admission.
    """
    now = timezone.now()
    # The failing site and every online site, locked in one statement in pk order (admission's order).
    list(
        Site.objects.filter(Q(status=SiteStatus.ONLINE) | Q(pk=site.pk))
        .order_by("pk")
        .select_for_update()
        .values_list("pk")
    )
    rooms = [room for room in read_fleet(lock=False).rooms if room.site_id != site.pk]
    affected = list(
        Placement.objects.committed()
        .filter(site=site)
        .overlapping(now, None)
        .select_related("contract__tier")
        .order_by("contract__tier__priority", "contract__starts_at", "contract_id", "valid_from", "pk")
    )
    failover = _Failover(site=site, rooms=rooms, now=now, actor=actor, reason=reason or "maintenance")
    if not affected:
        return failover.report
    load_bookings(rooms, start=now, end=max(p.valid_to or p.contract.ends_at for p in affected))
    for placement in affected:
        _move_off(failover, placement)
    Placement.objects.bulk_create(failover.new_placements)
    _record_short(failover)
    PreemptionNotice.objects.bulk_create(failover.notices)
    Downtime.objects.bulk_create(failover.report.downtimes)
    for notice in failover.notices:  # Spot displaced at a destination by a higher tier moving in
        if notice.contract_id not in failover.report.preempted:
            failover.report.preempted.append(notice.contract_id)
    return failover.report


@dataclass
class _Failover:
    """One site's failover under way: the other sites' rooms (with the bookings made so far) and the rows to write."""

    site: Site
    rooms: list[SiteRoom]
    now: datetime
    actor: object
    reason: str
    report: FailoverReport = field(init=False)
    new_placements: list[Placement] = field(default_factory=list)
    notices: list[PreemptionNotice] = field(default_factory=list)
    short: dict[int, tuple[Placement, datetime, Decimal]] = field(default_factory=dict)  # contract: (p, from, kW)

    def __post_init__(self) -> None:
        self.report = FailoverReport(site=self.site.code)


def _move_off(failover: _Failover, placement: Placement) -> None:
    """Close ``placement`` at now (drop it if it had not begun) and re-place the rest of its window elsewhere, on
    sites the contract does not use, never more than the contract holds; what finds no room is noted short."""
    contract, now, rooms = placement.contract, failover.now, failover.rooms
    start, end = max(now, placement.valid_from), placement.valid_to or contract.ends_at
    if placement.valid_from < now:
        Placement.objects.filter(pk=placement.pk).update(valid_to=now)
    else:
        Placement.objects.filter(pk=placement.pk).delete()
    if end <= start:
        return
    used = {
        room.site_id
        for room in rooms
        for b in room.bookings
        if b.contract_id == contract.pk and b.starts_at < end and (b.ends_at is None or b.ends_at > start)
    }
    options = [room for room in rooms if room.site_id not in used]
    # Never more than the contract holds: a placement typed in above it (or the rest of it, when the contract's
    # other placements already hold its capacity) is not carried to the other sites.
    held = capacity.contract_room_kw(
        contract_bookings(rooms, contract.pk), start, end, limit_kw=contract_limit_kw(contract)
    )
    to_move = min(placement.capacity_kw, held)
    if to_move <= 0:
        return
    shares = _failover_shares(options, placement=placement, capacity_kw=to_move, start=start, end=end)
    placed = sum((_place_share(failover, placement, share, start, end) for share in shares), ZERO)
    unplaced = to_move - placed
    if unplaced > 0:
        previous = failover.short.get(contract.pk)
        failover.short[contract.pk] = (placement, min(start, previous[1]) if previous else start, unplaced)


def _place_share(
    failover: _Failover, placement: Placement, share: capacity.Share, start: datetime, end: datetime
) -> Decimal:
    """One share of a moved placement on its destination (displacing Spot there for a firm tier); its kW."""
    contract, site = placement.contract, failover.site
    tier = contract.tier
    if not tier.is_preemptible:
        failover.notices += displace_spot(
            share.site,
            start=start,
            end=end,
            capacity_kw=share.capacity_kw,
            now=failover.now,
            by=contract,
            actor=failover.actor,
            reason=f"displaced by {tier.name} contract {contract.pk} moving off {site.code}",
        )
    failover.new_placements.append(
        Placement(
            contract=contract,
            site_id=share.site.site_id,
            capacity_kw=share.capacity_kw,
            valid_from=start,
            valid_to=end,
            kind=PlacementKind.FAILOVER,
            moved_from=site,
            reason=f"failover from {site.code}: {failover.reason}"[:200],
        )
    )
    share.site.bookings.append(
        Booking(
            site_id=share.site.site_id,
            capacity_kw=share.capacity_kw,
            starts_at=start,
            ends_at=end,
            preemptible=tier.is_preemptible,
            contract_id=contract.pk,
        )
    )
    failover.report.moved.append((contract.pk, share.site.code, share.capacity_kw))
    return share.capacity_kw


def _record_short(failover: _Failover) -> None:
    """For each contract left short: a preemption notice when it is Spot, and a Downtime record for the kW its
    remaining placements no longer cover."""
    site, reason, user = failover.site, failover.reason, signed_in(failover.actor)
    for placement, start, unplaced in failover.short.values():
        contract = placement.contract
        if contract.tier.is_preemptible:
            failover.notices.append(
                PreemptionNotice(
                    contract=contract,
                    site=site,
                    capacity_kw=unplaced,
                    issued_at=failover.now,
                    effective_at=start,
                    reason=f"{site.code} went into maintenance and no site had room: {reason}"[:200],
                    created_by=user,
                )
            )
            failover.report.preempted.append(contract.pk)
        served = sum(
            (
                b.capacity_kw
                for room in failover.rooms
                for b in room.bookings
                if b.contract_id == contract.pk and b.starts_at <= start and (b.ends_at is None or b.ends_at > start)
            ),
            ZERO,
        )
        unserved = contract.capacity_kw - served
        if unserved > 0:
            failover.report.downtimes.append(
                Downtime(
                    contract=contract,
                    site=site,
                    unserved_kw=unserved,
                    started_at=start,
                    reason=f"{site.code} maintenance, no room elsewhere: {reason}"[:200],
                    created_by=user,
                )
            )


def _failover_shares(
    rooms: list[SiteRoom], *, placement: Placement, capacity_kw: Decimal, start: datetime, end: datetime
) -> list[capacity.Share]:
    """Where a moved placement goes: the plan rules for one site (or a split), else as much as fits."""
    tier = placement.contract.tier
    try:
        return capacity.plan_placement(
            rooms,
            capacity_kw=capacity_kw,
            start=start,
            end=end,
            min_sites=1,
            n_minus_1=False,
            preemptible=tier.is_preemptible,
            region_preference=placement.contract.region_preference,
        )
    except NoPlacement:
        return capacity.fill_partially(
            rooms, capacity_kw=capacity_kw, start=start, end=end, preemptible=tier.is_preemptible
        )
