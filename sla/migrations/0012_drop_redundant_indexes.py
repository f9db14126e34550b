"""Drop the indexes no read needs (tests/sla/test_indexes.py): every one costs an insertion per row a purchase writes.

- sla_placement(site_id) and sla_quote(customer_id): sla_placement_site_window_idx (site, valid_from, valid_to) and
  sla_quote_customer_created_idx (customer, created_at) lead with the same column and serve the same lookups. Only
  the index is dropped (state: db_index=False): Django's AlterField would also drop and re-add the foreign key,
  re-checking every row of the table under lock.
- sla_historicalcontract's customer, tier and quote: history rows are read by contract id and date, never by these.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sites', '0003_real_markets'),
        ('sla', '0011_cancellation_terms'),
    ]

    operations = [
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
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='placement',
                    name='site',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='placements', to='sites.site'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "sla_placement_site_id_b864fd8f"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "sla_placement_site_id_b864fd8f" ON "sla_placement" ("site_id")',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='quote',
                    name='customer',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='quotes', to='sla.customer'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "sla_quote_customer_id_63059316"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "sla_quote_customer_id_63059316" ON "sla_quote" ("customer_id")',
                ),
            ],
        ),
    ]
