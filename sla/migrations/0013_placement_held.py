"""Each placement carries two fields the database keeps: `held`, whether its contract holds capacity (status
requested or active: sla.choices.OPEN_CONTRACT_STATUSES), and `spot`, whether that contract's tier is preemptible.
Admission reads the peaks committed over a window on every quote and purchase; with these fields it reads the
placements alone, instead of joining each one to its contract and tier (docs/api-performance.md).

Triggers, on PostgreSQL and on SQLite, bind every writer, whatever it goes through (the ORM, the admin, bulk
inserts, loaddata, raw SQL):
- a placement written (INSERT, or UPDATE of contract_id, held or spot) takes both from its contract and tier, so a
  value written by hand (or a stale one an ORM save() writes back) is replaced;
- a contract inserted, or whose status or tier changes, updates its placements (a placement may be written before
  its contract in one transaction: the foreign key is checked at commit);
- a tier whose is_preemptible changes updates the placements of its contracts.
On PostgreSQL the placement's trigger reads its contract and tier FOR SHARE: a concurrent close of the contract or
toggle of the tier waits for the placement's transaction (then updates the new row), or the placement waits for
theirs (then reads the new values). SQLite has one writer at a time.

Order, on a live database (the migration is one transaction): the columns (ACCESS EXCLUSIVE on sla_placement until
commit: no placement is written meanwhile), the triggers (their locks hold back contract and tier updates until
commit), then the existing placements' values, from what is committed when that UPDATE starts. Only the rows whose
values are not the defaults (false, false) are written: the open book and the placements of Spot contracts (closed
ones too), not the rest of the history. The UPDATE still reads every placement and contract (a join over both
tables), so the lock is held for a time that grows with the tables, if more slowly than writing every row.
"""

from django.db import migrations, models

OPEN = "('requested', 'active')"  # sla.choices.OPEN_CONTRACT_STATUSES (tests/sla/test_placement_held.py)

