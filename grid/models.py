"""Grid programs, the sites enrolled in them, the events they call and how each site performed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from core.lifecycle import LifecycleMixin
from sites.models import Site

from .choices import (
    ANCILLARY_KINDS,
    COINCIDENT_PEAK_KINDS,
    EVENT_TRANSITIONS,
    BaselineMethod,
    EventSource,
    EventStatus,
    PaymentBasis,
    ProgramKind,
    ReductionMode,
)
from .querysets import EnrollmentQuerySet, GridEventQuerySet

ZERO = Decimal("0")
MONEY: dict[str, Any] = {"max_digits": 14, "decimal_places": 4, "validators": [MinValueValidator(ZERO)]}
KW: dict[str, Any] = {"max_digits": 12, "decimal_places": 3}


class GridProgram(models.Model):
    """A grid program a site may enroll in: what it buys, how fast, how often, how it pays and penalises."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    market = models.CharField(max_length=40, help_text="Grid operator or market, e.g. ERCOT (Site.grid_region).")
    kind = models.CharField(max_length=10, choices=ProgramKind.choices)
    response_time_s = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Seconds from dispatch to full reduction."
    )
    notice_minutes = models.PositiveIntegerField(default=0, help_text="Lead time between notice and event start.")
    min_event_minutes = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])
    max_event_minutes = models.PositiveIntegerField(default=240, validators=[MinValueValidator(1)])
    max_events_per_month = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Events per calendar month; empty for no limit."
    )
    payment_basis = models.CharField(max_length=16, choices=PaymentBasis.choices)
    payment_rate = models.DecimalField(
        **MONEY,
        default=ZERO,
        help_text="USD per MW-year (fixed), per MWh (curtailed); ignored for the hourly clearing price.",
    )
    penalty_usd_per_mwh = models.DecimalField(**MONEY, default=ZERO, help_text="Per MWh of reduction not delivered.")
    baseline_method = models.CharField(
        max_length=20, choices=BaselineMethod.choices, default=BaselineMethod.LOAD_AT_NOTICE
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ("market", "code", "id")
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ProgramKind.values),
                name="%(app_label)s_%(class)s_kind_valid",
                violation_error_message="Unknown program kind.",
            ),
            models.CheckConstraint(
                condition=Q(min_event_minutes__lte=F("max_event_minutes")),
                name="%(app_label)s_%(class)s_event_length_ordered",
                violation_error_message="The minimum event length cannot exceed the maximum.",
            ),
            models.CheckConstraint(
                condition=Q(response_time_s__gte=1),
                name="%(app_label)s_%(class)s_response_positive",
                violation_error_message="The response time is at least one second.",
            ),
            models.CheckConstraint(
                condition=Q(payment_rate__gte=0, penalty_usd_per_mwh__gte=0),
                name="%(app_label)s_%(class)s_money_not_negative",
                violation_error_message="Payment and penalty cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.name}"

    @property
    def is_coincident_peak(self) -> bool:
        return self.kind in COINCIDENT_PEAK_KINDS

    @property
    def is_ancillary(self) -> bool:
        return self.kind in ANCILLARY_KINDS


class Enrollment(models.Model):
    """A site's commitment to a program: this many MW over [starts_at, ends_at)."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="enrollments")
    program = models.ForeignKey(GridProgram, on_delete=models.PROTECT, related_name="enrollments")
    committed_mw = models.DecimalField(
        max_digits=10, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))]
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = EnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ("-starts_at", "id")
        indexes = [models.Index(fields=("program", "starts_at", "ends_at"), name="grid_enrollment_window_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(committed_mw__gt=0),
                name="%(app_label)s_%(class)s_committed_positive",
                violation_error_message="Committed MW must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="%(app_label)s_%(class)s_ends_after_start",
                violation_error_message="An enrollment must end after it starts.",
            ),
            models.UniqueConstraint(
                fields=("site", "program", "starts_at"),
                name="%(app_label)s_%(class)s_unique_site_program_start",
                violation_error_message="This site is already enrolled in this program from this moment.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site_id} in {self.program_id}: {self.committed_mw} MW"

    def covers(self, start: datetime, end: datetime) -> bool:
        return self.starts_at <= start and end <= self.ends_at


class GridEvent(LifecycleMixin, models.Model):
    """A call to reduce load at some sites over [starts_at, ends_at), from staff, the predictor or a VTN."""

    TRANSITIONS = EVENT_TRANSITIONS  # its lifecycle (core.lifecycle)

    program = models.ForeignKey(GridProgram, on_delete=models.PROTECT, related_name="events")
    sites = models.ManyToManyField(Site, related_name="grid_events", through="EventPerformance")
    notified_at = models.DateTimeField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reduction_mode = models.CharField(max_length=2, choices=ReductionMode.choices, default=ReductionMode.BY)
    reduction_kw = models.DecimalField(
        **KW, validators=[MinValueValidator(ZERO)], help_text="Per site: reduce by this much, or to this level."
    )
    source = models.CharField(max_length=10, choices=EventSource.choices)
    external_id = models.CharField(max_length=100, blank=True, help_text="The VTN's event id (OpenADR).")
    status = models.CharField(max_length=10, choices=EventStatus.choices, default=EventStatus.NOTIFIED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reported_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When its performance was reported to the VTN (OpenADR)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = GridEventQuerySet.as_manager()

    class Meta:
        ordering = ("-starts_at", "-id")
        indexes = [models.Index(fields=("status", "starts_at", "ends_at"), name="grid_event_status_window_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="%(app_label)s_%(class)s_ends_after_start",
                violation_error_message="An event must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(starts_at__gte=F("notified_at")),
                name="%(app_label)s_%(class)s_notice_before_start",
                violation_error_message="An event is notified before it starts.",
            ),
            models.CheckConstraint(
                condition=Q(reduction_kw__gte=0),
                name="%(app_label)s_%(class)s_reduction_not_negative",
                violation_error_message="The requested reduction cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=EventStatus.values),
                name="%(app_label)s_%(class)s_status_valid",
                violation_error_message="Unknown event status.",
            ),
            models.UniqueConstraint(
                fields=("source", "external_id"),
                condition=~Q(external_id=""),
                name="%(app_label)s_%(class)s_unique_external_id",
                violation_error_message="This source already sent an event with this id.",
            ),
        ]

    def __str__(self) -> str:
        return f"Event {self.pk} ({self.program_id}, {self.starts_at:%Y-%m-%d %H:%M})"

    @property
    def duration_hours(self) -> Decimal:
        return Decimal((self.ends_at - self.starts_at).total_seconds()) / 3600

    @property
    def notice_seconds(self) -> float:
        return (self.starts_at - self.notified_at).total_seconds()

    def cap_kw(self, baseline_kw: Decimal) -> Decimal:
        """The most a site may draw during the event: baseline minus the reduction, or the level asked (pure)."""
        if self.reduction_mode == ReductionMode.TO:
            return self.reduction_kw
        return max(ZERO, baseline_kw - self.reduction_kw)


class EventPerformance(models.Model):
    """One site in one event: its baseline, what it drew (metered, or planned until metering exists), the
    reduction delivered and what it earned or owes."""

    event = models.ForeignKey(GridEvent, on_delete=models.CASCADE, related_name="performances")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="event_performances")
    baseline_kw = models.DecimalField(**KW, validators=[MinValueValidator(ZERO)])
    planned_kw = models.DecimalField(
        **KW, null=True, blank=True, help_text="IT kW the applied plan draws at the site in the event's first period."
    )
    metered_kw = models.DecimalField(
        **KW, null=True, blank=True, help_text="Measured IT kW at the site, mean over the event, when metered."
    )
    delivered_reduction_kw = models.DecimalField(**KW, null=True, blank=True)
    payment_usd = models.DecimalField(**MONEY, null=True, blank=True)
    penalty_usd = models.DecimalField(**MONEY, null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("event", "site", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("event", "site"),
                name="%(app_label)s_%(class)s_unique_event_site",
                violation_error_message="This site already has a performance record for this event.",
            ),
            models.CheckConstraint(
                condition=Q(baseline_kw__gte=0),
                name="%(app_label)s_%(class)s_baseline_not_negative",
                violation_error_message="A baseline cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"Event {self.event_id} @ {self.site_id}: baseline {self.baseline_kw} kW"

    @property
    def load_kw(self) -> Decimal | None:
        """The load the event is settled on: metered when there is a meter reading, else planned."""
        return self.metered_kw if self.metered_kw is not None else self.planned_kw
