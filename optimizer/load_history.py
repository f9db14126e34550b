"""A site's past IT load per 5-minute interval, for grid baselines (``grid.baselines.LoadSource``).

Measured where fleet telemetry has a rollup of the interval (``fleet.SiteTelemetryRollup.device_power_kw``: the
site's devices' own power reads, IT kW, averaged over the interval's polls); elsewhere planned: the IT kW of the
applied optimization run in force at the interval's start (the newest applied run finished at or before it).
Intervals before any applied run and without a rollup are absent (unknown, so not part of a baseline). The site
meter's reading (``meter_power_kw``) is facility kW, cooling included; baselines, plans and event caps are in IT kW
(the engine applies the PUE), so it is not mixed in.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime

from django.db.models import Sum

from fleet.models import SiteTelemetryRollup
from grid.baselines import STEP
from sites.models import Site
from sites.simulation import floor_to_step

from .models import Allocation, OptimizationRun


def _planned_steps(site: Site, start: datetime, end: datetime) -> tuple[list[datetime], list[float]]:
    """Applied runs finished before ``end``, from the last one at or before ``start`` on: (finish times, the
    site's IT kW in each; 0 where a run ran nothing there)."""
    applied = OptimizationRun.objects.filter(is_applied=True, finished_at__isnull=False)
    last_before = applied.filter(finished_at__lte=start).order_by("-finished_at").values_list("finished_at", flat=True)
    since = last_before.first() or start
    runs: list[tuple[int, datetime]] = [
        (pk, finished)
        for pk, finished in applied.filter(finished_at__gte=since, finished_at__lt=end)
        .order_by("finished_at")
        .values_list("pk", "finished_at")
        if finished is not None
    ]
    site_kw = dict(
        Allocation.objects.filter(site=site, run_id__in=[pk for pk, _ in runs])
        .order_by()
        .values_list("run_id")
        .annotate(kw=Sum("it_power_kw"))
    )
    return [finished for _, finished in runs], [float(site_kw.get(pk) or 0) for pk, _ in runs]


def site_measured_it_load(site: Site, start: datetime, end: datetime) -> dict[datetime, float]:
    """{interval start (UTC): IT kW} of ``site`` over [start, end) where fleet telemetry has a rollup."""
    return dict(
        SiteTelemetryRollup.objects.filter(
            site=site, bucket_start__gte=floor_to_step(start), bucket_start__lt=end, samples__gt=0
        )
        .order_by()
        .values_list("bucket_start", "device_power_kw")
    )


def site_it_load(site: Site, start: datetime, end: datetime) -> dict[datetime, float]:
    """{interval start (UTC): IT kW} of ``site`` over [start, end), measured where telemetry has it, else planned."""
    first = floor_to_step(start)
    measured = site_measured_it_load(site, first, end)
    finished, planned = _planned_steps(site, first, end)
    loads: dict[datetime, float] = {}
    at = first
    while at < end:
        if at in measured:
            loads[at] = float(measured[at])
        else:
            i = bisect_right(finished, at)
            if i:
                loads[at] = planned[i - 1]
        at += STEP
    return loads
