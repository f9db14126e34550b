"""Serializers of the fleet API (read-only; credentials are never exposed, only the reference's name)."""

from __future__ import annotations

from rest_framework import serializers

from sites.models import HardwareModel, Site

from ..models import Device, DeviceCommand, DispatchRound, SiteTelemetryRollup


class DeviceSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    hardware_model: serializers.SlugRelatedField[HardwareModel] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = Device
        fields = ("id", "name", "site", "hardware_model", "driver", "firmware_model", "address", "port",
                  "credentials_ref", "status", "status_reason", "is_running", "running_changed_at", "power_w",
                  "placements", "last_seen_at", "created_at")  # fmt: skip
        read_only_fields = fields


class DispatchRoundSerializer(serializers.ModelSerializer):
    lag_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = DispatchRound
        fields = ("id", "trigger", "run_id", "planned_at", "started_at", "finished_at", "lag_seconds", "dry_run",
                  "summary")  # fmt: skip
        read_only_fields = fields


class DeviceCommandSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceCommand
        fields = ("id", "round", "device", "action", "desired_running", "desired_power_w", "sent", "acknowledged",
                  "observed_running", "observed_power_w", "attempts", "outcome", "error", "created_at")  # fmt: skip
        read_only_fields = fields


class RollupSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = SiteTelemetryRollup
        fields = ("site", "bucket_start", "samples", "planned_it_kw", "device_power_kw", "meter_power_kw",
                  "hashrate_th_per_s", "tokens_per_s", "max_temperature_c", "devices_online",
                  "devices_faulted")  # fmt: skip
        read_only_fields = fields
