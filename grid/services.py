"""Writes of grid programs: events created and moved along their lifecycle, enrollments, and settlement.

Every writer (admin, API, the peak predictor, the OpenADR VEN, tasks) goes through these functions, so an event is
checked by the same rules wherever it comes from:
- the program is active and each site is enrolled in it for the whole event, in the program's market;
- the event lasts between the program's minimum and maximum length, and the program's monthly event cap holds;
- a reduction "by" X cannot exceed what the site committed;
- the program's baseline can be computed for each site (the high 5 of 10 needs 5 like days of load history).
An event is `notified` when created, `active` from its start (task `start_grid_events`), `completed` at its end
(task `complete_grid_events`, which settles it) or `cancelled` before. Each change sends `grid_event_changed`
after commit, which the optimizer turns into a re-plan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core import lifecycle
from core.auth import signed_in
from core.lifecycle import record_transition
from sites.models import Site

from .baselines import (
    LOOKBACK_DAYS,
    BaselineUnavailable,
    high_5_of_10,
    load_source,
    measured_mean_kw,
    public_holidays,
)
from .choices import BaselineMethod, EventSource, EventStatus, PaymentBasis, ReductionMode
from .models import Enrollment, EventPerformance, GridEvent, GridProgram
from .signals import grid_event_changed

logger = logging.getLogger(__name__)
ZERO = Decimal("0")
CENTS = Decimal("0.01")


class GridRefused(ValueError):
    """A write breaks a rule of its program; `errors` maps a field to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))


class IllegalTransition(lifecycle.IllegalTransition):
    """The grid-event state machine does not allow this move."""


@dataclass(frozen=True)
class EventRequest:
    """What a writer asks for; validated by `create_grid_event`."""

    program: GridProgram
    sites: tuple[Site, ...]
    starts_at: datetime
    ends_at: datetime
    reduction_kw: Decimal
    reduction_mode: str = ReductionMode.BY
    source: str = EventSource.STAFF
    notified_at: datetime | None = None
    external_id: str = ""


def _check_window(request: EventRequest, now: datetime, errors: dict[str, list[str]]) -> None:
    program = request.program
    notified = request.notified_at or now
    if request.ends_at <= request.starts_at:
        errors.setdefault("ends_at", []).append("An event must end after it starts.")
        return
    if request.starts_at < notified:
        errors.setdefault("starts_at", []).append("An event cannot start before it is notified.")
    minutes = (request.ends_at - request.starts_at).total_seconds() / 60
    if not program.min_event_minutes <= minutes <= program.max_event_minutes:
        errors.setdefault("ends_at", []).append(
            f"{program.code} events last {program.min_event_minutes}-{program.max_event_minutes} minutes, "
            f"not {minutes:g}."
        )
    if program.max_events_per_month is not None:
        month_start = request.starts_at.astimezone(UTC)
        called = (
            program.events.exclude(status=EventStatus.CANCELLED)
            .filter(starts_at__year=month_start.year, starts_at__month=month_start.month)
            .count()
        )
        if called >= program.max_events_per_month:
            errors.setdefault("starts_at", []).append(
                f"{program.code} allows {program.max_events_per_month} events a month; {called} are called."
            )


def _check_sites(request: EventRequest, errors: dict[str, list[str]]) -> dict[int, Decimal]:
    """Committed kW per site, for sites enrolled over the whole event (errors for the others)."""
    if not request.sites:
        errors.setdefault("sites", []).append("Name at least one site.")
        return {}
    committed = {
        row["site"]: row["mw"] * 1000
        for row in Enrollment.objects.filter(program=request.program, site__in=request.sites)
        .in_force(request.starts_at, request.ends_at)
        .order_by()
        .values("site")
        .annotate(mw=Sum("committed_mw"))
    }
    for site in request.sites:
        if site.pk not in committed:
            errors.setdefault("sites", []).append(f"{site.code} is not enrolled in {request.program.code} then.")
        elif request.reduction_mode == ReductionMode.BY and request.reduction_kw > committed[site.pk]:
            errors.setdefault("reduction_kw", []).append(
                f"{site.code} committed {committed[site.pk]:g} kW, less than the {request.reduction_kw:g} kW asked."
            )
    return committed


