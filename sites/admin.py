"""Staff admin for the physical world: sites, hardware, inventory, weather, prices and source fetches.

Computed columns come from `annotate()` in `get_queryset`, so a changelist page costs a fixed number of queries
whatever the number of rows. Status changes go through `sites.services.set_site_status` (admin actions), which
records who, when and why in the site's history.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import DecimalField, ExpressionWrapper, F, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from .choices import SiteStatus
from .models import (
    EnergyPrice,
    HackathonPrice,
    HardwareModel,
    MarketPrice,
    Site,
    SiteInventory,
    SourceFetch,
    WeatherReading,
)
from .querysets import SiteSummary
from .services import set_site_status

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _SiteRow(SiteSummary):
    """What `SiteAdmin.get_queryset` annotates on each site."""

    utilization_pct: Decimal | None


class _HardwareRow(TypedDict):
    """What `HardwareModelAdmin.get_queryset` annotates on each hardware model."""

    units_installed_total: int


class _InventoryRow(TypedDict):
    """What `SiteInventoryAdmin.get_queryset` annotates on each inventory row."""

    installed_kw: Decimal
    running_kw: Decimal


HUNDRED = Decimal("100")
ZERO_KW = Decimal("0")
PCT = DecimalField(max_digits=9, decimal_places=1)
KW = DecimalField(max_digits=14, decimal_places=3)


class AuditHistoryAdmin(SimpleHistoryAdmin):
    """History that staff can read (who, when, why) but not replay.

    simple_history's "Revert" saves an old version wholesale, bypassing the services that guard status changes
    (and the constraints on fields the form leaves out), so reverting is refused here, including a crafted POST.
    """

    history_list_display: tuple[str, ...] = ()

    def has_change_history_permission(self, request, obj=None) -> bool:
        return False

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Reverting to an old version is disabled; edit the object instead.")
        return super().history_form_view(request, object_id, version_id, extra_context)


class InventoryForm(forms.ModelForm):
    """Refuses lowering availability below what is running.

    `units_running` is written only by applying an allocation, so it is read-only here; Django then skips the
    `running_le_available` constraint (it names an excluded field) and the database would answer with a 500.
    """

    class Meta:
        model = SiteInventory
        fields = ("site", "hardware_model", "units_installed", "units_available")

    def clean(self):
        cleaned = super().clean()
        available = cleaned.get("units_available")
        running = self.instance.units_running or 0
        if available is not None and available < running:
            self.add_error("units_available", f"{running} units are running; available cannot be below that.")
        return cleaned


class SiteInventoryInline(admin.TabularInline):
    model = SiteInventory
    form = InventoryForm
    fields = ("hardware_model", "units_installed", "units_available", "units_running", "installed_kw")
    readonly_fields = ("units_running", "installed_kw")
    autocomplete_fields = ("hardware_model",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("site", "hardware_model")

    @admin.display(description="Installed IT kW")
    def installed_kw(self, obj: SiteInventory):
        return obj.installed_power_kw if obj.pk else "-"


@admin.register(Site)
class SiteAdmin(AuditHistoryAdmin):
    list_display = (
        "code",
        "name",
        "country",
        "status",
        "capacity_mw",
        "installed_kw",
        "running_kw",
        "utilization_pct",
        "latest_price",
        "market_region",
        "grid_region",
        "price_source",
    )
    list_display_links = ("code", "name")
    list_filter = ("status", "market_region", "cooling_type", "climate_zone", "country")
    search_fields = ("code", "name", "country", "grid_region")
    readonly_fields = ("status_changed_at", "status_reason", "created_at", "updated_at")
    inlines = (SiteInventoryInline,)
    actions = ("put_into_maintenance", "bring_back_online")
    history_list_display = ("status", "status_reason")
    fieldsets = (
        (None, {"fields": ("code", "name", "country", "status", "status_changed_at", "status_reason")}),
        ("Location", {"fields": ("latitude", "longitude", "time_zone", "climate_zone", "market_region")}),
        (
            "Power",
            {
                "fields": (
                    "power_capacity_kw",
                    "cooling_type",
                    "renewable_share",
                    "grid_region",
                    "price_node",
                    "grid_carbon_kg_per_mwh",
                    "energy_cost_multiplier",
                )
            },
        ),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # A new site may start offline or in maintenance; afterwards status moves only through the actions.
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "status") if obj is not None else readonly

    def get_queryset(self, request):
        """Sites with installed/running kW, utilization and newest energy price: one query for the whole page."""
        qs = super().get_queryset(request).select_related("price_node").with_power_summary().with_latest_energy_price()
        return qs.annotate(
            utilization_pct=ExpressionWrapper(
                F("running_kw") * Value(HUNDRED) / NullIf(F("power_capacity_kw"), Value(ZERO_KW, output_field=KW)),
                output_field=PCT,
            )
        )

    @admin.display(description="Price source", ordering="price_node__node")
    def price_source(self, obj: Site) -> str:
        return obj.price_node.label if obj.price_node is not None else "simulator"

    @admin.display(description="Capacity MW", ordering="power_capacity_kw")
    def capacity_mw(self, obj: Site):
        return f"{obj.power_capacity_mw:,.2f}"

    @admin.display(description="Installed IT kW", ordering="installed_kw")
    def installed_kw(self, obj: WithAnnotations[Site, _SiteRow]):
        return f"{obj.installed_kw:,.1f}"

    @admin.display(description="Running kW", ordering="running_kw")
    def running_kw(self, obj: WithAnnotations[Site, _SiteRow]):
        return f"{obj.running_kw:,.1f}"

    @admin.display(description="Utilization % of capacity", ordering="utilization_pct")
    def utilization_pct(self, obj: WithAnnotations[Site, _SiteRow]):
        if obj.utilization_pct is None:
            return None
        return f"{obj.utilization_pct:.1f} %"

    @admin.display(description="Latest energy price USD/MWh", ordering="latest_price_usd_per_mwh")
    def latest_price(self, obj: WithAnnotations[Site, _SiteRow]):
        if obj.latest_price_usd_per_mwh is None:
            return None
        return f"{obj.latest_price_usd_per_mwh:.2f} ({obj.latest_price_at:%Y-%m-%d %H:%M} UTC)"

    def _set_status(self, request, queryset, *, status: str, reason: str, done: str, already: str) -> None:
        changed = unchanged = 0
        for site in queryset:
            if set_site_status(site=site, status=status, reason=reason, actor=request.user):
                changed += 1
            else:
                unchanged += 1
        self._report_status_changes(request, changed, unchanged, done=done, already=already)

    def _report_status_changes(self, request, changed: int, unchanged: int, *, done: str, already: str) -> None:
        if changed:
            self.message_user(request, ngettext("%d site %s.", "%d sites %s.", changed) % (changed, done))
        if unchanged:
            self.message_user(
                request,
                ngettext("%d site was already %s.", "%d sites were already %s.", unchanged) % (unchanged, already),
                messages.WARNING,
            )

    @admin.action(description="Put into maintenance", permissions=("change",))
    def put_into_maintenance(self, request, queryset):
        self._set_status(
            request,
            queryset,
            status=SiteStatus.MAINTENANCE,
            reason="Put into maintenance from the admin",
            done="put into maintenance",
            already="in maintenance",
        )

    @admin.action(description="Bring back online", permissions=("change",))
    def bring_back_online(self, request, queryset):
        self._set_status(
            request,
            queryset,
            status=SiteStatus.ONLINE,
            reason="Brought back online from the admin",
            done="brought back online",
            already="online",
        )


@admin.register(HardwareModel)
class HardwareModelAdmin(AuditHistoryAdmin):
    list_display = (
        "code",
        "name",
        "kind",
        "cooling_type",
        "power_kw_per_unit",
        "hashrate_th_per_s",
        "tokens_per_s",
        "efficiency",
        "fleet_units_installed",
    )
    list_display_links = ("code", "name")
    list_filter = ("kind", "cooling_type")
    search_fields = ("code", "name")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(units_installed_total=Coalesce(Sum("inventories__units_installed"), Value(0)))
        )

    @admin.display(description="J/TH")
    def efficiency(self, obj: HardwareModel):
        value = obj.efficiency_j_per_th
        return None if value is None else f"{value:.1f}"

    @admin.display(description="Fleet units installed", ordering="units_installed_total")
    def fleet_units_installed(self, obj: WithAnnotations[HardwareModel, _HardwareRow]) -> int:
        return obj.units_installed_total


@admin.register(SiteInventory)
class SiteInventoryAdmin(AuditHistoryAdmin):
    form = InventoryForm
    list_display = (
        "site",
        "hardware_model",
        "units_installed",
        "units_available",
        "units_running",
        "installed_kw",
        "running_kw",
    )
    list_filter = ("hardware_model__kind", "site", "hardware_model")
    list_select_related = ("site", "hardware_model")
    search_fields = ("site__code", "site__name", "hardware_model__code", "hardware_model__name")
    autocomplete_fields = ("site", "hardware_model")
    readonly_fields = ("units_running",)

    def get_queryset(self, request):
        per_unit = F("hardware_model__power_kw_per_unit")
        return (
            super()
            .get_queryset(request)
            .annotate(
                installed_kw=ExpressionWrapper(F("units_installed") * per_unit, output_field=KW),
                running_kw=ExpressionWrapper(F("units_running") * per_unit, output_field=KW),
            )
        )

    @admin.display(description="Installed IT kW", ordering="installed_kw")
    def installed_kw(self, obj: WithAnnotations[SiteInventory, _InventoryRow]):
        return f"{obj.installed_kw:,.1f}"

    @admin.display(description="Running kW", ordering="running_kw")
    def running_kw(self, obj: WithAnnotations[SiteInventory, _InventoryRow]):
        return f"{obj.running_kw:,.1f}"


class BigTableAdmin(admin.ModelAdmin):
    """Read-mostly time series: no full COUNT(*) per page, drill down by date."""

    show_full_result_count = False
    list_per_page = 100


@admin.register(WeatherReading)
class WeatherReadingAdmin(BigTableAdmin):
    list_display = ("observed_at", "site", "temperature_c", "source", "fetched_at")
    list_filter = ("source", "site")
    list_select_related = ("site",)
    search_fields = ("site__code", "site__name")
    autocomplete_fields = ("site",)
    date_hierarchy = "observed_at"
    readonly_fields = ("fetched_at",)


@admin.register(EnergyPrice)
class EnergyPriceAdmin(BigTableAdmin):
    list_display = (
        "interval_start", "owner", "price_usd_per_mwh", "native_price_per_mwh", "native_currency", "interval_minutes",
        "source",
    )  # fmt: skip
    list_filter = ("source", "site", "grid_region")
    list_select_related = ("site",)
    search_fields = ("site__code", "site__name", "grid_region")
    autocomplete_fields = ("site",)
    date_hierarchy = "interval_start"

    @admin.display(description="Site or grid region", ordering="site__code")
    def owner(self, obj: EnergyPrice) -> str:
        return obj.site.code if obj.site is not None else obj.grid_region


@admin.register(MarketPrice)
class MarketPriceAdmin(BigTableAdmin):
    """Global values per interval: nothing textual to search, so the date drill-down and filters serve."""

    list_display = ("interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok", "source")
    list_filter = ("source",)
    date_hierarchy = "interval_start"


@admin.register(HackathonPrice)
class HackathonPriceAdmin(BigTableAdmin):
    """The hackathon API's abstract per-interval units; `sites.units` converts them, never this admin."""

    list_display = ("interval_start", "energy_price", "hash_price", "token_price", "source")
    list_filter = ("source",)
    date_hierarchy = "interval_start"


@admin.register(SourceFetch)
class SourceFetchAdmin(BigTableAdmin):
    """A log of fetch attempts, written by tasks only: staff read it (and may prune it)."""

    list_display = ("started_at", "kind", "source", "succeeded", "rows_written", "duration", "short_error")
    list_filter = ("kind", "source", "succeeded")
    search_fields = ("error",)
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Duration s")
    def duration(self, obj: SourceFetch):
        if obj.finished_at is None:
            return None
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f}"

    @admin.display(description="Error")
    def short_error(self, obj: SourceFetch) -> str:
        return obj.error[:80]


from .markets import admin as markets_admin  # noqa: E402,F401 (registers the real markets' admin)
