# The per-customer cap needs no schema. The cancellation policy is part of a quote's and a contract's terms:
# contracts and quotes written before it carry no fee (0 %), new ones the setting's (sla.models.cancellation_fee_pct_now).

import importlib
from decimal import Decimal

import django.core.validators
from django.db import migrations, models

import sla.models

# SQLite adds these NOT NULL columns by rebuilding sla_contract, which sla_placement's triggers (0007) name: they are
# dropped around the rebuild and created again.
TRIGGERS = importlib.import_module("sla.migrations.0007_placement_within_contract")


def drop_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        TRIGGERS.drop(apps, schema_editor)


def create_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        TRIGGERS.create(apps, schema_editor)


PCT_HELP = "Cancelling costs this % of the quoted total of the part of the window not yet served."
FEE_HELP = "What cancelling cost, set when the contract is cancelled (sla.capacity.cancellation_fee_usd)."
PCT_VALIDATORS = [
    django.core.validators.MinValueValidator(Decimal("0")),
    django.core.validators.MaxValueValidator(Decimal("100")),
]


def fee_pct(default):
    return models.DecimalField(
        decimal_places=2, default=default, help_text=PCT_HELP, max_digits=5, validators=PCT_VALIDATORS
    )


def fee_usd():
    return models.DecimalField(
        blank=True,
        decimal_places=2,
        editable=False,
        help_text=FEE_HELP,
        max_digits=16,
        null=True,
        validators=[django.core.validators.MinValueValidator(Decimal("0"))],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0010_delivery_in_force"),
    ]

    operations = [
        migrations.RunPython(drop_sqlite_triggers, create_sqlite_triggers, elidable=False),
        *(
            operation
            for model in ("contract", "historicalcontract", "quote")
            for operation in (
                migrations.AddField(model_name=model, name="cancellation_fee_pct", field=fee_pct(Decimal("0"))),
                migrations.AlterField(
                    model_name=model, name="cancellation_fee_pct", field=fee_pct(sla.models.cancellation_fee_pct_now)
                ),
            )
        ),
        *(
            migrations.AddField(model_name=model, name="cancellation_fee_usd", field=fee_usd())
            for model in ("contract", "historicalcontract")
        ),
        migrations.RunPython(create_sqlite_triggers, drop_sqlite_triggers, elidable=False),
    ]
