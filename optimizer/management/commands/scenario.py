"""`manage.py scenario heat-wave|follow-the-sun|maintenance|renewable`: run a demo scenario, print it, chart it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from optimizer.scenarios import SCENARIOS, ScenarioError, ScenarioResult, run_and_record
from optimizer.streams import STREAMS, profit


def format_table(result: ScenarioResult) -> str:
    """The before/after table as fixed-width text (numbers rounded for reading)."""

    def cell(value) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    header = list(result.columns)
    body = [[cell(row.get(column, "")) for column in header] for row in result.rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def write_chart(result: ScenarioResult, out_dir: Path) -> Path:
    """A PNG of ``result.chart`` (lines over hours, or grouped bars over sites); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    chart = result.chart
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result.scenario}-{result.start:%Y%m%dT%H%M}.png"
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    x = np.arange(len(chart["x"]))
    lines = chart["lines"]
    if chart.get("kind") == "bar":
        width = 0.8 / max(len(lines), 1)
        for i, (label, values) in enumerate(lines.items()):
            ax.bar(x + (i - (len(lines) - 1) / 2) * width, values, width, label=label)
    else:
        for label, values in lines.items():
            ax.plot(x, values, label=label, marker=".")
    ax.set_xticks(x, chart["x"], rotation=60 if len(x) > 8 else 0, fontsize=8)
    ax.set_title(chart["title"])
    ax.set_xlabel(chart["x_label"])
    ax.set_ylabel(chart["y_label"])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class Command(BaseCommand):
    help = "Run a demo scenario on a copy of the current state; print the before/after table and write a chart."

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=SCENARIOS)
        parser.add_argument("--site", help="site code (heat-wave: the hot site; maintenance: the site going down)")
        parser.add_argument("--delta-c", type=float, default=12.0, help="heat-wave: degC added (default 12)")
        parser.add_argument("--hours", type=int, help="length of the event (default 24; maintenance 6)")
        parser.add_argument("--carbon-price", type=float, default=80.0, help="renewable: USD per t CO2 (default 80)")
        parser.add_argument("--apply", action="store_true", help="maintenance: keep the failover (changes live data)")
        parser.add_argument("--out", type=Path, help="chart directory (default var/scenarios/)")

    def handle(self, *args, **options):
        name = options["scenario"]
        kwargs: dict = {}
        if options["hours"] is not None:
            kwargs["hours"] = options["hours"]
        if name in ("heat-wave", "maintenance") and options["site"]:
            kwargs["site"] = options["site"]
        if name == "heat-wave":
            kwargs["delta_c"] = options["delta_c"]
        if name == "renewable":
            kwargs["carbon_price_usd_per_t"] = options["carbon_price"]
        try:
            result = run_and_record(name, apply=options["apply"], **kwargs)
        except ScenarioError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.MIGRATE_HEADING(result.title))
        self.stdout.write(format_table(result))
        self.stdout.write("")
        for key, value in result.summary.items():
            shown = f"{value:,.2f}" if isinstance(value, float) else value
            self.stdout.write(f"  {key:<36} {shown}")
        self._write_streams(result)
        for note in result.notes:
            self.stdout.write(f"  note: {note}")
        path = write_chart(result, options["out"] or Path(settings.VAR_DIR) / "scenarios")
        self.stdout.write(self.style.SUCCESS(f"Chart: {path}  ({result.seconds:.1f} s)"))

    def _write_streams(self, result: ScenarioResult) -> None:
        """USD over the window by stream (optimizer/streams.py), one column per plan compared."""
        if not result.streams:
            return
        plans = list(result.streams)
        self.stdout.write(f"  {'USD by stream':<52}" + "".join(f"{plan:>20}" for plan in plans))
        for stream in STREAMS:
            values = "".join(f"{result.streams[plan][stream.key]:>20,.2f}" for plan in plans)
            self.stdout.write(f"  {stream.label:<52}{values}")
        totals = "".join(f"{profit(result.streams[plan]):>20,.2f}" for plan in plans)
        self.stdout.write(f"  {'= profit':<52}{totals}")
