"""Filters of the fleet API."""

from django import forms
from django_filters import rest_framework as filters

from ..models import Device, DeviceCommand, DispatchRound, SiteTelemetryRollup


class DeviceFilterSet(filters.FilterSet):
    site = filters.CharFilter(field_name="site__code", help_text="Site code.")
    hardware_model = filters.CharFilter(field_name="hardware_model__code", help_text="Hardware model code.")

    class Meta:
        model = Device
        fields = ("site", "hardware_model", "driver", "status", "is_running")


class IntegerFilter(filters.NumberFilter):
    """A whole number: `0.5` is refused with 400, not rounded or matched as a decimal."""

    field_class = forms.IntegerField


class DispatchRoundFilterSet(filters.FilterSet):
    run_id = IntegerFilter(field_name="run_id", help_text="Optimization run id.")
    started_after = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")

    class Meta:
        model = DispatchRound
        fields = ("trigger", "dry_run", "run_id", "started_after")


class DeviceCommandFilterSet(filters.FilterSet):
    site = filters.CharFilter(field_name="device__site__code", help_text="Site code.")

    class Meta:
        model = DeviceCommand
        fields = ("round", "device", "action", "outcome", "sent", "site")


class RollupFilterSet(filters.FilterSet):
    site = filters.CharFilter(field_name="site__code", help_text="Site code.")
    after = filters.IsoDateTimeFilter(field_name="bucket_start", lookup_expr="gte")
    before = filters.IsoDateTimeFilter(field_name="bucket_start", lookup_expr="lt")

    class Meta:
        model = SiteTelemetryRollup
        fields = ("site", "after", "before")
