"""Staff admin for decisions: optimization runs and their allocations, read-only.

Runs and allocations are written by the optimizer service only; staff read what was decided, its economics and
why. Profit and duration are annotated so the changelist can sort by them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.db.models import DecimalField, DurationField, ExpressionWrapper, F, Value
from django.db.models.functions import Coalesce
from django.utils.html import format_html

from sites.admin import SiteAdmin
from sites.models import Site

from .admin_tables import allocation_table, collapsed_json, inputs_tables
from .choices import RunStatus, RunTrigger
from .models import Allocation, OptimizationRun, ScenarioRun
from .services import request_optimization, start_site_maintenance

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _AllocationRow(TypedDict):
    """What `AllocationAdmin.get_queryset` annotates on each allocation: revenue less energy cost, USD/h."""

    margin_usd_per_h: Decimal


USD = DecimalField(max_digits=16, decimal_places=2)
ZERO_USD = Value(0, output_field=USD)


class ReadOnlyAdminMixin:
    """Decisions are facts: no add or change; deleting (pruning) stays possible for those allowed."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class AllocationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Allocation
    fields = (
        "site",
        "hardware_model",
        "units_running",
        "it_power_kw",
        "facility_power_kw",
        "revenue_usd_per_h",
        "energy_cost_usd_per_h",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("site", "hardware_model")


def _pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(OptimizationRun)
class OptimizationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "queued_at",
        "trigger",
        "strategy",
        "status",
        "is_applied",
        "revenue_usd_per_h",
        "energy_cost_usd_per_h",
        "profit",
        "duration",
        "solve_seconds",
        "requested_by",
    )
    list_filter = ("status", "trigger", "strategy", "is_applied", "advisor_status")
    list_select_related = ("requested_by",)
    actions = ("rerun_strategy", "ask_claude")
    search_fields = ("=id", "explanation", "error", "requested_by__username")
    date_hierarchy = "queued_at"
    show_full_result_count = False
    inlines = (AllocationInline,)
    fields = (
        ("trigger", "strategy", "status", "is_applied"),
        "requested_by",
        ("queued_at", "started_at", "finished_at"),
        ("duration", "solve_seconds"),
        ("revenue_usd_per_h", "energy_cost_usd_per_h", "carbon_cost_usd_per_h", "penalty_usd_per_h"),
        ("objective_usd_per_h", "profit"),
        "explanation",
        ("advisor_status", "advisor_model", "advised_at"),
        "advisor_narrative",
        "advisor_verdict",
        "advisor_proposal",
        "error",
        "allocation",
        "inputs_json",
        "details_json",
    )
    readonly_fields = (
        "advisor_status",
        "advisor_model",
        "advised_at",
        "advisor_narrative",
        "advisor_verdict",
        "advisor_proposal",
        "trigger",
        "strategy",
        "status",
        "is_applied",
        "requested_by",
        "queued_at",
        "started_at",
        "finished_at",
        "duration",
        "solve_seconds",
        "revenue_usd_per_h",
        "energy_cost_usd_per_h",
        "carbon_cost_usd_per_h",
        "penalty_usd_per_h",
        "objective_usd_per_h",
        "profit",
        "explanation",
        "error",
        "allocation",
        "inputs_json",
        "details_json",
    )

    def get_queryset(self, request):
        # profit = revenue - energy - carbon - penalty (USD/h); NULL when revenue or energy cost is unknown,
        # as OptimizationRun.profit_usd_per_h says.
        return (
            super()
            .get_queryset(request)
            .annotate(
                profit_usd_per_h_db=ExpressionWrapper(
                    F("revenue_usd_per_h")
                    - F("energy_cost_usd_per_h")
                    - Coalesce(F("carbon_cost_usd_per_h"), ZERO_USD)
                    - Coalesce(F("penalty_usd_per_h"), ZERO_USD),
                    output_field=USD,
                ),
                duration_db=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()),
            )
        )

    @admin.display(description="Profit USD/h", ordering="profit_usd_per_h_db")
    def changelist_view(self, request, extra_context=None):
        # The alert for a plan the guard refused: while the newest finished run is one, staff see why (one query).
        latest = OptimizationRun.objects.latest_finished()
        if latest is not None and latest.status == RunStatus.REJECTED:
            messages.warning(request, f"Run #{latest.pk} was not applied: {latest.error}")
        return super().changelist_view(request, extra_context)

    def profit(self, obj: OptimizationRun):
        value = obj.profit_usd_per_h
        return None if value is None else f"{value:,.2f}"

    @admin.display(description="Duration s", ordering="duration_db")
    def duration(self, obj: OptimizationRun):
        value = obj.duration_seconds
        return None if value is None else f"{value:.2f}"

    @admin.display(description="Inputs")
    def inputs_json(self, obj: OptimizationRun) -> str:
        return inputs_tables(obj.inputs)

    @admin.display(description="Allocation")
    def allocation(self, obj: OptimizationRun) -> str:
        return allocation_table(obj.allocations.select_related("site", "hardware_model"))

    @admin.display(description="Details")
    def details_json(self, obj: OptimizationRun) -> str:
        return collapsed_json(obj.details, "Raw details (JSON): site breakdown, binding constraints, commitments")

    @admin.action(description="Run the optimizer now with the selected runs' strategies")
    def rerun_strategy(self, request, queryset):
        strategies = sorted(set(queryset.values_list("strategy", flat=True)))
        for strategy in strategies:
            request_optimization(trigger=RunTrigger.ADMIN, strategy=strategy, actor=request.user)
        self.message_user(request, f"Queued {len(strategies)} optimization run(s): {', '.join(strategies)}.")

    @admin.action(description="Ask Claude to review the selected applied runs")
    def ask_claude(self, request, queryset):
        from .tasks import advise_optimization

        run_ids = list(queryset.filter(is_applied=True).values_list("pk", flat=True))
        for run_id in run_ids:
            advise_optimization.delay_on_commit(run_id)
        skipped = queryset.count() - len(run_ids)
        self.message_user(request, f"Asked Claude about {len(run_ids)} run(s); {skipped} not applied, skipped.")


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "run",
        "site",
        "hardware_model",
        "units_running",
        "it_power_kw",
        "facility_power_kw",
        "revenue_usd_per_h",
        "energy_cost_usd_per_h",
        "margin",
    )
    list_filter = ("hardware_model__kind", "site", "run__status")
    list_select_related = ("run", "site", "hardware_model")
    search_fields = ("=run__id", "site__code", "site__name", "hardware_model__code", "hardware_model__name")
    show_full_result_count = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                margin_usd_per_h=ExpressionWrapper(
                    F("revenue_usd_per_h") - F("energy_cost_usd_per_h"),
                    output_field=DecimalField(max_digits=15, decimal_places=4),
                )
            )
        )

    @admin.display(description="Margin USD/h", ordering="margin_usd_per_h")
    def margin(self, obj: WithAnnotations[Allocation, _AllocationRow]) -> str:
        return f"{obj.margin_usd_per_h:,.4f}"