def check_event_request(request: EventRequest, *, now: datetime | None = None) -> dict[int, Decimal]:
    """Raise GridRefused with field messages when the request breaks a rule; returns committed kW per site."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    if not request.program.is_active:
        errors["program"] = [f"{request.program.code} is not active."]
    if request.reduction_kw < 0 or not Decimal(request.reduction_kw).is_finite():
        errors["reduction_kw"] = ["A reduction is a finite number of kW >= 0."]
    _check_window(request, now, errors)
    committed = _check_sites(request, errors)
    if errors:
        raise GridRefused(errors)
    return committed


def high_5_of_10_kw(site: Site, starts_at: datetime, ends_at: datetime) -> Decimal:
    """The site's high-5-of-10 baseline for an event over [starts_at, ends_at) (grid/baselines.py), from the
    registered load history; days of the site's other (not cancelled) events are not eligible, the public holidays
    of the site's country count as days off (like weekends). Raises BaselineUnavailable with too little history."""
    since = starts_at - timedelta(days=LOOKBACK_DAYS + 1)
    loads = load_source()(site, since, starts_at)
    tz = ZoneInfo(site.time_zone)
    event_days = {
        start.astimezone(tz).date()
        for start in GridEvent.objects.filter(sites=site, starts_at__gte=since, starts_at__lt=starts_at)
        .exclude(status=EventStatus.CANCELLED)
        .values_list("starts_at", flat=True)
    }
    off = public_holidays(site.country, since.astimezone(tz).date(), starts_at.astimezone(tz).date())
    baseline = high_5_of_10(loads, starts_at=starts_at, ends_at=ends_at, tz=tz, skip_days=event_days, holidays_off=off)
    return Decimal(repr(round(baseline.kw, 3)))


def site_baselines_kw(
    sites: Iterable[Site],
    *,
    method: str,
    committed_kw: Mapping[int, Decimal],
    window: tuple[datetime, datetime] | None = None,
) -> dict[int, Decimal]:
    """Baseline kW per site: the IT load running when notified, the enrollment's committed level, or the high 5
    of 10 like days over the event's ``window`` (GridRefused when a site has too little load history)."""
    sites = list(sites)
    if method == BaselineMethod.COMMITTED_LEVEL:
        return {site.pk: committed_kw.get(site.pk, ZERO) for site in sites}
    if method == BaselineMethod.HIGH_5_OF_10:
        if window is None:
            raise ValueError("the high 5 of 10 baseline needs the event's window")
        found, errors = {}, []
        for site in sites:
            try:
                found[site.pk] = high_5_of_10_kw(site, *window)
            except BaselineUnavailable as error:
                errors.append(f"{site.code}: {error}.")
        if errors:
            raise GridRefused({"sites": errors})
        return found
    running = dict(
        Site.objects.filter(pk__in=[s.pk for s in sites]).with_power_summary().values_list("pk", "running_kw")
    )
    return {site.pk: Decimal(running.get(site.pk) or 0).quantize(Decimal("0.001")) for site in sites}


def _announce(event: GridEvent) -> None:
    """After commit, tell the layers above (the optimizer re-plans); a failing receiver (a broker down) is logged:
    the event stands, and the next scheduled run plans it."""
    event_id, status = event.pk, event.status

    def send() -> None:
        for receiver, outcome in grid_event_changed.send_robust(sender=GridEvent, event_id=event_id, status=status):
            if isinstance(outcome, Exception):
                logger.error("A grid-event receiver (%s) failed for event %s", receiver, event_id, exc_info=outcome)

    transaction.on_commit(send)


@transaction.atomic
def create_grid_event(*, request: EventRequest, actor=None, now: datetime | None = None) -> GridEvent:
    """Store a notified event with a performance row (its baseline) per site, or raise GridRefused."""
    now = now or timezone.now()
    # Lock the program: two writers racing for the last event of a month serialize here.
    GridProgram.objects.select_for_update().filter(pk=request.program.pk).first()
    committed = check_event_request(request, now=now)
    baselines = site_baselines_kw(
        request.sites,
        method=request.program.baseline_method,
        committed_kw=committed,
        window=(request.starts_at, request.ends_at),
    )
    event = GridEvent(
        program=request.program,
        notified_at=request.notified_at or now,
        starts_at=request.starts_at,
        ends_at=request.ends_at,
        reduction_kw=Decimal(request.reduction_kw).quantize(Decimal("0.001")),
        reduction_mode=request.reduction_mode,
        source=request.source,
        external_id=request.external_id[:100],
        status_changed_at=now,
        created_by=signed_in(actor),
    )
    event._history_user = signed_in(actor)
    event.save()
    EventPerformance.objects.bulk_create(
        EventPerformance(event=event, site=site, baseline_kw=baselines[site.pk]) for site in request.sites
    )
    _announce(event)
    return event


@transaction.atomic
def transition_event(*, event: GridEvent, to_status: str, reason: str = "", actor=None) -> GridEvent:
    """Move an event along notified -> active -> completed (or cancelled), or raise IllegalTransition.

    The row is locked, so two workers racing the same move cannot both succeed; history keeps who and why.
    Completing an event settles it (`settle_event`).
    """
    locked = GridEvent.objects.select_for_update().select_related("program").get(pk=event.pk)
    if not locked.can_transition_to(to_status):
        now_status = locked.get_status_display().lower()
        raise IllegalTransition(f"Event {locked.pk} cannot go from {now_status} to {to_status}.")
    locked._history_user = signed_in(actor)
    record_transition(locked, to_status=to_status, reason=reason)
    if to_status == EventStatus.COMPLETED:
        settle_event(event=locked)
    _announce(locked)
    event.refresh_from_db()
    return event


