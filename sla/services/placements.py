"""The rules every placement obeys, whoever writes it: staff in the admin, admission, failover, re-placement.

A placement never holds more than its contract's capacity; a contract's placements together never hold more than
its capacity at any moment (N-1 contracts: the redundant copies their plan books, `capacity.contract_limit_kw`);
a placement lies inside its contract's window; and its site, online and able to run inference, stays within its
SLA limit at every moment of the placement's window. Admission plans within these rules, failover and
re-placement cap what they move by `contract_room_kw`, and `check_placement` checks one placement written by hand
(the admin) under the locks admission takes. The database refuses a placement above its contract's capacity
(trigger of migration 0007), the last guard for a writer that bypasses the services.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction

from .. import capacity
from ..capacity import Booking
from ..models import Contract, Placement
from .admission import load_bookings, read_fleet


class PlacementRefused(ValueError):
    """The placement breaks a rule; `errors` maps a field name to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def contract_limit_kw(contract: Contract) -> Decimal:
    """The most kW `contract`'s placements may hold together at any moment (see `capacity.contract_limit_kw`)."""
    return capacity.contract_limit_kw(
        contract.capacity_kw, n_minus_1=contract.tier.requires_n_minus_1, min_sites=contract.tier.min_sites
    )


def contract_bookings(rooms, contract_id: int) -> list[Booking]:
    """The bookings of one contract among rooms loaded by `load_bookings`."""
    return [booking for room in rooms for booking in room.bookings if booking.contract_id == contract_id]


@transaction.atomic
def check_placement(*, placement: Placement) -> None:
    """Raise PlacementRefused unless `placement` (new, or a changed existing row) obeys the rules (module doc).

    Locks its site like admission does (and its contract), so the check holds until the caller's transaction
    commits: call it in the transaction that saves the placement (the admin's change form runs in one).
    Query cost: site lock + limit (1), contract lock (1), bookings over the window (1).
    """
    errors: dict[str, str] = {}
    rooms = read_fleet(lock=True, only=[placement.site_id]).rooms
    contract = Contract.objects.select_for_update(of=("self",)).select_related("tier").get(pk=placement.contract_id)
    start, end = placement.valid_from, placement.valid_to or contract.ends_at
    if placement.capacity_kw > contract.capacity_kw:
        errors["capacity_kw"] = (
            f"{placement.capacity_kw} kW is more than contract {contract.pk} holds ({contract.capacity_kw} kW)."
        )
    if start < contract.starts_at or end > contract.ends_at:
        errors["valid_from"] = (
            f"A placement lies inside its contract's window ({contract.starts_at:%Y-%m-%d %H:%M} to "
            f"{contract.ends_at:%Y-%m-%d %H:%M} UTC)."
        )
    if errors or end <= start:
        raise PlacementRefused(errors or {"valid_to": "A placement must end after it starts."})
    if not rooms:
        raise PlacementRefused({"site": "This site is not online or carries no inference hardware."})
    load_bookings(rooms, start=start, end=end)
    (room,) = rooms
    room.bookings = [b for b in room.bookings if placement.pk is None or b.placement_id != placement.pk]
    _check_contract_room(contract, placement, start, end, errors)
    overload = capacity.first_overload(
        room.bookings, start, end, extra_kw=placement.capacity_kw, limit_kw=room.limit_kw
    )
    if overload is not None:
        free = capacity.room_kw(room, start, end, preemptible=True)
        errors["capacity_kw"] = (
            f"{room.code} would exceed its SLA limit of {room.limit_kw} kW at {overload:%Y-%m-%d %H:%M} UTC: "
            f"at most {free} kW fits there for the whole window."
        )
    if errors:
        raise PlacementRefused(errors)


def _check_contract_room(contract: Contract, placement: Placement, start: datetime, end: datetime, errors) -> None:
    """Add an error unless the contract's other placements leave room for this one over its whole window
    (placements on every site, read here: the locked room only holds the bookings of one site)."""
    others = [
        Booking(
            site_id=row.site_id,
            capacity_kw=row.capacity_kw,
            starts_at=row.valid_from,
            ends_at=row.valid_to,
            placement_id=row.pk,
            contract_id=contract.pk,
        )
        for row in Placement.objects.filter(contract=contract).overlapping(start, end).exclude(pk=placement.pk)
    ]
    limit = contract_limit_kw(contract)
    room = capacity.contract_room_kw(others, start, end, limit_kw=limit)
    if placement.capacity_kw > room:
        errors.setdefault(
            "capacity_kw",
            f"Contract {contract.pk} may hold {limit} kW at once; its other placements leave {room} kW for this "
            "window.",
        )
