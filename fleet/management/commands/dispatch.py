"""`manage.py dispatch --once [--json]`: carry out the applied plan on the devices once and report per site."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from fleet.models import Device
from fleet.services import dispatch_round

COLUMNS = (
    "sent",
    "acknowledged",
    "observed",
    "faulted",
    "unreachable",
    "deferred",
    "held",
    "dry_run",
    "shortfall_units",
)


class Command(BaseCommand):
    help = "Send the applied plan's setpoints to the registered devices, read them back, and report per site."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One round, then exit (else every --every s).")
        parser.add_argument("--every", type=float, default=60.0, help="Seconds between rounds without --once.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the round as JSON.")
        parser.add_argument("--dry-run", action="store_true", help="Log the commands; send nothing.")

    def handle(self, *args, once=False, every=60.0, as_json=False, dry_run=False, **options):
        if not Device.objects.exists():
            raise CommandError("No devices are registered (see `manage.py fleet_simulator` or the admin's CSV import).")
        if every <= 0:
            raise CommandError("--every must be positive.")
        while True:
            round_ = dispatch_round(trigger="manual", dry_run=dry_run or None)
            self._report(round_, as_json=as_json)
            if once:
                return
            time.sleep(every)

    def _report(self, round_, *, as_json: bool) -> None:
        seconds = (round_.finished_at - round_.started_at).total_seconds()
        if as_json:
            payload = {
                "round": round_.pk,
                "dry_run": round_.dry_run,
                "seconds": round(seconds, 3),
                "sites": round_.summary,
            }
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self.stdout.write(f"Dispatch round {round_.pk} ({seconds:.1f} s){' [dry run]' if round_.dry_run else ''}")
        self.stdout.write(f"{'site':<20}" + "".join(f"{c:>14}" for c in COLUMNS))
        for site, counts in round_.summary.items():
            self.stdout.write(f"{site:<20}" + "".join(f"{counts.get(c, 0):>14}" for c in COLUMNS))