def cancel_event(*, event: GridEvent, actor=None, reason: str = "") -> GridEvent:
    return transition_event(event=event, to_status=EventStatus.CANCELLED, actor=actor, reason=reason or "cancelled")


def _move_due(events, to_status: str, reason: str) -> int:
    moved = 0
    for event in events.only("pk"):
        try:
            transition_event(event=event, to_status=to_status, reason=reason)
        except IllegalTransition:
            continue  # another worker got there first, or it was cancelled in between
        moved += 1
    return moved


def start_due_events(*, now: datetime) -> int:
    """Activate every notified event whose start has come; returns how many."""
    return _move_due(GridEvent.objects.due_to_start(now), EventStatus.ACTIVE, "event window began")


def complete_due_events(*, now: datetime) -> int:
    """Complete (and settle) every active event whose end has come; returns how many."""
    return _move_due(GridEvent.objects.due_to_end(now), EventStatus.COMPLETED, "event window ended")


@transaction.atomic
def record_event_loads(*, event_id: int, planned_kw: Mapping[int, Decimal]) -> int:
    """Store the site load the applied plan draws during the event, per site id; returns rows updated."""
    updated = 0
    for site_id, kw in planned_kw.items():
        updated += EventPerformance.objects.filter(event_id=event_id, site_id=site_id).update(
            planned_kw=Decimal(kw).quantize(Decimal("0.001"))
        )
    return updated


def settle_performance(performance: EventPerformance, event: GridEvent, program: GridProgram) -> None:
    """Delivered reduction, payment and penalty of one site (pure; the caller saves).

    delivered kW = baseline - load; shortfall kW = load - cap (when positive); MWh = kW x event hours / 1000.
    Per-MWh programs pay the delivered MWh (up to the reduction asked) at `payment_rate`; capacity programs were
    paid for holding the MW, so an event adds only the penalty for a shortfall.
    """
    load = performance.load_kw
    if load is None:
        return
    hours = event.duration_hours
    cap = event.cap_kw(performance.baseline_kw)
    asked = max(ZERO, performance.baseline_kw - cap)
    delivered = max(ZERO, performance.baseline_kw - load)
    shortfall = max(ZERO, load - cap)
    paid_kw = min(delivered, asked)
    payment = paid_kw * hours / 1000 * program.payment_rate if program.payment_basis == PaymentBasis.PER_MWH else ZERO
    performance.delivered_reduction_kw = delivered.quantize(Decimal("0.001"))
    performance.payment_usd = payment.quantize(CENTS, rounding=ROUND_HALF_UP)
    performance.penalty_usd = (shortfall * hours / 1000 * program.penalty_usd_per_mwh).quantize(
        CENTS, rounding=ROUND_HALF_UP
    )
    performance.settled_at = timezone.now()


def settle_event(*, event: GridEvent) -> int:
    """Settle every site of an event that has a load (metered or planned); returns how many were settled.

    A site without a metered kW whose telemetry covers the whole event gets the measured mean IT kW as its
    metered kW first (`grid.baselines.measured_mean_kw`); otherwise it is settled on the applied plan's kW.
    """
    rows = list(event.performances.select_related("site"))
    for row in rows:
        if row.metered_kw is None:
            measured = measured_mean_kw(row.site, event.starts_at, event.ends_at)
            if measured is not None:
                row.metered_kw = Decimal(repr(round(measured, 3)))
        settle_performance(row, event, event.program)
    done = [row for row in rows if row.settled_at is not None]
    EventPerformance.objects.bulk_update(
        done, ["metered_kw", "delivered_reduction_kw", "payment_usd", "penalty_usd", "settled_at"], batch_size=200
    )
    return len(done)


@transaction.atomic
def enroll_site(*, site: Site, program: GridProgram, committed_mw: Decimal, starts_at: datetime, ends_at: datetime):
    """Enroll a site, refusing a market mismatch or an overlap with its other enrollment in the program."""
    errors: dict[str, list[str]] = {}
    if site.grid_region.upper() != program.market.upper():
        errors["site"] = [f"{site.code} is in {site.grid_region}, not {program.market}."]
    if ends_at <= starts_at:
        errors["ends_at"] = ["An enrollment must end after it starts."]
    if committed_mw <= 0:
        errors["committed_mw"] = ["Committed MW must be positive."]
    clash = Enrollment.objects.filter(site=site, program=program, starts_at__lt=ends_at, ends_at__gt=starts_at)
    if clash.exists():
        errors.setdefault("starts_at", []).append(f"{site.code} is already enrolled in {program.code} then.")
    if errors:
        raise GridRefused(errors)
    return Enrollment.objects.create(
        site=site, program=program, committed_mw=committed_mw, starts_at=starts_at, ends_at=ends_at
    )
