"""Maintenance failover: placements move off a site, Premium first; what cannot move is preempted or down."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from sites.choices import SiteStatus
from sla.capacity import peak_kw
from sla.choices import PlacementKind
from sla.models import Downtime, Placement, PreemptionNotice
from sla.services import (
    CapacityRequest,
    cancel_contract,
    candidate_sites,
    create_contract,
    fail_over_site,
    load_bookings,
)
from tests.factories import T0, UserFactory

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def admit(customer, tier, kw, *, start=T0, hours=4):
    return create_contract(
        customer=customer,
        request=CapacityRequest(tier=tier, capacity_kw=Decimal(kw), starts_at=start, ends_at=start + hours * H),
    )


def current(contract, at) -> dict[str, Decimal]:
    return {
        p.site.code: p.capacity_kw
        for p in Placement.objects.filter(contract=contract).current(at).select_related("site")
    }


@pytest.fixture
def booked(fleet, frozen, customer, outsider):
    """Oslo full (Premium 200 with a twin in Texas, Standard 300, Flexible 200, Spot 100); Spot 400 in Dublin."""
    contracts = {
        "premium": admit(customer, fleet.premium, "200"),
        "standard": admit(customer, fleet.standard, "300"),
        "flexible": admit(customer, fleet.flexible, "200"),
        "spot": admit(outsider, fleet.spot, "100"),
        "dublin_spot": admit(outsider, fleet.spot, "400", hours=8),
    }
    assert current(contracts["premium"], T0) == {"oslo": Decimal("200"), "texas": Decimal("200")}
    assert current(contracts["dublin_spot"], T0) == {"dublin": Decimal("400")}
    assert all(current(contracts[name], T0) == {"oslo": Decimal(kw)} for name, kw in
               (("standard", "300"), ("flexible", "200"), ("spot", "100")))  # fmt: skip
    return contracts


def fail_oslo(fleet, at=T0 + H):
    with time_machine.travel(at, tick=False):
        fleet.oslo.status = SiteStatus.MAINTENANCE
        fleet.oslo.save()
        return fail_over_site(site=fleet.oslo, actor=UserFactory(username="ops", is_staff=True), reason="chiller swap")


def test_failover_moves_premium_first_then_lower_tiers_while_room_lasts(fleet, booked):
    report = fail_oslo(fleet)

    at = T0 + H
    assert [(contract, site) for contract, site, _ in report.moved] == [
        (booked["premium"].pk, "dublin"),  # not Texas: Premium already runs there (N-1 kept)
        (booked["standard"].pk, "dublin"),
        (booked["flexible"].pk, "texas"),  # only 100 of its 200 kW found room
    ]
    assert current(booked["premium"], at) == {"dublin": Decimal("200"), "texas": Decimal("200")}
    assert current(booked["standard"], at) == {"dublin": Decimal("300")}
    assert current(booked["flexible"], at) == {"texas": Decimal("100")}
    assert current(booked["spot"], at) == {}
    assert str(report) == (
        "oslo: 3 placements moved (600.0 kW), 2 Spot contracts preempted, 2 downtime records (200.0 kW unserved)"
    )


def test_moves_are_recorded_as_placement_history(fleet, booked):
    fail_oslo(fleet)

    history = list(Placement.objects.filter(contract=booked["standard"]).order_by("valid_from", "id"))
    assert [(p.site.code, p.valid_from, p.valid_to) for p in history] == [
        ("oslo", T0, T0 + H),  # closed at the failover
        ("dublin", T0 + H, T0 + 4 * H),  # the rest of its window
    ]
    assert history[1].reason == "failover from oslo: chiller swap"
    assert [p.kind for p in history] == [PlacementKind.ADMISSION, PlacementKind.FAILOVER]


def test_unserved_capacity_is_recorded_as_downtime_against_the_lowest_tiers(fleet, booked):
    fail_oslo(fleet)

    downtimes = {d.contract_id: d for d in Downtime.objects.all()}
    assert set(downtimes) == {booked["flexible"].pk, booked["spot"].pk}
    flexible = downtimes[booked["flexible"].pk]
    assert (flexible.unserved_kw, flexible.started_at, flexible.ended_at) == (Decimal("100"), T0 + H, None)
    assert flexible.site == fleet.oslo and flexible.created_by.username == "ops"
    assert "chiller swap" in flexible.reason


def test_spot_is_noticed_when_displaced_or_left_without_room(fleet, booked):
    fail_oslo(fleet)

    notices = {n.contract_id: n for n in PreemptionNotice.objects.all()}
    assert set(notices) == {booked["spot"].pk, booked["dublin_spot"].pk}
    displaced = notices[booked["dublin_spot"].pk]
    assert (displaced.site, displaced.capacity_kw, displaced.displaced_by) == (
        fleet.dublin,
        Decimal("400"),
        booked["premium"],
    )
    assert displaced.issued_at == displaced.effective_at == T0 + H
    assert notices[booked["spot"].pk].site == fleet.oslo


def test_no_site_exceeds_its_limit_after_failover(fleet, booked):
    fail_oslo(fleet)

    rooms = candidate_sites(lock=False)
    load_bookings(rooms, start=T0 + H, end=T0 + 100 * H)
    assert {r.code: peak_kw(r.bookings, T0 + H, T0 + 100 * H) <= r.limit_kw for r in rooms} == {
        "dublin": True,
        "texas": True,
    }


def test_future_placements_move_too_and_keep_their_window(fleet, frozen, customer):
    later = admit(customer, fleet.standard, "100", start=T0 + 10 * H, hours=2)

    fail_oslo(fleet)

    [moved] = Placement.objects.filter(contract=later)
    assert (moved.site, moved.valid_from, moved.valid_to) == (fleet.texas, T0 + 10 * H, T0 + 12 * H)  # cheapest


def test_ended_contracts_and_other_sites_are_untouched(fleet, frozen, customer):
    done = admit(customer, fleet.standard, "100")
    with time_machine.travel(T0 + H / 2, tick=False):
        cancel_contract(contract=done)
    texas_only = admit(customer, fleet.flexible, "100", hours=2)
    Placement.objects.filter(contract=texas_only).update(site=fleet.texas)

    report = fail_oslo(fleet)

    assert report.moved == [] and report.downtimes == []
    assert list(Placement.objects.filter(contract=done).values_list("valid_to", flat=True)) == [T0 + H / 2]


def test_downtime_closes_when_the_contract_ends(fleet, booked):
    fail_oslo(fleet)

    with time_machine.travel(T0 + 2 * H, tick=False):
        cancel_contract(contract=booked["flexible"])

    assert Downtime.objects.get(contract=booked["flexible"]).ended_at == T0 + 2 * H
