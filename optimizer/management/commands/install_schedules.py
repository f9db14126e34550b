"""`manage.py install_schedules`: put the default periodic tasks into django-celery-beat (idempotent)."""

from django.core.management.base import BaseCommand

from core.schedules import install_default_schedules


class Command(BaseCommand):
    help = "Install the default Celery beat schedules; existing entries edited by staff are kept."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Restore defaults over staff edits.")

    def handle(self, *args, reset=False, **options):
        for name, outcome in install_default_schedules(reset=reset).items():
            self.stdout.write(f"{name}: {outcome}")
