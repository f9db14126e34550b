"""A GiST index over each placement's window as a time range, for admission's overlap reads (PostgreSQL only).

`PlacementQuerySet.overlapping` compares `tstzrange(valid_from, valid_to, '[)')` with `&&` on PostgreSQL; this
index answers it without scanning every placement that starts before the window ends. Other databases keep the
B-tree indexes of 0003 (SQLite serves development and has no range types).
"""

from django.db import migrations

INDEX = "sla_placement_window_gist"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON sla_placement USING gist (tstzrange(valid_from, valid_to, '[)'))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("sla", "0004_placement_kind")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
