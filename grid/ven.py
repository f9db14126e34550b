"""The OpenADR 3 VEN: poll a VTN's programs and events, turn them into grid events, report performance back.

One `sync_with_vtn` per poll (task `grid.tasks.poll_openadr_vtn`, every minute when a VTN is configured):
1. register by name (`POST /vens` the first time);
2. for each VTN program whose `programName` is a GridProgram code (case-insensitive), read its events;
3. a new event becomes a GridEvent (source `openadr`, `external_id` = the VTN's event id) through
   `create_grid_event`, the rules of the admin and the API; a refused one is counted with its reason, never
   half-stored. Payload `IMPORT_CAPACITY_LIMIT` asks to reduce *to* a level, `DISPATCH_SETPOINT_RELATIVE` (a
   negative value) *by* an amount, in kW; the event's targets that are site codes choose the sites, otherwise
   every site enrolled in the program;
4. an open OpenADR event the VTN no longer lists was withdrawn: it is cancelled;
5. each completed, settled OpenADR event not yet reported is reported (`POST /reports`): per site, the
   BASELINE and the DEMAND it was settled on, in kW.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from sites.models import Site

from . import services
from .choices import EventSource, EventStatus, ReductionMode
from .clients.openadr import VtnClient
from .models import Enrollment, GridEvent, GridProgram

logger = logging.getLogger(__name__)
LIMIT_TYPES = {"IMPORT_CAPACITY_LIMIT": ReductionMode.TO, "DISPATCH_SETPOINT_RELATIVE": ReductionMode.BY}


@dataclass
class SyncReport:
    ven_id: str = ""
    created: list[int] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # VTN event id -> why
    cancelled: list[int] = field(default_factory=list)
    reported: list[int] = field(default_factory=list)
    unknown_programs: list[str] = field(default_factory=list)


def _reduction(event) -> tuple[str, Decimal] | None:
    for interval in event.intervals or ():
        for payload in interval.payloads:
            if payload.type in LIMIT_TYPES and payload.values:
                return LIMIT_TYPES[payload.type], abs(Decimal(str(payload.values[0])))
    return None


def _window(event) -> tuple[datetime, datetime] | None:
    intervals = event.resolved_intervals()
    periods = [i.interval_period.period for i in intervals if i.interval_period and i.interval_period.period]
    if not periods:
        return None
    start, end = min(p[0] for p in periods), max(p[1] for p in periods)
    return datetime.fromisoformat(start.isoformat()), datetime.fromisoformat(end.isoformat())


def _sites(event, program: GridProgram, start: datetime, end: datetime) -> tuple[Site, ...]:
    targets = {str(t) for t in event.targets or ()}
    enrolled = Site.objects.filter(
        pk__in=Enrollment.objects.filter(program=program).in_force(start, end).values("site")
    ).order_by("code")
    chosen = [site for site in enrolled if site.code in targets]
    return tuple(chosen or enrolled)


def _import_event(event, program: GridProgram, now: datetime, report: SyncReport) -> None:
    reduction, window = _reduction(event), _window(event)
    if reduction is None or window is None:
        report.refused[str(event.id)] = "no interval period or no IMPORT_CAPACITY_LIMIT/DISPATCH_SETPOINT_RELATIVE"
        return
    mode, kw = reduction
    request = services.EventRequest(
        program=program,
        sites=_sites(event, program, *window),
        starts_at=max(window[0], now),
        ends_at=window[1],
        reduction_kw=kw,
        reduction_mode=mode,
        source=EventSource.OPENADR,
        notified_at=now,
        external_id=str(event.id),
    )
    try:
        report.created.append(services.create_grid_event(request=request, now=now).pk)
    except services.GridRefused as refused:
        report.refused[str(event.id)] = str(refused)


def _report_body(event: GridEvent, vtn_program_id: str, ven_name: str) -> dict:
    resources = [
        {
            "resourceName": row.site.code,
            "intervals": [
                {
                    "id": 0,
                    "payloads": [
                        {"type": "BASELINE", "values": [float(row.baseline_kw)]},
                        {"type": "DEMAND", "values": [float(row.load_kw or 0)]},
                    ],
                }
            ],
        }
        for row in event.performances.select_related("site").order_by("site__code")
        if row.settled_at is not None
    ]
    return {
        "objectType": "REPORT",
        "programID": vtn_program_id,
        "eventID": event.external_id,
        "clientName": ven_name,
        "reportName": f"energyarb event {event.pk}",
        "resources": resources,
    }


def sync_with_vtn(*, client: VtnClient, now: datetime | None = None) -> SyncReport:
    """One poll of the VTN (see the module docstring); returns what it did."""
    now = now or timezone.now()
    report = SyncReport(ven_id=client.register())
    ours = {program.code.lower(): program for program in GridProgram.objects.filter(is_active=True)}
    vtn_ids: dict[int, str] = {}  # GridProgram pk -> the VTN's program id
    for vtn_program in client.programs():
        program = ours.get(vtn_program.program_name.lower())
        if program is None:
            report.unknown_programs.append(vtn_program.program_name)
            continue
        vtn_ids[program.pk] = str(vtn_program.id)
        listed = set()
        known = set(
            GridEvent.objects.filter(program=program, source=EventSource.OPENADR).values_list("external_id", flat=True)
        )
        for event in client.events(str(vtn_program.id)):
            listed.add(str(event.id))
            if str(event.id) not in known:
                _import_event(event, program, now, report)
        withdrawn = GridEvent.objects.open().filter(program=program, source=EventSource.OPENADR)
        for event in withdrawn.exclude(external_id__in=listed):
            services.cancel_event(event=event, reason="withdrawn by the VTN")
            report.cancelled.append(event.pk)
    due = GridEvent.objects.filter(
        source=EventSource.OPENADR, status=EventStatus.COMPLETED, reported_at__isnull=True, program__in=vtn_ids
    ).select_related("program")
    for settled in due:
        client.post_report(_report_body(settled, vtn_ids[settled.program_id], client.conf.ven_name))
        GridEvent.objects.filter(pk=settled.pk).update(reported_at=now)
        report.reported.append(settled.pk)
    return report
