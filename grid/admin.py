"""Staff admin for grid programs: programs, enrollments, events (created and moved only through grid.services)
and each site's performance in an event."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import ngettext

from sites.admin import AuditHistoryAdmin
from sites.models import Site

from . import services
from .choices import EventSource, EventStatus
from .models import Enrollment, EventPerformance, GridEvent, GridProgram

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _EventTotals(TypedDict):
    """The totals `GridEventAdmin.get_queryset` annotates on each event."""

    n_sites: int
    paid: Decimal | None
    owed: Decimal | None


@admin.register(GridProgram)
class GridProgramAdmin(AuditHistoryAdmin):
    list_display = (
        "code",
        "name",
        "market",
        "kind",
        "response_time_s",
        "notice_minutes",
        "max_events_per_month",
        "payment_basis",
        "payment_rate",
        "penalty_usd_per_mwh",
        "is_active",
    )
    list_filter = ("market", "kind", "payment_basis", "is_active")
    search_fields = ("code", "name", "market")
    readonly_fields = ("created_at",)


class EnrollmentForm(forms.ModelForm):
    """Refuses a market mismatch or an overlapping enrollment, as `grid.services.enroll_site` does."""

    class Meta:
        model = Enrollment
        fields = ("site", "program", "committed_mw", "starts_at", "ends_at")

    def clean(self):
        data = super().clean()
        site, program = data.get("site"), data.get("program")
        if site and program and data.get("starts_at") and data.get("ends_at"):
            if site.grid_region.upper() != program.market.upper():
                raise ValidationError({"site": f"{site.code} is in {site.grid_region}, not {program.market}."})
            clash = Enrollment.objects.filter(
                site=site, program=program, starts_at__lt=data["ends_at"], ends_at__gt=data["starts_at"]
            ).exclude(pk=self.instance.pk)
            if clash.exists():
                raise ValidationError({"starts_at": f"{site.code} is already enrolled in {program.code} then."})
        return data


@admin.register(Enrollment)
class EnrollmentAdmin(AuditHistoryAdmin):
    form = EnrollmentForm
    list_display = ("site", "program", "committed_mw", "starts_at", "ends_at")
    list_filter = ("program", "site")
    search_fields = ("site__code", "program__code")
    list_select_related = ("site", "program")
    autocomplete_fields = ("site",)
    readonly_fields = ("created_at",)


class EventPerformanceInline(admin.TabularInline):
    model = EventPerformance
    fields = (
        "site",
        "baseline_kw",
        "planned_kw",
        "metered_kw",
        "delivered_reduction_kw",
        "payment_usd",
        "penalty_usd",
        "settled_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class GridEventForm(forms.ModelForm):
    """A new event, checked by the same rules as the API and the VEN (`grid.services.check_event_request`)."""

    event_sites = forms.ModelMultipleChoiceField(queryset=Site.objects.order_by("code"), label="Sites")

    class Meta:
        model = GridEvent
        fields = ("program", "starts_at", "ends_at", "reduction_mode", "reduction_kw")

    def request(self) -> services.EventRequest:
        data = self.cleaned_data
        return services.EventRequest(
            program=data["program"],
            sites=tuple(data["event_sites"]),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            reduction_kw=data["reduction_kw"],
            reduction_mode=data["reduction_mode"],
            source=EventSource.STAFF,
        )

    def clean(self):
        data = super().clean()
        needed = ("program", "event_sites", "starts_at", "ends_at", "reduction_kw", "reduction_mode")
        if all(data.get(name) is not None for name in needed):
            try:
                services.check_event_request(self.request())
            except services.GridRefused as refused:
                names = {"sites": "event_sites"}
                raise ValidationError({names.get(k, k): v for k, v in refused.errors.items()}) from None
        return data


@admin.register(GridEvent)
class GridEventAdmin(AuditHistoryAdmin):
    list_display = (
        "id",
        "program",
        "status",
        "source",
        "notified_at",
        "starts_at",
        "ends_at",
        "reduction_mode",
        "reduction_kw",
        "site_count",
        "payment",
        "penalty",
    )
    list_filter = ("status", "source", "program")
    search_fields = ("external_id", "program__code", "sites__code")
    list_select_related = ("program",)
    date_hierarchy = "starts_at"
    inlines = (EventPerformanceInline,)
    actions = ("start", "complete", "cancel")
    readonly_fields = (
        "program",
        "notified_at",
        "starts_at",
        "ends_at",
        "reduction_mode",
        "reduction_kw",
        "source",
        "external_id",
        "status",
        "status_changed_at",
        "status_reason",
        "created_by",
        "created_at",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_sites=Count("performances", distinct=True),
                paid=Sum("performances__payment_usd"),
                owed=Sum("performances__penalty_usd"),
            )
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = GridEventForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:  # every field is read-only once created; status moves through the actions
            return
        event = services.create_grid_event(request=form.request(), actor=request.user)
        obj.pk = obj.id = event.pk
        obj.status, obj.notified_at, obj.source = event.status, event.notified_at, event.source

    def save_related(self, request, form, formsets, change):
        """The sites were stored with their baselines by the service."""

    @admin.display(description="sites", ordering="n_sites")
    def site_count(self, obj: WithAnnotations[GridEvent, _EventTotals]) -> int:
        return obj.n_sites

    @admin.display(description="payment USD", ordering="paid")
    def payment(self, obj: WithAnnotations[GridEvent, _EventTotals]) -> Decimal | None:
        return obj.paid

    @admin.display(description="penalty USD", ordering="owed")
    def penalty(self, obj: WithAnnotations[GridEvent, _EventTotals]) -> Decimal | None:
        return obj.owed

    def _move(self, request, queryset, to_status: str, verb: str) -> None:
        moved, refused = 0, []
        for event in queryset.order_by("pk"):
            try:
                services.transition_event(
                    event=event, to_status=to_status, actor=request.user, reason=f"{verb} by staff"
                )
            except services.IllegalTransition as error:
                refused.append(str(error))
                continue
            moved += 1
        self.message_user(request, ngettext("%d event %s.", "%d events %s.", moved) % (moved, verb))
        for message in refused:
            self.message_user(request, message, level=messages.WARNING)

    @admin.action(description="Start selected events now", permissions=("change",))
    def start(self, request, queryset):
        self._move(request, queryset, EventStatus.ACTIVE, "started")

    @admin.action(description="Complete and settle selected events", permissions=("change",))
    def complete(self, request, queryset):
        self._move(request, queryset, EventStatus.COMPLETED, "completed")

    @admin.action(description="Cancel selected events", permissions=("change",))
    def cancel(self, request, queryset):
        self._move(request, queryset, EventStatus.CANCELLED, "cancelled")


@admin.register(EventPerformance)
class EventPerformanceAdmin(admin.ModelAdmin):
    list_display = (
        "event",
        "site",
        "baseline_kw",
        "planned_kw",
        "metered_kw",
        "delivered_reduction_kw",
        "payment_usd",
        "penalty_usd",
        "settled_at",
    )
    list_filter = ("event__program", "site")
    search_fields = ("site__code", "event__external_id")
    list_select_related = ("event", "event__program", "site")
    readonly_fields = (
        "event",
        "site",
        "baseline_kw",
        "planned_kw",
        "delivered_reduction_kw",
        "payment_usd",
        "penalty_usd",
        "settled_at",
    )
    fields = (*readonly_fields[:4], "metered_kw", *readonly_fields[4:])

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        """A meter reading typed in by staff re-settles the site if its event has completed."""
        super().save_model(request, obj, form, change)
        if obj.event.status == EventStatus.COMPLETED:
            services.settle_performance(obj, obj.event, obj.event.program)
            obj.settled_at = obj.settled_at or timezone.now()
            obj.save()
