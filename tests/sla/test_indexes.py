"""The indexes of the tables a purchase writes (quote, contract, its history row, placements): each index costs an
insertion per row written, so each must serve a read that no other index serves."""

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
