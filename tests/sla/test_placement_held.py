"""Every placement carries `held` (its contract holds capacity) and `spot` (its tier is preemptible), kept by
triggers (migration 0013, PostgreSQL and SQLite) for every writer, so that admission's reads of each quote and
purchase join nothing: these tests write placements, contracts and tiers every way the app and an operator can
(concurrently too, on PostgreSQL), and compare the columns with what the joins say."""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django import forms
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Exists, Max, OuterRef

from sla.choices import OPEN_CONTRACT_STATUSES, ContractStatus
from sla.models import Contract, Placement, Tier
from sla.services import CapacityRequest, cancel_contract, create_contract
from sla.services.admission import (
    BOOKINGS_READ,
    SOME_SITES_BOOKINGS_READS,
    SOME_SITES_PEAKS_READS,
    WINDOW_PEAKS_READ,
    load_window_peaks,
)
from tests.factories import T0, ContractFactory, PlacementFactory

POSTGRESQL_ONLY = pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers: PostgreSQL")
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
    return [row for row in rows if (bool(row[1]), bool(row[2])) != (row[3] in OPEN_CONTRACT_STATUSES, bool(row[4]))]


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
def test_an_orm_save_of_a_stale_value_and_forms_write_nothing_of_theirs(fleet, customer):
    contract = ContractFactory(tier=fleet.spot, status=ContractStatus.ACTIVE, customer=customer)
    placement = Placement.objects.create(contract=contract, site=fleet.oslo, capacity_kw=Decimal("5"), valid_from=T0)
    assert (placement.held, placement.spot) == (False, False)  # what the instance was given: not read back
    placement.refresh_from_db()
    assert (placement.held, placement.spot) == (True, True)
    placement.held = placement.spot = False
    placement.save()  # the ORM writes every field back, the stale values too: the trigger derives them again
    placement.refresh_from_db()
    assert (placement.held, placement.spot) == (True, True)
    assert not {"held", "spot"} & set(forms.modelform_factory(Placement, fields="__all__")().fields)  # editable=False


@pytest.mark.django_db
def test_a_placement_written_before_its_contract_in_one_transaction_takes_them_from_it(fleet, customer):
    """The foreign key is checked at commit (loaddata, scripts), so the contract may come after its placements."""
    contract_id = (Contract.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000
    with transaction.atomic():
        Placement.objects.bulk_create(
            [Placement(contract_id=contract_id, site=fleet.oslo, capacity_kw=Decimal("1"), valid_from=T0)]
        )
        ContractFactory(pk=contract_id, tier=fleet.spot, status=ContractStatus.ACTIVE, customer=customer)
        assert mismatches() == []
    assert Placement.objects.get(contract_id=contract_id).held


@pytest.mark.django_db
def test_holding_composes_like_committed_in_subqueries(fleet, customer):
    """A plain filter on the field, so whatever alias the table gets in a subquery (U0, ...) it reads its own row."""
    for status in ContractStatus.values:
        contract = ContractFactory(tier=fleet.standard, status=status, customer=customer)
        for site in (fleet.oslo, fleet.dublin):
            PlacementFactory(contract=contract, site=site, capacity_kw=Decimal("1"), valid_from=T0)

    def chosen(placements):
        return set(Placement.objects.filter(pk__in=placements.values("pk")).values_list("pk", flat=True))

    held = chosen(Placement.objects.committed())
    assert held and held != set(Placement.objects.values_list("pk", flat=True))
    assert chosen(Placement.objects.holding()) == held

    def with_a_neighbour(placements):  # does another placement on its site hold capacity?
        others = placements.filter(site=OuterRef("site")).exclude(pk=OuterRef("pk"))
        return dict(Placement.objects.annotate(neighbour=Exists(others)).values_list("pk", "neighbour"))

    assert with_a_neighbour(Placement.objects.holding()) == with_a_neighbour(Placement.objects.committed())


@pytest.mark.django_db
def test_admissions_reads_of_every_quote_and_purchase_join_no_contract_and_no_tier():
    """What they read of each placement is on its own row: no join whose cost grows with the rows read."""
    for read in (
        WINDOW_PEAKS_READ,
        BOOKINGS_READ,
        *SOME_SITES_PEAKS_READS.values(),
        *SOME_SITES_BOOKINGS_READS.values(),
    ):
        sql = read._compile()[0]
        assert "JOIN" not in sql and '"sla_contract"' not in sql and '"sla_tier"' not in sql, sql


MIGRATION = importlib.import_module("sla.migrations.0013_placement_held")
BEFORE, AFTER = ("sla", "0012_drop_redundant_indexes"), ("sla", "0013_placement_held")


def old_placement_model():
    return MigrationExecutor(connection).loader.project_state(BEFORE).apps.get_model("sla", "Placement")


@pytest.mark.django_db(transaction=True)
def test_0013_fills_held_and_spot_for_the_placements_already_written_and_reverses(fleet):
    try:
        MigrationExecutor(connection).migrate([BEFORE])
        with connection.cursor() as cursor:
            columns = {c.name for c in connection.introspection.get_table_description(cursor, "sla_placement")}
        assert columns and not columns & {"held", "spot"}
        for status, tier in [(ContractStatus.ACTIVE, fleet.spot), (ContractStatus.CANCELLED, fleet.standard),
                             (ContractStatus.REQUESTED, fleet.premium),
                             (ContractStatus.COMPLETED, fleet.spot)]:  # closed, yet Spot: filled too  # fmt: skip
            contract = ContractFactory(tier=tier, status=status)  # the model of 0012: no held, no spot
            old_placement_model().objects.create(
                contract_id=contract.pk, site_id=fleet.oslo.pk, capacity_kw=1, valid_from=T0
            )
        MigrationExecutor(connection).migrate([AFTER])
        assert mismatches() == []
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sla_placement WHERE held")
            assert cursor.fetchone()[0] == 2
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("sla"))


