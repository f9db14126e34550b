"""Create the default ERCOT grid programs (idempotent)."""

from django.core.management.base import BaseCommand

from grid.seeding import seed_programs


class Command(BaseCommand):
    help = "Create the default ERCOT grid programs (4CP, RRS, ECRS, Non-Spin, Reg-Up/Down, ERS-10/30, DR)."

    def handle(self, *args, **options):
        created = seed_programs()
        self.stdout.write(f"{created} grid programs created.")
