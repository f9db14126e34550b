"""Decisions: optimization runs and the allocations they produce."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from core.auth import signed_in
from sites.models import HardwareModel, Site

from .choices import AdvisorStatus, RunStatus, RunTrigger, Scenario, Strategy
from .querysets import OptimizationRunQuerySet

ZERO = Decimal("0")
USD: dict[str, Any] = {"max_digits": 16, "decimal_places": 2, "null": True, "blank": True}


class OptimizationRun(models.Model):
    """One decision: the inputs seen, the plan chosen, its economics and why."""

    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    strategy = models.CharField(max_length=10, choices=Strategy.choices, default=Strategy.LP)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="optimization_runs"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="While running: its worker renews this; a run whose lease has expired is abandoned (worker died).",
    )
    solve_seconds = models.FloatField(null=True, blank=True)
    objective_usd_per_h = models.DecimalField(**USD)
    revenue_usd_per_h = models.DecimalField(**USD)
    energy_cost_usd_per_h = models.DecimalField(**USD)
    carbon_cost_usd_per_h = models.DecimalField(**USD)
    penalty_usd_per_h = models.DecimalField(**USD)
    is_applied = models.BooleanField(default=False, help_text="Its allocation was written to the sites.")
    inputs = models.JSONField(default=dict, blank=True, help_text="Snapshot of the inputs the run saw.")
    details = models.JSONField(default=dict, blank=True, help_text="Breakdown, binding constraints, changes.")
    explanation = models.TextField(blank=True)
    error = models.TextField(blank=True)
    advisor_status = models.CharField(max_length=14, choices=AdvisorStatus.choices, default=AdvisorStatus.NOT_REQUESTED)
    advisor_model = models.CharField(max_length=80, blank=True)
    advisor_narrative = models.TextField(blank=True, help_text="Claude's account of the plan.")
    advisor_proposal = models.JSONField(default=dict, blank=True, help_text="Adjustments Claude proposed.")
    advisor_verdict = models.TextField(blank=True, help_text="Why the proposal was applied or not.")
    advised_at = models.DateTimeField(null=True, blank=True)

    objects = OptimizationRunQuerySet.as_manager()

    class Meta:
        ordering = ("-queued_at", "-id")
        indexes = [models.Index(fields=("-queued_at",), name="optimizer_run_queued_idx")]
        constraints = [
            # The database, not a cache lock, guarantees one optimization at a time across all workers.
            models.UniqueConstraint(
                fields=("status",),
                condition=Q(status=RunStatus.RUNNING),
                name="%(app_label)s_%(class)s_one_running",
                violation_error_message="Another optimization is already running.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values),
                name="%(app_label)s_%(class)s_status_valid",
                violation_error_message="Unknown run status.",
            ),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(started_at__isnull=False, finished_at__gte=F("started_at")),
                name="%(app_label)s_%(class)s_finished_after_start",
                violation_error_message="A run finishes after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.strategy}, {self.status})"

    @property
    def profit_usd_per_h(self) -> Decimal | None:
        if self.revenue_usd_per_h is None or self.energy_cost_usd_per_h is None:
            return None
        costs = self.energy_cost_usd_per_h + (self.carbon_cost_usd_per_h or ZERO) + (self.penalty_usd_per_h or ZERO)
        return self.revenue_usd_per_h - costs

    @property
    def duration_seconds(self) -> float | None:
        if not (self.started_at and self.finished_at):
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Allocation(models.Model):
    """How many units of one hardware model a run decided to run at one site, with its economics."""

    run = models.ForeignKey(OptimizationRun, on_delete=models.CASCADE, related_name="allocations")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="allocations")
    hardware_model = models.ForeignKey(HardwareModel, on_delete=models.PROTECT, related_name="allocations")
    units_running = models.PositiveIntegerField()
    it_power_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(ZERO)])
    facility_power_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(ZERO)])
    revenue_usd_per_h = models.DecimalField(max_digits=14, decimal_places=4)
    energy_cost_usd_per_h = models.DecimalField(max_digits=14, decimal_places=4)

    class Meta:
        ordering = ("run", "site__code", "hardware_model__code", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("run", "site", "hardware_model"),
                name="%(app_label)s_%(class)s_unique_run_site_hardware",
                violation_error_message="This run already allocates this hardware at this site.",
            ),
            models.CheckConstraint(
                condition=Q(facility_power_kw__gte=F("it_power_kw")),
                name="%(app_label)s_%(class)s_facility_ge_it",
                violation_error_message="Facility power (IT x PUE) cannot be below IT power.",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.run_id}: {self.units_running} x {self.hardware_model_id} @ {self.site_id}"


class ScenarioRunManager(models.Manager["ScenarioRun"]):
    def record(self, *, result, options: dict, actor=None, started_at, finished_at) -> ScenarioRun:
        """Store ``result`` (a ScenarioResult) as the latest run of its scenario, replacing the previous one.

        One row per scenario: the dashboard shows the latest outcome of each, and a re-run overwrites it
        (an upsert on the unique scenario, so two runs finishing together leave one row, the later write).
        """
        data = result.to_dict()
        # jsonb keeps no key order: keep the order of the chart's lines (its legend) explicitly.
        chart = data.get("chart") or {}
        chart["line_order"] = list(chart.get("lines") or {})
        run, _ = self.update_or_create(
            scenario=result.scenario,
            defaults={
                "title": result.title[:200],
                "options": {key: value for key, value in options.items() if value is not None},
                "applied": result.applied,
                "started_at": started_at,
                "finished_at": finished_at,
                "requested_by": signed_in(actor),
                "result": data,
            },
        )
        return run


class ScenarioRun(models.Model):
    """The latest run of one demo scenario: its options, who ran it and when, and its result with chart series."""

    scenario = models.CharField(max_length=20, choices=Scenario.choices)
    title = models.CharField(max_length=200)
    options = models.JSONField(default=dict, blank=True, help_text="The options it ran with.")
    applied = models.BooleanField(default=False, help_text="Maintenance only: the failover was kept.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="scenario_runs"
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    result = models.JSONField(
        default=dict, blank=True, help_text="Before/after table, summary, chart series and notes (ScenarioResult)."
    )

    objects = ScenarioRunManager()

    class Meta:
        ordering = ("scenario",)
        constraints = [
            models.UniqueConstraint(
                fields=("scenario",),
                name="%(app_label)s_%(class)s_one_per_scenario",
                violation_error_message="This scenario already has a stored run.",
            ),
            models.CheckConstraint(
                condition=Q(scenario__in=Scenario.values),
                name="%(app_label)s_%(class)s_scenario_valid",
                violation_error_message="Unknown scenario.",
            ),
            models.CheckConstraint(
                condition=Q(finished_at__gte=F("started_at")),
                name="%(app_label)s_%(class)s_finished_after_start",
                violation_error_message="A scenario run finishes after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_scenario_display()}: {self.title}"
