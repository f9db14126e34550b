"""The database refuses a placement holding more than its contract's capacity (a trigger on sla_placement).

A CHECK constraint cannot read another table, so the rule is a trigger, on PostgreSQL and on SQLite: the last
guard behind `sla.services.placements.check_placement`, which every writer (admin, admission, failover,
re-placement) goes through and which also checks the sum over concurrent placements and the site's SLA limit.
"""

from django.db import migrations

NAME = "sla_placement_within_contract"
MESSAGE = "A placement cannot hold more than the capacity of its contract."

POSTGRESQL = f"""
CREATE OR REPLACE FUNCTION {NAME}() RETURNS trigger AS $$
BEGIN
    IF NEW.capacity_kw > (SELECT capacity_kw FROM sla_contract WHERE id = NEW.contract_id) THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation', CONSTRAINT = '{NAME}';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""
POSTGRESQL_TRIGGER = f"""
CREATE TRIGGER {NAME} BEFORE INSERT OR UPDATE OF capacity_kw, contract_id ON sla_placement
    FOR EACH ROW EXECUTE FUNCTION {NAME}()
"""
POSTGRESQL_DROP = [f"DROP TRIGGER IF EXISTS {NAME} ON sla_placement", f"DROP FUNCTION IF EXISTS {NAME}()"]

SQLITE = [
    f"""
CREATE TRIGGER {NAME}_{event.split()[0].lower()} BEFORE {event} ON sla_placement
WHEN NEW.capacity_kw > (SELECT capacity_kw FROM sla_contract WHERE id = NEW.contract_id)
BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
"""
    for event in ("INSERT", "UPDATE OF capacity_kw, contract_id")
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {NAME}_{event}" for event in ("insert", "update")]


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL)
        schema_editor.execute(POSTGRESQL_TRIGGER)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for statement in POSTGRESQL_DROP:
            schema_editor.execute(statement)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("sla", "0006_contract_newest_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