POSTGRESQL = [
    "ALTER TABLE sla_placement ADD COLUMN held boolean NOT NULL DEFAULT false, "
    "ADD COLUMN spot boolean NOT NULL DEFAULT false",
    f"""
CREATE FUNCTION sla_placement_held() RETURNS trigger AS $$
BEGIN
    SELECT c.status IN {OPEN}, t.is_preemptible INTO NEW.held, NEW.spot
    FROM sla_contract c JOIN sla_tier t ON t.id = c.tier_id
    WHERE c.id = NEW.contract_id
    FOR SHARE OF c, t;
    -- no such contract yet (written later in this transaction: the foreign key is checked at commit): false,
    -- until the contract's insert trigger sets them
    NEW.held := coalesce(NEW.held, false);
    NEW.spot := coalesce(NEW.spot, false);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
""",
    "CREATE TRIGGER sla_placement_held BEFORE INSERT OR UPDATE OF contract_id, held, spot ON sla_placement "
    "FOR EACH ROW EXECUTE FUNCTION sla_placement_held()",
    f"""
CREATE FUNCTION sla_contract_placements_held() RETURNS trigger AS $$
BEGIN
    UPDATE sla_placement p SET held = NEW.status IN {OPEN}, spot = t.is_preemptible
    FROM sla_tier t
    WHERE t.id = NEW.tier_id AND p.contract_id = NEW.id
      AND (p.held, p.spot) IS DISTINCT FROM (NEW.status IN {OPEN}, t.is_preemptible);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
""",
    "CREATE TRIGGER sla_contract_placements_held AFTER UPDATE OF status, tier_id ON sla_contract FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.tier_id IS DISTINCT FROM NEW.tier_id) "
    "EXECUTE FUNCTION sla_contract_placements_held()",
    "CREATE TRIGGER sla_contract_placements_held_insert AFTER INSERT ON sla_contract FOR EACH ROW "
    "EXECUTE FUNCTION sla_contract_placements_held()",
    """
CREATE FUNCTION sla_tier_placements_spot() RETURNS trigger AS $$
BEGIN
    UPDATE sla_placement p SET spot = NEW.is_preemptible
    FROM sla_contract c
    WHERE c.tier_id = NEW.id AND p.contract_id = c.id AND p.spot IS DISTINCT FROM NEW.is_preemptible;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
""",
    "CREATE TRIGGER sla_tier_placements_spot AFTER UPDATE OF is_preemptible ON sla_tier FOR EACH ROW "
    "WHEN (OLD.is_preemptible IS DISTINCT FROM NEW.is_preemptible) EXECUTE FUNCTION sla_tier_placements_spot()",
    f"""
UPDATE sla_placement p SET held = c.status IN {OPEN}, spot = t.is_preemptible
FROM sla_contract c JOIN sla_tier t ON t.id = c.tier_id
WHERE c.id = p.contract_id AND (c.status IN {OPEN} OR t.is_preemptible)
""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS sla_tier_placements_spot ON sla_tier",
    "DROP FUNCTION IF EXISTS sla_tier_placements_spot()",
    "DROP TRIGGER IF EXISTS sla_contract_placements_held_insert ON sla_contract",
    "DROP TRIGGER IF EXISTS sla_contract_placements_held ON sla_contract",
    "DROP FUNCTION IF EXISTS sla_contract_placements_held()",
    "DROP TRIGGER IF EXISTS sla_placement_held ON sla_placement",
    "DROP FUNCTION IF EXISTS sla_placement_held()",
    "ALTER TABLE sla_placement DROP COLUMN IF EXISTS held, DROP COLUMN IF EXISTS spot",
]

# SQLite: a trigger cannot change NEW, so the placement's own triggers update the row just written (SQLite runs no
# trigger from its own body's writes unless recursive_triggers is on; the WHEN stops a second pass anyway).
HELD = f"coalesce((SELECT c.status IN {OPEN} FROM sla_contract c WHERE c.id = NEW.contract_id), 0)"
SPOT = (
    "coalesce((SELECT t.is_preemptible FROM sla_contract c JOIN sla_tier t ON t.id = c.tier_id "
    "WHERE c.id = NEW.contract_id), 0)"
)
CONTRACT_PLACEMENTS = (
    f"UPDATE sla_placement SET held = NEW.status IN {OPEN}, "
    "spot = (SELECT is_preemptible FROM sla_tier WHERE id = NEW.tier_id) WHERE contract_id = NEW.id;"
)
SQLITE = [
    "ALTER TABLE sla_placement ADD COLUMN held bool NOT NULL DEFAULT 0",
    "ALTER TABLE sla_placement ADD COLUMN spot bool NOT NULL DEFAULT 0",
    *(
        f"CREATE TRIGGER sla_placement_held_{name} AFTER {event} ON sla_placement "
        f"WHEN NEW.held IS NOT {HELD} OR NEW.spot IS NOT {SPOT} "
        f"BEGIN UPDATE sla_placement SET held = {HELD}, spot = {SPOT} WHERE id = NEW.id; END"
        for name, event in (("insert", "INSERT"), ("update", "UPDATE OF contract_id, held, spot"))
    ),
    f"CREATE TRIGGER sla_contract_placements_held_insert AFTER INSERT ON sla_contract BEGIN {CONTRACT_PLACEMENTS} END",
    "CREATE TRIGGER sla_contract_placements_held AFTER UPDATE OF status, tier_id ON sla_contract "
    "WHEN OLD.status IS NOT NEW.status OR OLD.tier_id IS NOT NEW.tier_id "
    f"BEGIN {CONTRACT_PLACEMENTS} END",
    "CREATE TRIGGER sla_tier_placements_spot AFTER UPDATE OF is_preemptible ON sla_tier "
    "WHEN OLD.is_preemptible IS NOT NEW.is_preemptible BEGIN UPDATE sla_placement SET spot = NEW.is_preemptible "
    "WHERE contract_id IN (SELECT id FROM sla_contract WHERE tier_id = NEW.id); END",
    f"""
UPDATE sla_placement SET
    held = (SELECT c.status IN {OPEN} FROM sla_contract c WHERE c.id = contract_id),
    spot = (SELECT t.is_preemptible FROM sla_contract c JOIN sla_tier t ON t.id = c.tier_id WHERE c.id = contract_id)
""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS sla_tier_placements_spot",
    "DROP TRIGGER IF EXISTS sla_contract_placements_held",
    "DROP TRIGGER IF EXISTS sla_contract_placements_held_insert",
    "DROP TRIGGER IF EXISTS sla_placement_held_update",
    "DROP TRIGGER IF EXISTS sla_placement_held_insert",
    "ALTER TABLE sla_placement DROP COLUMN spot",
    "ALTER TABLE sla_placement DROP COLUMN held",
]
HELD_HELP = "Its contract holds capacity (requested or active). Kept by the database (sla migration 0013)."
SPOT_HELP = "Its contract's tier is preemptible. Kept by the database (sla migration 0013)."
STATEMENTS = {"postgresql": (POSTGRESQL, POSTGRESQL_DROP), "sqlite": (SQLITE, SQLITE_DROP)}


def _run(schema_editor, forward: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(f"sla 0013: no triggers keeping Placement.held/spot on {vendor}")
    for statement in STATEMENTS[vendor][0 if forward else 1]:
        schema_editor.execute(statement)


def forward(apps, schema_editor):
    _run(schema_editor, forward=True)


def backward(apps, schema_editor):
    _run(schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [("sla", "0012_drop_redundant_indexes")]

    operations = [
        # The columns keep a database default (a row inserted by raw SQL without them gets false, then the
        # triggers' values), which the ORM's AddField would drop; and SQLite's AddField of a NOT NULL column
        # rebuilds the table, which drops its triggers (migration 0007's). So the columns are added here by SQL,
        # the fields to the models' state.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="placement",
                    name="held",
                    field=models.BooleanField(default=False, editable=False, help_text=HELD_HELP),
                ),
                migrations.AddField(
                    model_name="placement",
                    name="spot",
                    field=models.BooleanField(default=False, editable=False, help_text=SPOT_HELP),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
