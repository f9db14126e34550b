"""Staff admin for the commercial world: tiers and their credit schedules, customers, contracts, placements.

Committed kW lives here, not in the sites admin (sites must not know about sla): per tier and per customer the
capacity of active contracts, per contract the kW placed right now. Contract status moves only through the actions,
which call `sla.services` so the state machine is enforced and the history records who, when and why.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import Count, DecimalField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import ngettext

from sites.admin import AuditHistoryAdmin

from .choices import OPEN_CONTRACT_STATUSES, ContractStatus
from .models import Contract, Customer, Placement, ServiceCreditRule, Tier
from .services import IllegalTransition, approve_contract, reject_contract, terminate_contract

KW = DecimalField(max_digits=14, decimal_places=3)
ZERO_KW = Value(0, output_field=KW)


def _active_kw(prefix: str = "") -> Coalesce:
    """Sum of the capacity of active contracts reached through `prefix` (one join, grouped by the parent)."""
    return Coalesce(
        Sum(f"{prefix}capacity_kw", filter=Q(**{f"{prefix}status": ContractStatus.ACTIVE})),
        ZERO_KW,
        output_field=KW,
    )


class ServiceCreditRuleInline(admin.TabularInline):
    model = ServiceCreditRule
    fields = ("uptime_below_pct", "credit_pct")
    extra = 0


@admin.register(Tier)
class TierAdmin(AuditHistoryAdmin):
    list_display = (
        "name",
        "code",
        "priority",
        "uptime_target_pct",
        "price_multiplier",
        "is_preemptible",
        "min_sites",
        "requires_n_minus_1",
        "active_contracts",
        "committed_kw",
    )
    list_filter = ("is_preemptible", "requires_n_minus_1")
    search_fields = ("code", "name")
    inlines = (ServiceCreditRuleInline,)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_contract_count=Count("contracts", filter=Q(contracts__status=ContractStatus.ACTIVE)),
                committed_kw=_active_kw("contracts__"),
            )
        )

    @admin.display(description="Active contracts", ordering="active_contract_count")
    def active_contracts(self, obj: Tier) -> int:
        return obj.active_contract_count

    @admin.display(description="Committed kW (active)", ordering="committed_kw")
    def committed_kw(self, obj: Tier) -> str:
        return f"{obj.committed_kw:,.1f}"


@admin.register(ServiceCreditRule)
class ServiceCreditRuleAdmin(admin.ModelAdmin):
    list_display = ("tier", "uptime_below_pct", "credit_pct")
    list_filter = ("tier",)
    list_select_related = ("tier",)
    search_fields = ("tier__code", "tier__name")
    autocomplete_fields = ("tier",)


@admin.register(Customer)
class CustomerAdmin(AuditHistoryAdmin):
    list_display = ("name", "company", "user", "open_contracts", "committed_kw", "created_at")
    list_select_related = ("user",)
    search_fields = ("name", "company", "user__username", "user__email")
    autocomplete_fields = ("user",)
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_contract_count=Count("contracts", filter=Q(contracts__status__in=OPEN_CONTRACT_STATUSES)),
                committed_kw=_active_kw("contracts__"),
            )
        )

    @admin.display(description="Open contracts", ordering="open_contract_count")
    def open_contracts(self, obj: Customer) -> int:
        return obj.open_contract_count

    @admin.display(description="Committed kW (active)", ordering="committed_kw")
    def committed_kw(self, obj: Customer) -> str:
        return f"{obj.committed_kw:,.1f}"


class PlacementInline(admin.TabularInline):
    model = Placement
    fields = ("site", "capacity_kw", "valid_from", "valid_to", "reason")
    autocomplete_fields = ("site",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("site", "contract__tier")


@admin.register(Contract)
class ContractAdmin(AuditHistoryAdmin):
    list_display = (
        "__str__",
        "customer",
        "tier",
        "status",
        "capacity_kw",
        "placed_kw",
        "starts_at",
        "ends_at",
        "region_preference",
        "quoted_total_usd",
    )
    list_filter = ("status", "tier", "region_preference")
    list_select_related = ("customer", "tier")
    search_fields = ("=id", "customer__name", "customer__company", "customer__user__username")
    autocomplete_fields = ("customer", "tier")
    # Status changes only through the actions below, so the state machine (sla.services) is always enforced.
    readonly_fields = ("status", "status_changed_at", "status_reason", "created_at")
    date_hierarchy = "starts_at"
    inlines = (PlacementInline,)
    actions = ("approve", "reject", "terminate")
    history_list_display = ("status", "status_reason")

    def get_queryset(self, request):
        """Contracts with the kW placed at this moment (a correlated subquery per row, in the same query)."""
        placed_now = (
            Placement.objects.current(timezone.now())
            .filter(contract=OuterRef("pk"))
            .order_by()
            .values("contract")
            .annotate(total=Sum("capacity_kw"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(placed_kw_now=Coalesce(Subquery(placed_now, output_field=KW), ZERO_KW, output_field=KW))
        )

    @admin.display(description="Placed kW now", ordering="placed_kw_now")
    def placed_kw(self, obj: Contract) -> str:
        return f"{obj.placed_kw_now:,.1f}"

    def _transition_selected(
        self, request, queryset, *, service: Callable[..., Contract], done: str, refused: str
    ) -> None:
        succeeded = failed = 0
        for contract in queryset:
            try:
                service(contract=contract, actor=request.user)
            except IllegalTransition as exc:
                failed += 1
                self.message_user(request, f"{contract} was not {refused}: {exc}", messages.WARNING)
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, ngettext("%d contract %s.", "%d contracts %s.", succeeded) % (succeeded, done))
        if failed:
            self.message_user(
                request,
                ngettext("%d contract refused.", "%d contracts refused.", failed) % failed,
                messages.WARNING,
            )

    @admin.action(description="Approve selected contracts", permissions=("change",))
    def approve(self, request, queryset):
        self._transition_selected(request, queryset, service=approve_contract, done="approved", refused="approved")

    @admin.action(description="Reject selected contracts", permissions=("change",))
    def reject(self, request, queryset):
        self._transition_selected(request, queryset, service=reject_contract, done="rejected", refused="rejected")

    @admin.action(description="Terminate selected contracts", permissions=("change",))
    def terminate(self, request, queryset):
        self._transition_selected(
            request, queryset, service=terminate_contract, done="terminated", refused="terminated"
        )


class CurrentPlacementFilter(admin.SimpleListFilter):
    title = "current"
    parameter_name = "current"

    def lookups(self, request, model_admin):
        return (("yes", "Running now"), ("no", "Ended or not started"))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.current(now)
        if self.value() == "no":
            return queryset.exclude(pk__in=Placement.objects.current(now).values("pk"))
        return queryset


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ("contract", "customer", "site", "capacity_kw", "valid_from", "valid_to", "reason")
    list_filter = (CurrentPlacementFilter, "site", "contract__tier")
    list_select_related = ("contract__customer", "contract__tier", "site")
    search_fields = ("=contract__id", "contract__customer__name", "site__code", "site__name", "reason")
    autocomplete_fields = ("contract", "site")
    date_hierarchy = "valid_from"

    @admin.display(description="Customer", ordering="contract__customer__name")
    def customer(self, obj: Placement):
        return obj.contract.customer
