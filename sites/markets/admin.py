"""Admin of the real markets: price nodes and FX rates (editable, audited), ancillary prices and loads (big tables).

Imported by ``sites.admin``. Edits pass the models' validators and constraints, the rules the importers use.
"""

from __future__ import annotations

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import AncillaryPrice, FxRate, PriceNode, SystemLoad


class BigSeriesAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 100
    date_hierarchy = "interval_start"


@admin.register(PriceNode)
class PriceNodeAdmin(SimpleHistoryAdmin):
    list_display = ("node", "market", "currency", "resolution_minutes", "site_codes", "description")
    list_filter = ("market", "currency")
    search_fields = ("node", "description", "sites__code")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("sites")

    @admin.display(description="Sites")
    def site_codes(self, obj: PriceNode) -> str:
        return ", ".join(site.code for site in obj.sites.all()) or "-"

    def has_change_history_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FxRate)
class FxRateAdmin(SimpleHistoryAdmin):
    list_display = ("day", "currency", "usd_per_unit", "source")
    list_filter = ("currency", "source")
    date_hierarchy = "day"
    show_full_result_count = False
    list_per_page = 100

    def has_change_history_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AncillaryPrice)
class AncillaryPriceAdmin(BigSeriesAdmin):
    list_display = ("interval_start", "market", "service", "price_usd_per_mw_h", "interval_minutes", "source")
    list_filter = ("market", "service", "source")


@admin.register(SystemLoad)
class SystemLoadAdmin(BigSeriesAdmin):
    list_display = ("interval_start", "market", "zone", "kind", "load_mw", "interval_minutes", "source")
    list_filter = ("market", "zone", "kind", "source")
