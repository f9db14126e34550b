"""`manage.py seed_sites`: the ten sites, hardware, fleet inventory, SLA tiers and demo logins; idempotent."""

import os

from django.core.management.base import BaseCommand

from sites.seeding import seed_physical_world
from sla.services import ensure_user, seed_tiers


class Command(BaseCommand):
    help = "Seed the ten sites, the hardware catalogue and fleet, the SLA tiers and demo users (idempotent)."

    def handle(self, *args, **options):
        outcomes = seed_physical_world() + seed_tiers()
        for model in ("sites", "hardware models", "inventories", "tiers", "credit rules"):
            counts = {outcome: outcomes[model, outcome] for outcome in ("created", "updated", "unchanged")}
            self.stdout.write(
                f"{model:>16}: {counts['created']} created, {counts['updated']} updated, "
                f"{counts['unchanged']} unchanged"
            )
        staff = ensure_user(
            username=os.environ.get("SEED_STAFF_USERNAME", "admin"),
            password=os.environ.get("SEED_STAFF_PASSWORD"),
            staff=True,
        )
        demo = ensure_user(
            username=os.environ.get("SEED_CUSTOMER_USERNAME", "demo"),
            password=os.environ.get("SEED_CUSTOMER_PASSWORD"),
            staff=False,
            customer_name="Demo Customer",
        )
        for label, seeded in (("staff", staff), ("customer", demo)):
            if seeded.created:
                secret = f" password {seeded.password}" if seeded.password else " (password from environment)"
                self.stdout.write(self.style.WARNING(f"Created {label} user {seeded.username}:{secret}"))
                self.stdout.write(f"  API token for {seeded.username}: {seeded.token}")
        changed = sum(n for (_, outcome), n in outcomes.items() if outcome != "unchanged")
        if changed == 0 and not (staff.created or demo.created):
            self.stdout.write(self.style.SUCCESS("Already seeded: nothing changed."))
        else:
            self.stdout.write(self.style.SUCCESS("Seeded."))