@admin.register(ScenarioRun)
class ScenarioRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The latest run of each demo scenario, as the command, the API or the Scenarios page stored it."""

    list_display = ("scenario", "title", "finished_at", "duration", "applied", "requested_by")
    list_filter = ("scenario", "applied")
    list_select_related = ("requested_by",)
    search_fields = ("title", "requested_by__username")
    fields = (
        ("scenario", "applied"),
        "title",
        "requested_by",
        ("started_at", "finished_at", "duration"),
        "options_json",
        "summary_json",
        "result_json",
    )
    readonly_fields = (
        "scenario",
        "applied",
        "title",
        "requested_by",
        "started_at",
        "finished_at",
        "duration",
        "options_json",
        "summary_json",
        "result_json",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(duration_db=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
        )

    @admin.display(description="Duration s", ordering="duration_db")
    def duration(self, obj: ScenarioRun) -> str:
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f}"

    @admin.display(description="Options")
    def options_json(self, obj: ScenarioRun) -> str:
        return _pretty_json(obj.options)

    @admin.display(description="Summary")
    def summary_json(self, obj: ScenarioRun) -> str:
        return _pretty_json(obj.result.get("summary", {}))

    @admin.display(description="Result (table, chart series, notes)")
    def result_json(self, obj: ScenarioRun) -> str:
        return _pretty_json(obj.result)


# The site's maintenance action belongs to the whole fleet, not to `sites` alone: putting a site into maintenance
# moves its SLA placements elsewhere (sla) and re-plans the allocation (optimizer). `sites` cannot import those
# (dependencies point one way), so the action is completed here, at the top of the graph.
admin.site.unregister(Site)


@admin.register(Site)
class FleetSiteAdmin(SiteAdmin):
    @admin.action(description="Put into maintenance (fail over SLA placements, re-plan)", permissions=("change",))
    def put_into_maintenance(self, request, queryset):
        changed = unchanged = 0
        for site in queryset:
            report = start_site_maintenance(site=site, actor=request.user, reason="Put into maintenance from the admin")
            if report is None:
                unchanged += 1
                continue
            changed += 1
            self.message_user(request, f"{site.name}: {report}")
        self._report_status_changes(request, changed, unchanged, done="put into maintenance", already="in maintenance")
