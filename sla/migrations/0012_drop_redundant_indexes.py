"""Drop the indexes no read needs (tests/sla/test_indexes.py): every one costs an insertion per row a purchase writes.

- sla_placement(site_id) and sla_quote(customer_id): sla_placement_site_window_idx (site, valid_from, valid_to) and
  sla_quote_customer_created_idx (customer, created_at) lead with the same column and serve the same lookups. Only
  the index is dropped (state: db_index=False): Django's AlterField would also drop and re-add the foreign key,
  re-checking every row of the table under lock.
- sla_historicalcontract's customer, tier and quote: history rows are read by contract id and date, never by these.

Run on a live database (`release` runs it while the old web serves): on PostgreSQL each index goes with
`DROP INDEX CONCURRENTLY`, outside any transaction (atomic = False), so no ACCESS EXCLUSIVE lock on the hot tables
queues the quotes and purchases behind a long transaction. Every index is found by its column (introspection at
migration time), not by the name Django would give it, so a database whose index has another name loses it too.
The state changes are Django's AlterField (db_index=False); their own SQL (a plain DROP INDEX in the migration's
transaction) is replaced by `drop_indexes`. Reversing re-creates one index per column, concurrently on PostgreSQL.
"""

import django.db.models.deletion
from django.db import migrations, models

# (table, column, the name Django gave the index in 0001/0002: used only to re-create it when reversing)
INDEXED = [
    ("sla_historicalcontract", "customer_id", "sla_historicalcontract_customer_id_c18d00a6"),
    ("sla_historicalcontract", "quote_id", "sla_historicalcontract_quote_id_e7d0c0a5"),
    ("sla_historicalcontract", "tier_id", "sla_historicalcontract_tier_id_057d10d7"),
    ("sla_placement", "site_id", "sla_placement_site_id_b864fd8f"),
    ("sla_quote", "customer_id", "sla_quote_customer_id_63059316"),
]


def single_column_indexes(schema_editor, table, column):
    """The names of the plain (not unique, not primary key) indexes on exactly `column` of `table`."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return sorted(
        name
        for name, c in found.items()
        if c["index"] and not c["unique"] and not c["primary_key"] and c["columns"] == [column]
    )


def concurrently(schema_editor):
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for table, column, _ in INDEXED:
        for name in single_column_indexes(schema_editor, table, column):
            schema_editor.execute(f"DROP INDEX{concurrently(schema_editor)} IF EXISTS {quote(name)}")


def create_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for table, column, name in INDEXED:
        if not single_column_indexes(schema_editor, table, column):
            schema_editor.execute(
                f"CREATE INDEX{concurrently(schema_editor)} IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)})"
            )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ('sites', '0003_real_markets'),
        ('sla', '0011_cancellation_terms'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='historicalcontract',
                    name='customer',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='sla.customer'),
                ),
                migrations.AlterField(
                    model_name='historicalcontract',
                    name='quote',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, editable=False, help_text='The quote it was bought from; unique, so a quote buys at most one contract.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='sla.quote'),
                ),
                migrations.AlterField(
                    model_name='historicalcontract',
                    name='tier',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='sla.tier'),
                ),
                migrations.AlterField(
                    model_name='placement',
                    name='site',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='placements', to='sites.site'),
                ),
                migrations.AlterField(
                    model_name='quote',
                    name='customer',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='quotes', to='sla.customer'),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_indexes, create_indexes, elidable=False),
            ],
        ),
    ]
