"""Staff admin for the served hackathon market API's tenants (models in `sites`, rules in `mara.services`).

Keys are generated, never typed; allocations are written through PUT /mara/machines (`mara.services`), so the admin
shows them and refuses a power below them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin

from sites.models import MarketApiAllocation, MarketApiSite

from .services import allocation_power_w


class MarketApiSiteForm(forms.ModelForm):
    class Meta:
        model = MarketApiSite
        fields = ("name", "power_w")

    def clean_power_w(self):
        power_w = self.cleaned_data["power_w"]
        allocation = MarketApiAllocation.objects.filter(site_id=self.instance.pk).first() if self.instance.pk else None
        if allocation is not None and power_w is not None:
            required = allocation_power_w(allocation.counts)
            if required > power_w:
                raise forms.ValidationError(f"The site's allocation draws {required:,} W; power cannot be below that.")
        return power_w


class MarketApiAllocationInline(admin.StackedInline):
    model = MarketApiAllocation
    fields = (*MarketApiAllocation.COUNT_FIELDS, "power_used_w", "updated_at")
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 1

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Power used W")
    def power_used_w(self, obj: MarketApiAllocation):
        return f"{allocation_power_w(obj.counts):,}"


@admin.register(MarketApiSite)
class MarketApiSiteAdmin(admin.ModelAdmin):
    form = MarketApiSiteForm
    list_display = ("name", "id", "key_prefix", "power_w", "power_used_w", "created_at")
    list_select_related = ("allocation",)
    search_fields = ("name", "=api_key")
    date_hierarchy = "created_at"
    fields = ("name", "api_key", "power_w", "created_at")
    readonly_fields = ("api_key", "created_at")
    inlines = (MarketApiAllocationInline,)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # as mara.services.create_market_api_site does: GET /machines answers from the start
            MarketApiAllocation.objects.get_or_create(site=obj)

    @admin.display(description="API key")
    def key_prefix(self, obj: MarketApiSite) -> str:
        return f"{obj.api_key[:8]}…"

    @admin.display(description="Power used W")
    def power_used_w(self, obj: MarketApiSite):
        allocation = getattr(obj, "allocation", None)
        return None if allocation is None else f"{allocation_power_w(allocation.counts):,}"


@admin.register(MarketApiAllocation)
class MarketApiAllocationAdmin(admin.ModelAdmin):
    """Read-only: allocations change through PUT /mara/machines, which checks the site's power."""

    list_display = ("site", *MarketApiAllocation.COUNT_FIELDS, "power_used_w", "updated_at")
    list_select_related = ("site",)
    search_fields = ("site__name",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Power used W")
    def power_used_w(self, obj: MarketApiAllocation):
        return f"{allocation_power_w(obj.counts):,}"
