"""sla.0012 on a live database: it drops the redundant indexes found by their columns (whatever their names),
on PostgreSQL with DROP INDEX CONCURRENTLY outside any transaction, and reverses and re-applies cleanly."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE, AFTER = ("sla", "0011_cancellation_terms"), ("sla", "0012_drop_redundant_indexes")
MIGRATION = importlib.import_module("sla.migrations.0012_drop_redundant_indexes")
DROPPED = {(table, column) for table, column, _ in MIGRATION.INDEXED}


def plain_indexes() -> set[tuple[str, str]]:
    """(table, column) of every plain single-column index among the tables 0012 touches."""
    found = set()
    with connection.cursor() as cursor:
        for table in {table for table, _ in DROPPED}:
            for c in connection.introspection.get_constraints(cursor, table).values():
                if c["index"] and not c["unique"] and not c["primary_key"] and len(c["columns"] or []) == 1:
                    found.add((table, c["columns"][0]))
    return found & DROPPED


def migrate(target) -> list[tuple[str, bool]]:
    """Migrate sla to `target`; each statement run, with whether a transaction was open around it."""
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    executor = MigrationExecutor(connection)
    with connection.execute_wrapper(record):
        executor.migrate([target])
    return statements


def drops(statements):
    return [(sql, atomic) for sql, atomic in statements if sql.startswith("DROP INDEX")]


def test_0012_is_not_atomic():
    assert MIGRATION.Migration.atomic is False


def test_0012_drops_the_indexes_by_column_reverses_and_reapplies():
    try:
        assert plain_indexes() == set()
        migrate(BEFORE)
        assert plain_indexes() == DROPPED
        # an index Django did not name: found by its column all the same
        with connection.cursor() as cursor:
            cursor.execute('DROP INDEX "sla_placement_site_id_b864fd8f"')
            cursor.execute('CREATE INDEX "placement_site_by_another_name" ON "sla_placement" ("site_id")')
        assert plain_indexes() == DROPPED
        statements = drops(migrate(AFTER))
        assert plain_indexes() == set()
        assert len(statements) == len(DROPPED)
        assert any('"placement_site_by_another_name"' in sql for sql, _ in statements)
        if connection.vendor == "postgresql":
            assert all(sql.startswith("DROP INDEX CONCURRENTLY IF EXISTS") for sql, _ in statements), statements
            assert not any(atomic for _, atomic in statements), "DROP INDEX ran inside a transaction"
        migrate(BEFORE)
        assert plain_indexes() == DROPPED
        migrate(AFTER)
        assert plain_indexes() == set()
    finally:
        migrate(AFTER)
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("sla"))
