"""The dashboard's Machines panel: per site, planned against measured power, devices online and faulted, and the
dispatch lag. Four queries whatever the fleet's size (sites with their plan, latest rollups, latest meter reads,
device counts) plus the newest round."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import F, QuerySet, Sum

from sites.models import SiteInventory

from .models import Device, DispatchRound, MeterReading, SiteTelemetryRollup

_PerSite = TypeVar("_PerSite", SiteTelemetryRollup, MeterReading)


def _latest_per_site(queryset: QuerySet[_PerSite], order: str) -> dict[int, _PerSite]:
    latest: dict[int, _PerSite] = {}
    for row in queryset.order_by("site_id", order).distinct("site_id") if _postgres() else queryset.order_by(order):
        latest.setdefault(row.site_id, row)
    return latest


def _postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def machines_panel() -> dict:
    counts = {row["site_id"]: row for row in Device.objects.status_counts()}
    if not counts:
        return {"sites": [], "round": None}
    codes = dict(Device.objects.order_by().values_list("site_id", "site__code").distinct())
    planned = dict(
        SiteInventory.objects.filter(site_id__in=counts)
        .order_by()
        .values_list("site_id")
        .annotate(kw=Sum(F("units_running") * F("hardware_model__power_kw_per_unit")))
    )
    rollups = _latest_per_site(SiteTelemetryRollup.objects.filter(site_id__in=counts), "-bucket_start")
    meters = _latest_per_site(MeterReading.objects.filter(site_id__in=counts), "-observed_at")
    latest = DispatchRound.objects.order_by("-started_at", "-id").first()
    sites = []
    for site_id in sorted(counts, key=lambda pk: codes[pk]):
        rollup, meter, count = rollups.get(site_id), meters.get(site_id), counts[site_id]
        sites.append(
            {
                "site": codes[site_id],
                "planned_it_kw": round(float(planned.get(site_id) or 0), 1),
                "measured_it_kw": round(rollup.device_power_kw, 1) if rollup else None,
                "meter_kw": round(float(meter.power_kw), 1) if meter else None,
                "devices": count["total"],
                "online": count["online"],
                "faulted": count["faulted"],
                "offline": count["offline"],
                "last_round": (latest.summary or {}).get(codes[site_id]) if latest else None,
            }
        )
    round_ = None
    if latest:
        round_ = {
            "id": latest.pk,
            "trigger": latest.trigger,
            "finished_at": latest.finished_at.isoformat() if latest.finished_at else None,
            "seconds": round((latest.finished_at - latest.started_at).total_seconds(), 1)
            if latest.finished_at
            else None,
            "lag_seconds": round(latest.lag_seconds, 1) if latest.lag_seconds is not None else None,
            "dry_run": latest.dry_run,
        }
    return {"sites": sites, "round": round_}
