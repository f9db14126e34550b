"""The indexes of the tables a purchase writes (quote, contract, its history row, placements): each index costs an
insertion per row written, so each must serve a read that no other index serves."""

import re
from datetime import timedelta

import pytest
from django.db import connection

from sla.models import Contract, Placement, Quote

pytestmark = pytest.mark.django_db

WRITTEN_BY_A_PURCHASE = ("sla_quote", "sla_contract", "sla_historicalcontract", "sla_placement")


def indexes(table: str) -> dict[str, tuple[list[str], bool]]:
    """Each index of the table but its primary key (SQLite's rowid key is no index): its columns and whether it is
    unique (constraints' indexes included)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return {
        name: (c["columns"], c["unique"])
        for name, c in found.items()
        if (c["index"] or c["unique"]) and c["columns"] and not c["primary_key"]
    }


@pytest.mark.parametrize("table", WRITTEN_BY_A_PURCHASE)
def test_no_index_repeats_the_leading_columns_of_another(table):
    """A plain index whose columns lead another index of the same table (sla_placement(site_id) before
    (site_id, valid_from, valid_to)) serves no lookup the longer one does not: it only costs insertions."""
    found = indexes(table)
    redundant = {
        (name, other)
        for name, (columns, unique) in found.items()
        for other, (longer, _) in found.items()
        if other != name and not unique and len(columns) <= len(longer) and longer[: len(columns)] == columns
    }
    assert redundant == set()


def test_contract_history_rows_are_indexed_only_for_the_reads_of_history():
    """By contract (`contract.history`, the admin's history page) and by date; the copied customer, tier and
    quote columns are never looked up (no constraint, no delete rule), and the history user keeps its index for
    the SET NULL when a user is deleted."""
    indexed = {tuple(columns) for columns, _ in indexes("sla_historicalcontract").values()}
    assert indexed == {("id",), ("history_date",), ("history_user_id",)}


def plan(queryset) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small would be scanned anyway
    return queryset.explain()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plans (EXPLAIN, enable_seqscan)")
def test_lookups_by_site_and_by_customer_use_the_composite_indexes_that_lead_with_them(fleet):
    assert "sla_placement_site_window_idx" in plan(Placement.objects.filter(site=fleet.oslo))
    assert "sla_quote_customer_created_idx" in plan(Quote.objects.filter(customer_id=1))
    assert "sla_contract_customer_id" in plan(Contract.objects.filter(customer_id=1))


def numbered(sql: str) -> str:
    """A compiled read as PostgreSQL holds it prepared: psycopg's `%s` placeholders as $1, $2, ..."""
    count = iter(range(1, sql.count("%s") + 1))
    return re.sub("%s", lambda _: f"${next(count)}", sql)


def generic_plan(read, **values) -> str:
    """The plan PostgreSQL gives a prepared read once it stops planning per call (a generic plan: costed
    without the values, as psycopg's prepared statements may run)."""
    sql, params, slots = read._compile()
    for i, name in slots.items():
        params[i] = connection.ops.adapt_datetimefield_value(values[name]) if name in ("start", "end") else values[name]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("PREPARE generic_read AS " + numbered(sql))
        literals = ", ".join("'" + str(param).replace("'", "''") + "'" for param in params)
        cursor.execute(f"EXPLAIN EXECUTE generic_read({literals})")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE generic_read")
    return plan


def month_of_bookings(sites, *, per_site: int) -> None:
    """`per_site` bookings of 1 to 4 hours on each site, a month of them from T0, and the planner's statistics."""
    from tests.factories import T0, ContractFactory

    hour = timedelta(hours=1)
    for site in sites:
        contract = ContractFactory(capacity_kw=1, starts_at=T0, ends_at=T0 + 800 * hour)
        Placement.objects.bulk_create(
            Placement(contract=contract, site=site, capacity_kw=1, valid_from=T0 + (i % 720) * hour,
                      valid_to=T0 + (i % 720 + 1 + i % 4) * hour)
            for i in range(per_site)
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sla_placement")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plans (EXPLAIN, PREPARE)")
def test_a_purchases_reads_on_its_sites_find_the_window_by_its_gist_index_not_every_placement_of_the_site(fleet):
    """The (site, valid_from, valid_to) B-tree would hand the read every placement ever made on the site, a
    number that grows with the book: the sites only sift what the window's GiST index finds."""
    from sla.services.admission import SOME_SITES_BOOKINGS_READS, SOME_SITES_PEAKS_READS
    from tests.factories import T0

    # at 24,000 placements the generic plan of a bare `site_id` filter ANDs in the B-tree (checked)
    month_of_bookings([fleet.oslo, fleet.dublin, fleet.texas], per_site=8000)
    for count, read in [*SOME_SITES_PEAKS_READS.items(), *SOME_SITES_BOOKINGS_READS.items()]:
        sites = {f"site_{i}": i + 1 for i in range(count)}
        plan = generic_plan(read, start=T0, end=T0 + timedelta(hours=2), **sites)
        assert "sla_placement_window_gist" in plan and "sla_placement_site_window_idx" not in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's prepared statements")
def test_the_peaks_reads_are_planned_once_per_connection_and_sweep_in_time_order_alone(fleet):
    """Each quote and purchase runs a peaks read (`load_window_peaks`), server-side prepared: PostgreSQL keeps its
    generic plan (the GiST scan) only if that is costed below the plans for the actual values plus a charge for
    planning them. A short window overlaps fewer placements than the 1 % a generic plan assumes; on a book this
    size (8,000 placements of 1-4 hours over a month, 1-hour windows) the difference outweighs that charge, so
    without `overlapping(plan_once=True)` every call is planned anew (a quarter to a third of the read's backend
    CPU on a filled book). The sweep sorts its events by site and moment only (its RANGE frame), not by kW too."""
    from sla.services import candidate_sites
    from sla.services.admission import SOME_SITES_PEAKS_READS, WINDOW_PEAKS_READ, load_window_peaks
    from tests.factories import T0

    month_of_bookings([fleet.oslo, fleet.dublin], per_site=4000)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # psycopg forgets its prepared statements too: each read prepared afresh
    for hour in range(16):  # psycopg prepares a statement after 5 calls; PostgreSQL plans it 5 times, then decides
        start = T0 + timedelta(hours=30 * hour + 7)
        rooms = candidate_sites(lock=False)
        load_window_peaks(rooms, start=start, end=start + timedelta(hours=1))
        oslo = [room for room in rooms if room.site_id == fleet.oslo.pk]
        load_window_peaks(oslo, start=start, end=start + timedelta(hours=1), only=[fleet.oslo.pk])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        plans = {statement: counts for statement, *counts in cursor.fetchall()}
    for read in (WINDOW_PEAKS_READ, SOME_SITES_PEAKS_READS[1]):
        generic, custom = plans[numbered(read._compile()[0])]
        assert generic > 0 and custom <= 5, (generic, custom, read.template)
        plan = generic_plan(read, start=T0, end=T0 + timedelta(hours=2), site_0=fleet.oslo.pk)
        assert "Sort Key: booked.site_id, booked.held_from\n" in plan, plan
