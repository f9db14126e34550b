"""Each placement carries two columns the database keeps (PostgreSQL only): `held`, whether its contract holds
capacity (status requested or active: sla.choices.OPEN_CONTRACT_STATUSES), and `spot`, whether that contract's
tier is preemptible. Admission reads the peaks committed over a window on every quote and purchase; with these
columns it reads the placements alone, instead of joining each one to its contract and tier (docs/api-performance.md).

Triggers bind every writer, whatever it goes through (the ORM, the admin, bulk inserts, raw SQL):
- a placement written (INSERT, or UPDATE of contract_id, held or spot) takes both from its contract and tier, so a
  value written by hand is replaced;
- a contract whose status or tier changes updates its placements;
- a tier whose is_preemptible changes updates the placements of its contracts.
They are not in the model: nothing in Python reads or writes them (`PlacementQuerySet.holding`).

Order, on a live database (the migration is one transaction): the columns (ACCESS EXCLUSIVE on sla_placement until
commit: no placement is written meanwhile), the triggers (their locks hold back contract and tier updates until
commit), then the existing placements' values, from what is committed when that UPDATE starts. Only the rows
whose values are not the defaults (false, false) are written: the open book and Spot's placements, not the
history of closed contracts, so the lock on sla_placement is held for a time that does not grow with the history.
"""

from django.db import migrations

OPEN = "('requested', 'active')"  # sla.choices.OPEN_CONTRACT_STATUSES (tests/sla/test_placement_held.py)

FORWARD = [
    "ALTER TABLE sla_placement ADD COLUMN held boolean NOT NULL DEFAULT false, "
    "ADD COLUMN spot boolean NOT NULL DEFAULT false",
    f"""
CREATE FUNCTION sla_placement_held() RETURNS trigger AS $$
BEGIN
    SELECT c.status IN {OPEN}, t.is_preemptible INTO NEW.held, NEW.spot
    FROM sla_contract c JOIN sla_tier t ON t.id = c.tier_id
    WHERE c.id = NEW.contract_id;
    NEW.held := coalesce(NEW.held, false);  -- no such contract: the foreign key refuses the row anyway
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
BACKWARD = [
    "DROP TRIGGER IF EXISTS sla_tier_placements_spot ON sla_tier",
    "DROP FUNCTION IF EXISTS sla_tier_placements_spot()",
    "DROP TRIGGER IF EXISTS sla_contract_placements_held ON sla_contract",
    "DROP FUNCTION IF EXISTS sla_contract_placements_held()",
    "DROP TRIGGER IF EXISTS sla_placement_held ON sla_placement",
    "DROP FUNCTION IF EXISTS sla_placement_held()",
    "ALTER TABLE sla_placement DROP COLUMN IF EXISTS held, DROP COLUMN IF EXISTS spot",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("sla", "0012_drop_redundant_indexes")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
