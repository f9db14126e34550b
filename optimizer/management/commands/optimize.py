"""`manage.py optimize`: one optimization run now, in this process, through the same service as everything else."""

from django.core.management.base import BaseCommand, CommandError

from optimizer.choices import RunStatus, RunTrigger, Strategy
from optimizer.services import optimize_now


class Command(BaseCommand):
    help = "Run the optimizer once now and apply its plan (refused when inputs are stale)."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", choices=Strategy.values, default=Strategy.LP)

    def handle(self, *args, strategy, **options):
        run = optimize_now(trigger=RunTrigger.MANUAL, strategy=strategy)
        self.stdout.write(f"Run {run.pk}: {run.status}")
        if run.explanation:
            self.stdout.write(run.explanation)
        if run.status == RunStatus.FAILED:
            raise CommandError(run.error)
        if run.status == RunStatus.SKIPPED:
            self.stdout.write(self.style.WARNING(run.error))
