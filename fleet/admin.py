"""Staff admin for the machines: the device registry (with CSV import), per-site dispatch settings and kill
switch, and the read-only audit of dispatch rounds, commands and telemetry rollups. Every write goes through
`fleet.services`, so the inventory follows the registry whichever way a device is added or changed."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import ngettext

from sites.admin import AuditHistoryAdmin

from .choices import DeviceStatus
from .models import Device, DeviceCommand, DispatchRound, SiteFleet, SiteTelemetryRollup
from .services import import_devices_csv, set_device_status, set_kill_switch, sync_inventory
from .services.registry import ImportRejected, _check_kind

MAX_CSV_BYTES = 5 * 1024 * 1024


class DeviceForm(forms.ModelForm):
    class Meta:
        model = Device
        fields = ("name", "site", "hardware_model", "driver", "firmware_model", "address", "port", "credentials_ref")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("hardware_model") and cleaned.get("driver"):
            try:
                _check_kind(Device(hardware_model=cleaned["hardware_model"], driver=cleaned["driver"]))
            except ValidationError as exc:
                self.add_error("driver", exc.message_dict["driver"])
        return cleaned


class CsvImportForm(forms.Form):
    file = forms.FileField(
        help_text="Columns: "
        + ", ".join(
            ("name", "site", "hardware_model", "driver", "address", "port", "firmware_model", "credentials_ref")
        )
    )


@admin.register(Device)
class DeviceAdmin(AuditHistoryAdmin):
    form = DeviceForm
    list_display = ("name", "site", "hardware_model", "driver", "address", "port", "status", "is_running", "power_w",
                    "last_seen_at")  # fmt: skip
    list_filter = ("status", "driver", "is_running", "site", "hardware_model")
    search_fields = ("name", "address", "firmware_model")
    list_select_related = ("site", "hardware_model")
    autocomplete_fields = ("site", "hardware_model")
    readonly_fields = ("status", "status_reason", "is_running", "running_changed_at", "power_w", "last_seen_at",
                       "placements", "created_at")  # fmt: skip
    actions = ("clear_faults", "disable")
    change_list_template = "admin/fleet/device/change_list.html"

    def save_model(self, request, obj, form, change):
        old_site = Device.objects.filter(pk=obj.pk).values_list("site_id", flat=True).first() if change else None
        super().save_model(request, obj, form, change)
        SiteFleet.objects.get_or_create(site=obj.site)
        sync_inventory(site_ids={obj.site_id, old_site} - {None})

    def delete_model(self, request, obj):
        site_id = obj.site_id
        super().delete_model(request, obj)
        sync_inventory(site_ids=[site_id])

    def delete_queryset(self, request, queryset):
        site_ids = set(queryset.values_list("site_id", flat=True))
        super().delete_queryset(request, queryset)
        sync_inventory(site_ids=site_ids)

    @admin.action(description="Clear the fault (back into the plan once it answers)")
    def clear_faults(self, request, queryset):
        count = set_device_status(device_ids=queryset.values_list("pk", flat=True), status=DeviceStatus.UNKNOWN)
        self.message_user(request, ngettext("%d device cleared.", "%d devices cleared.", count) % count)

    @admin.action(description="Disable (out of the plan and of polling)")
    def disable(self, request, queryset):
        count = set_device_status(
            device_ids=queryset.values_list("pk", flat=True), status=DeviceStatus.DISABLED, reason="disabled by staff"
        )
        self.message_user(request, ngettext("%d device disabled.", "%d devices disabled.", count) % count)

    def get_urls(self):
        return [
            path("import-csv/", self.admin_site.admin_view(self.import_csv), name="fleet_device_import_csv"),
            *super().get_urls(),
        ]

    def import_csv(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CsvImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_CSV_BYTES:
                errors = [f"The file is larger than {MAX_CSV_BYTES // 1024 // 1024} MB."]
            else:
                try:
                    count = import_devices_csv(text=upload.read().decode("utf-8-sig"))
                except UnicodeDecodeError:
                    errors = ["The file is not UTF-8 text."]
                except ImportRejected as exc:
                    errors = exc.errors
                else:
                    self.message_user(request, f"{count} devices imported.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:fleet_device_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "errors": errors, "title": "Import devices"}
        return render(request, "admin/fleet/device/import_csv.html", context, status=400 if errors else 200)


@admin.register(SiteFleet)
class SiteFleetAdmin(AuditHistoryAdmin):
    list_display = ("site", "kill_switch", "dry_run", "ramp_kw_per_min", "min_on_minutes", "min_off_minutes",
                    "max_restarts_per_day", "meter_address")  # fmt: skip
    list_filter = ("kill_switch", "dry_run")
    search_fields = ("site__code", "site__name")
    list_select_related = ("site",)
    autocomplete_fields = ("site",)
    readonly_fields = ("kill_switch", "kill_switch_reason")
    actions = ("throw_kill_switch", "release_kill_switch")

    @admin.action(description="Throw the kill switch (stop every device of the site)")
    def throw_kill_switch(self, request, queryset):
        for fleet in queryset.select_related("site"):
            set_kill_switch(site=fleet.site, on=True, reason=f"thrown by {request.user}")
        self.message_user(request, f"Kill switch thrown at {queryset.count()} site(s); a dispatch round stops them.")

    @admin.action(description="Release the kill switch")
    def release_kill_switch(self, request, queryset):
        for fleet in queryset.select_related("site"):
            set_kill_switch(site=fleet.site, on=False)
        self.message_user(request, f"Kill switch released at {queryset.count()} site(s).")


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DispatchRound)
class DispatchRoundAdmin(ReadOnly):
    list_display = ("__str__", "trigger", "run_id", "dry_run", "started_at", "finished_at", "lag")
    list_filter = ("trigger", "dry_run")
    search_fields = ("run_id",)

    @admin.display(description="lag (s)")
    def lag(self, obj: DispatchRound):
        return None if obj.lag_seconds is None else round(obj.lag_seconds, 1)


@admin.register(DeviceCommand)
class DeviceCommandAdmin(ReadOnly):
    list_display = ("created_at", "device", "action", "desired_running", "desired_power_w", "sent", "acknowledged",
                    "observed_running", "observed_power_w", "attempts", "outcome")  # fmt: skip
    list_filter = ("outcome", "action", "sent")
    search_fields = ("device__name", "device__address", "error")
    list_select_related = ("device",)
    raw_id_fields = ("round", "device")


@admin.register(SiteTelemetryRollup)
class SiteTelemetryRollupAdmin(ReadOnly):
    list_display = ("site", "bucket_start", "planned_it_kw", "device_power_kw", "meter_power_kw", "hashrate_th_per_s",
                    "tokens_per_s", "devices_online", "devices_faulted")  # fmt: skip
    list_filter = ("site",)
    search_fields = ("site__code",)
    list_select_related = ("site",)