def _blocked(pid: int) -> bool:
    """Whether the backend `pid` waits for a lock (read live: pg_locks is not a per-transaction snapshot)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pid])
        return cursor.fetchone()[0]


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after 30 s"
        time.sleep(0.01)


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


class _Writer(threading.Thread):
    """Another connection (its own thread), closed when done; what it raised is kept for the test."""

    def __init__(self, work: Callable[[], None]):
        super().__init__(daemon=True)
        self.work, self.error = work, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as error:  # handed to the test
            self.error = error
        finally:
            connection.close()

    def finish(self) -> None:
        self.join(30)
        assert not self.is_alive(), "the other writer did not finish within 30 s"
        if self.error is not None:
            raise self.error


def _changes(fleet):
    return {
        "cancel": lambda contract: cancel_contract(contract=contract, reason="changed its mind"),
        "tier turned preemptible": lambda contract: Tier.objects.filter(pk=fleet.standard.pk).update(
            is_preemptible=True
        ),
    }


@POSTGRESQL_ONLY
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["cancel", "tier turned preemptible"])
@pytest.mark.parametrize("first", ["placement", "change"])
def test_a_placement_written_while_its_contract_or_tier_changes_ends_with_their_values(fleet, customer, change, first):
    """Failover and re-placement insert placements under site locks only, and a close locks only the contract:
    whichever commits first, the placement ends with the contract's and tier's committed values (the placement's
    trigger reads them FOR SHARE, so one writer waits for the other)."""
    contract = ContractFactory(tier=fleet.standard, status=ContractStatus.ACTIVE, customer=customer)
    apply = _changes(fleet)[change]

    def place() -> None:
        Placement.objects.create(contract=contract, site=fleet.oslo, capacity_kw=Decimal("5"), valid_from=T0)

    if first == "placement":  # the placement's transaction is open while the change runs, then commits
        changer, changed, placed = _backend_pid(), threading.Event(), threading.Event()

        def place_then_wait() -> None:
            with transaction.atomic():
                place()
                placed.set()
                _until(lambda: changed.is_set() or _blocked(changer), "the change to run or wait")

        writer = _Writer(place_then_wait)
        writer.start()
        _until(placed.is_set, "the placement")
        apply(contract)
        changed.set()
    else:  # the change's transaction is open while the placement is written, then commits
        pids: queue.Queue[int] = queue.Queue()
        placed = threading.Event()

        def place_now() -> None:
            pids.put(_backend_pid())
            with transaction.atomic():
                place()
                placed.set()

        with transaction.atomic():
            apply(contract)
            writer = _Writer(place_now)
            writer.start()
            placer = pids.get(timeout=30)
            _until(lambda: placed.is_set() or _blocked(placer), "the placement to be written or wait")
    writer.finish()
    assert Placement.objects.filter(contract=contract).count() == 1
    assert mismatches() == []


@POSTGRESQL_ONLY
@pytest.mark.django_db(transaction=True)
def test_a_transition_locks_its_contract_not_its_tier(fleet, customer):
    """A placement's trigger reads its tier FOR SHARE: a transition that also locked the tier (FOR UPDATE through
    select_related) held back every placement of that tier, and closed a lock cycle with a failover (which holds a
    placement of the closing contract and writes one of another contract of the tier)."""
    closing, other = [
        ContractFactory(tier=fleet.standard, status=ContractStatus.ACTIVE, customer=customer) for _ in range(2)
    ]
    cancelled, release = threading.Event(), threading.Event()

    def cancel_and_hold() -> None:
        with transaction.atomic():
            cancel_contract(contract=closing, reason="changed its mind")
            cancelled.set()
            _until(release.is_set, "the placement")

    writer = _Writer(cancel_and_hold)
    writer.start()
    try:
        _until(cancelled.is_set, "the cancellation")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5s'")  # fails (LockNotAvailable) if it waits for the tier
            Placement.objects.create(contract=other, site=fleet.oslo, capacity_kw=Decimal("5"), valid_from=T0)
    finally:
        release.set()
        writer.finish()
    assert mismatches() == []
