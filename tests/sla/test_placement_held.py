"""On PostgreSQL every placement carries `held` (its contract holds capacity) and `spot` (its tier is preemptible),
kept by triggers (migration 0013) for every writer, so that admission's reads of each quote and purchase join
nothing: these tests write placements, contracts and tiers every way the app and an operator can, and compare the
columns with what the joins say."""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sla.choices import OPEN_CONTRACT_STATUSES, ContractStatus
from sla.models import Contract, Placement, Tier
from sla.services import CapacityRequest, cancel_contract, create_contract
from sla.services.admission import BOOKINGS_READ, SOME_SITES_PEAKS_READS, WINDOW_PEAKS_READ, load_window_peaks
from tests.factories import T0, ContractFactory, PlacementFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the columns are PostgreSQL's only")

H = timedelta(hours=1)


def mismatches() -> list[tuple]:
    """Placements whose `held` / `spot` differ from their contract's status and tier (and how many were read)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, p.held, p.spot, c.status, t.is_preemptible FROM sla_placement p "
            "JOIN sla_contract c ON c.id = p.contract_id JOIN sla_tier t ON t.id = c.tier_id"
        )
        rows = cursor.fetchall()
    assert rows, "no placement: nothing compared"
    return [row for row in rows if (row[1], row[2]) != (row[3] in OPEN_CONTRACT_STATUSES, row[4])]


@pytest.mark.django_db
def test_every_writer_of_placements_contracts_and_tiers_keeps_held_and_spot(fleet, customer):
    contracts = {
        (status, tier.code): ContractFactory(tier=tier, status=status, customer=customer)
        for status in ContractStatus.values
        for tier in (fleet.standard, fleet.spot)
    }
    for contract in contracts.values():  # the ORM's save
        Placement.objects.create(contract=contract, site=fleet.oslo, capacity_kw=Decimal("5"), valid_from=T0)
    Placement.objects.bulk_create(  # bulk inserts
        Placement(contract=contract, site=fleet.dublin, capacity_kw=Decimal("1"), valid_from=T0)
        for contract in contracts.values()
    )
    admitted = create_contract(  # admission's prepared insert of a contract with its placements
        customer=customer,
        request=CapacityRequest(tier=fleet.premium, capacity_kw=Decimal("10"), starts_at=T0, ends_at=T0 + 2 * H),
    )
    assert mismatches() == []

    with connection.cursor() as cursor:  # a value written by hand is replaced by the contract's
        cursor.execute("UPDATE sla_placement SET held = NOT held, spot = NOT spot")
    assert mismatches() == []

    requested = contracts[(ContractStatus.REQUESTED, fleet.standard.code)]
    requested.status = ContractStatus.ACTIVE
    requested.save()  # a contract's status through save()
    Contract.objects.filter(pk=contracts[(ContractStatus.ACTIVE, fleet.spot.code)].pk).update(
        status=ContractStatus.COMPLETED  # ... and through a queryset update
    )
    Contract.objects.filter(pk=contracts[(ContractStatus.CANCELLED, fleet.standard.code)].pk).update(
        status=ContractStatus.REQUESTED
    )
    Contract.objects.filter(pk=contracts[(ContractStatus.REQUESTED, fleet.spot.code)].pk).update(tier=fleet.flexible)
    cancel_contract(contract=admitted, reason="changed its mind")  # the lifecycle's own transition
    assert mismatches() == []

    moved = Placement.objects.filter(contract=contracts[(ContractStatus.COMPLETED, fleet.standard.code)]).first()
    moved.contract = contracts[(ContractStatus.ACTIVE, fleet.standard.code)]  # a placement moved to another contract
    moved.save()
    Tier.objects.filter(pk=fleet.standard.pk).update(is_preemptible=True)  # a tier turned preemptible
    fleet.spot.is_preemptible = False
    fleet.spot.save()
    assert mismatches() == []


@pytest.mark.django_db
def test_a_cancelled_contract_stops_counting_in_the_peaks_at_once(fleet, customer):
    contract = ContractFactory(tier=fleet.standard, status=ContractStatus.ACTIVE, customer=customer)
    PlacementFactory(contract=contract, site=fleet.oslo, capacity_kw=Decimal("40"), valid_from=T0, valid_to=T0 + H)
    [room] = [room for room in _rooms() if room.site_id == fleet.oslo.pk]

    load_window_peaks([room], start=T0, end=T0 + H)
    assert room.load.firm_kw == Decimal("40")
    cancel_contract(contract=contract, reason="no longer needed")
    load_window_peaks([room], start=T0, end=T0 + H)
    assert room.load.firm_kw == 0 and room.load.total_kw == 0


def _rooms():
    from sla.services import candidate_sites

    return candidate_sites(lock=False)


@pytest.mark.django_db
def test_admissions_reads_of_every_quote_and_purchase_join_no_contract_and_no_tier():
    """What they read of each placement is on its own row: no join whose cost grows with the rows read."""
    for read in (WINDOW_PEAKS_READ, BOOKINGS_READ, *SOME_SITES_PEAKS_READS.values()):
        sql = read._compile()[0]
        assert "JOIN" not in sql and '"sla_contract"' not in sql and '"sla_tier"' not in sql, sql


MIGRATION = importlib.import_module("sla.migrations.0013_placement_held")
BEFORE, AFTER = ("sla", "0012_drop_redundant_indexes"), ("sla", "0013_placement_held")


@pytest.mark.django_db(transaction=True)
def test_0013_fills_held_and_spot_for_the_placements_already_written_and_reverses(fleet):
    try:
        MigrationExecutor(connection).migrate([BEFORE])
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'sla_placement' "
                           "AND column_name IN ('held', 'spot')")  # fmt: skip
            assert cursor.fetchone()[0] == 0
        for status, tier in [(ContractStatus.ACTIVE, fleet.spot), (ContractStatus.CANCELLED, fleet.standard),
                             (ContractStatus.REQUESTED, fleet.premium),
                             (ContractStatus.COMPLETED, fleet.spot)]:  # closed, yet Spot: filled too  # fmt: skip
            PlacementFactory(contract=ContractFactory(tier=tier, status=status), site=fleet.oslo, capacity_kw=1)
        MigrationExecutor(connection).migrate([AFTER])
        assert mismatches() == []
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sla_placement WHERE held")
            assert cursor.fetchone()[0] == 2
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("sla"))
