"""Backtest the 4CP peak predictor on a system-load CSV: peaks caught and hours curtailed per summer."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from grid.peaks import PeakPredictor, evaluate, out_of_sample, out_of_sample_lines, read_load_csv


class Command(BaseCommand):
    help = (
        "Replay the ERCOT 4CP peak predictor over an hourly system-load CSV (shared tidy format) and print, per "
        "summer, the monthly peaks caught and the hours curtailed, against the naive weekday 15-18 h rule."
    )

    def add_arguments(self, parser):
        parser.add_argument("--load", required=True, help="CSV with timestamp_utc and the load column.")
        parser.add_argument("--column", default="load_ercot_mw", help="Load column (default load_ercot_mw).")
        parser.add_argument("--naive-threshold-mw", type=float, default=70000.0)
        parser.add_argument("--json", action="store_true", help="Print a JSON document instead of the table.")
        parser.add_argument(
            "--out-of-sample",
            action="store_true",
            help="Also fit the parameters on each summer alone (grid.peaks.PARAMETER_GRID), judge them on the others.",
        )

    def handle(self, *args, **options):
        try:
            series = read_load_csv(options["load"], options["column"])
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from None
        results = evaluate(series, predictor=PeakPredictor(), naive_threshold_mw=options["naive_threshold_mw"])
        if not results:
            raise CommandError("The file covers no whole summer (June-September).")
        checks = out_of_sample(series) if options["out_of_sample"] else None
        if options["json"]:
            document = {
                "predictor": PeakPredictor().__dict__,
                "naive_threshold_mw": options["naive_threshold_mw"],
                "summers": [
                    {
                        "year": r.year,
                        "peaks": r.peaks,
                        "predictor": {"caught": r.predictor_caught, "hours_curtailed": r.predictor_hours},
                        "naive": {"caught": r.naive_caught, "hours_curtailed": r.naive_hours},
                    }
                    for r in results
                ],
            }
            if checks is not None:
                document["out_of_sample"] = checks
            self.stdout.write(json.dumps(document, indent=2))
            return
        self.stdout.write(f"{'summer':<8}{'predictor caught':>18}{'hours':>8}{'naive caught':>15}{'hours':>8}")
        for r in results:
            self.stdout.write(
                f"{r.year:<8}{f'{r.predictor_caught}/4':>18}{r.predictor_hours:>8}"
                f"{f'{r.naive_caught}/4':>15}{r.naive_hours:>8}"
            )
            for peak in r.peaks:
                marks = ("predictor " if peak["predictor"] else "") + ("naive" if peak["naive"] else "")
                self.stdout.write(
                    f"  peak {peak['interval_start_central'][:16]} CT {peak['load_mw']:>9,.0f} MW  caught by: "
                    f"{marks.strip() or 'none'}"
                )
        if checks is not None:
            for line in out_of_sample_lines(checks):
                self.stdout.write(line)
