"""Staff admin for the commercial world: tiers and their credit schedules, customers, contracts, placements.

Committed kW lives here, not in the sites admin (sites must not know about sla): per tier and per customer the
capacity of active contracts, per contract the kW placed right now. Contract status moves only through the actions,
which call `sla.services` so the state machine is enforced and the history records who, when and why.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, DecimalField, ExpressionWrapper, Q, Sum, Value
from django.db.models.functions import Coalesce, Least, NullIf
from django.utils import timezone
from django.utils.translation import ngettext

from sites.admin import AuditHistoryAdmin

from .choices import OPEN_CONTRACT_STATUSES, ContractStatus
from .models import (
    Contract,
    ContractDelivery,
    Customer,
    Downtime,
    Placement,
    PreemptionNotice,
    Quote,
    ServiceCredit,
    ServiceCreditRule,
    Tier,
)
from .querysets import KW
from .services import (
    IllegalTransition,
    PlacementRefused,
    approve_contract,
    check_placement,
    contract_cap_refusal,
    reject_contract,
    terminate_contract,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _TierRow(TypedDict):
    """What `TierAdmin.get_queryset` annotates on each tier."""

    active_contract_count: int
    committed_kw: Decimal


class _CustomerRow(TypedDict):
    """What `CustomerAdmin.get_queryset` annotates on each customer."""

    open_contract_count: int
    committed_kw: Decimal


class _DeliveryRow(TypedDict):
    """What `ContractDeliveryAdmin.get_queryset` annotates on each delivery (None: nothing was committed)."""

    served_pct: Decimal | None


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
    def active_contracts(self, obj: WithAnnotations[Tier, _TierRow]) -> int:
        return obj.active_contract_count

    @admin.display(description="Committed kW (active)", ordering="committed_kw")
    def committed_kw(self, obj: WithAnnotations[Tier, _TierRow]) -> str:
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
    def open_contracts(self, obj: WithAnnotations[Customer, _CustomerRow]) -> int:
        return obj.open_contract_count

    @admin.display(description="Committed kW (active)", ordering="committed_kw")
    def committed_kw(self, obj: WithAnnotations[Customer, _CustomerRow]) -> str:
        return f"{obj.committed_kw:,.1f}"


class PlacementInline(admin.TabularInline):
    """A contract's placements, read-only here: a placement added or changed by hand goes through the placement
    form, which checks it against the contract and the site (`check_placement`)."""

    model = Placement
    fields = ("site", "capacity_kw", "valid_from", "valid_to", "kind", "moved_from", "reason")
    readonly_fields = fields
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("site", "moved_from", "contract__tier")


class ContractForm(forms.ModelForm):
    """A contract typed in (or changed) by staff is bound by its customer's cap like a purchase (sla.services.caps):
    the customer's row is locked in the change form's transaction, so the check holds until the row is saved."""

    class Meta:
        model = Contract
        fields = (
            "customer",
            "tier",
            "capacity_kw",
            "starts_at",
            "ends_at",
            "region_preference",
            "quoted_price_usd_per_kwh",
            "quoted_total_usd",
        )

    def clean(self):
        data = super().clean()
        needed = ("customer", "tier", "capacity_kw", "starts_at", "ends_at")
        if self.errors or any(data.get(name) is None for name in needed) or data["ends_at"] <= data["starts_at"]:
            return data  # the field errors (or the window constraint) speak first
        if self.instance.status not in OPEN_CONTRACT_STATUSES:
            return data  # an ended contract holds nothing
        candidate = Contract(pk=self.instance.pk, **{name: data[name] for name in needed})
        refusal = contract_cap_refusal(candidate)
        if refusal:
            raise forms.ValidationError({"capacity_kw": refusal})
        return data


@admin.register(Contract)
class ContractAdmin(AuditHistoryAdmin):
    form = ContractForm
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
    # The cancellation terms are the policy's when the contract is written (SLA_CANCELLATION_FEE_PCT) or its quote's.
    readonly_fields = (
        "status",
        "status_changed_at",
        "status_reason",
        "cancellation_fee_pct",
        "cancellation_fee_usd",
        "created_at",
    )
    date_hierarchy = "starts_at"
    inlines = (PlacementInline,)
    actions = ("approve", "reject", "terminate")
    history_list_display = ("status", "status_reason")

    def get_queryset(self, request):
        """Contracts with the kW placed at this moment (a correlated subquery per row, in the same query)."""
        return super().get_queryset(request).with_placed_kw(timezone.now())

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


class PlacementForm(forms.ModelForm):
    """A placement typed in by staff obeys the rules of every other writer (sla.services.placements): at most its
    contract's capacity, inside its window, and within its site's SLA limit. The admin's change form runs in one
    transaction, so the locks `check_placement` takes hold until the row is saved."""

    class Meta:
        model = Placement
        fields = ("contract", "site", "capacity_kw", "valid_from", "valid_to", "kind", "moved_from", "reason")

    def clean(self):
        data = super().clean()
        needed = ("contract", "site", "capacity_kw", "valid_from")
        if any(data.get(name) is None for name in needed):
            return data  # the missing field already has its error
        candidate = Placement(
            pk=self.instance.pk,
            contract=data["contract"],
            site=data["site"],
            capacity_kw=data["capacity_kw"],
            valid_from=data["valid_from"],
            valid_to=data.get("valid_to"),
        )
        try:
            check_placement(placement=candidate)
        except PlacementRefused as refused:
            raise forms.ValidationError(
                {name: message for name, message in refused.errors.items() if name in self.fields}
                or refused.errors.popitem()[1]
            ) from None
        return data


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    form = PlacementForm
    list_display = ("contract", "customer", "site", "capacity_kw", "valid_from", "valid_to", "reason")
    list_filter = (CurrentPlacementFilter, "site", "contract__tier")
    list_select_related = ("contract__customer", "contract__tier", "site")
    search_fields = ("=contract__id", "contract__customer__name", "site__code", "site__name", "reason")
    autocomplete_fields = ("contract", "site")
    date_hierarchy = "valid_from"

    @admin.display(description="Customer", ordering="contract__customer__name")
    def customer(self, obj: Placement):
        return obj.contract.customer


# Commerce records: quotes, Spot preemption notices, downtime, delivered capacity and the service-credit ledger.
# They are written by services (admission, failover, the optimizer's deliveries, the monthly credit task) and are
# facts or ledger entries, so staff read them here but do not add, edit or delete them.


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record staff can search and read but not change: the services that write it keep it consistent."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Quote)
class QuoteAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "customer",
        "tier",
        "capacity_kw",
        "starts_at",
        "ends_at",
        "price_usd_per_kwh",
        "total_usd",
        "utilization_pct",
        "valid_until",
        "bought",
    )
    list_filter = ("tier", "token_price_source", "region_preference")
    list_select_related = ("customer", "tier", "contract")
    search_fields = ("=id", "customer__name", "customer__user__username")
    date_hierarchy = "created_at"

    @admin.display(description="Bought", boolean=True, ordering="contract")
    def bought(self, obj: Quote) -> bool:
        return hasattr(obj, "contract")


@admin.register(PreemptionNotice)
class PreemptionNoticeAdmin(ReadOnlyAdmin):
    list_display = (
        "contract",
        "customer",
        "site",
        "capacity_kw",
        "issued_at",
        "effective_at",
        "displaced_by",
        "reason",
    )
    list_filter = ("site",)
    list_select_related = ("contract__customer", "contract__tier", "site", "displaced_by__tier")
    search_fields = ("=contract__id", "contract__customer__name", "site__code", "reason")
    date_hierarchy = "issued_at"

    @admin.display(description="Customer", ordering="contract__customer__name")
    def customer(self, obj: PreemptionNotice):
        return obj.contract.customer


@admin.register(Downtime)
class DowntimeAdmin(ReadOnlyAdmin):
    list_display = ("contract", "customer", "tier", "site", "unserved_kw", "started_at", "ended_at", "reason")
    list_filter = ("site", "contract__tier")
    list_select_related = ("contract__customer", "contract__tier", "site", "created_by")
    search_fields = ("=contract__id", "contract__customer__name", "site__code", "reason")
    date_hierarchy = "started_at"

    @admin.display(description="Customer", ordering="contract__customer__name")
    def customer(self, obj: Downtime):
        return obj.contract.customer

    @admin.display(description="Tier", ordering="contract__tier__priority")
    def tier(self, obj: Downtime):
        return obj.contract.tier


@admin.register(ContractDelivery)
class ContractDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("contract", "interval_start", "interval_minutes", "committed_kw", "delivered_kw", "served")
    list_filter = ("contract__tier",)
    list_select_related = ("contract__tier",)
    search_fields = ("=contract__id", "contract__customer__name")
    date_hierarchy = "interval_start"

    def get_queryset(self, request):
        """Served share per interval, delivered capped at committed (the uptime rule), computed in the query."""
        served = ExpressionWrapper(
            Least("delivered_kw", "committed_kw") * 100 / NullIf("committed_kw", 0),
            output_field=DecimalField(max_digits=9, decimal_places=3),
        )
        return super().get_queryset(request).annotate(served_pct=served)

    @admin.display(description="Served %", ordering="served_pct")
    def served(self, obj: WithAnnotations[ContractDelivery, _DeliveryRow]) -> str:
        return "-" if obj.served_pct is None else f"{obj.served_pct:.1f}"


@admin.register(ServiceCredit)
class ServiceCreditAdmin(ReadOnlyAdmin):
    list_display = ("contract", "customer", "tier", "month", "uptime_pct", "credit_pct", "charge_usd", "credit_usd")
    list_filter = ("contract__tier", "month")
    list_select_related = ("contract__customer", "contract__tier")
    search_fields = ("=contract__id", "contract__customer__name", "contract__customer__company")
    date_hierarchy = "month"

    @admin.display(description="Customer", ordering="contract__customer__name")
    def customer(self, obj: ServiceCredit):
        return obj.contract.customer

    @admin.display(description="Tier", ordering="contract__tier__priority")
    def tier(self, obj: ServiceCredit):
        return obj.contract.tier
