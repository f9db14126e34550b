"""Serializers of grid programs: reads list their fields; an event is written through `grid.services`."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from grid import services
from grid.choices import EventSource, ReductionMode
from grid.models import Enrollment, EventPerformance, GridEvent, GridProgram
from sites.models import Site

MAX_KW = Decimal("1000000")


class GridProgramSerializer(serializers.ModelSerializer):
    class Meta:
        model = GridProgram
        fields = (
            "code",
            "name",
            "market",
            "kind",
            "response_time_s",
            "notice_minutes",
            "min_event_minutes",
            "max_event_minutes",
            "max_events_per_month",
            "payment_basis",
            "payment_rate",
            "penalty_usd_per_mwh",
            "baseline_method",
            "is_active",
        )
        read_only_fields = fields


class EnrollmentSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    program: serializers.SlugRelatedField[GridProgram] = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Enrollment
        fields = ("id", "site", "program", "committed_mw", "starts_at", "ends_at")
        read_only_fields = fields


class EventPerformanceSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
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
        read_only_fields = fields


class GridEventSerializer(serializers.ModelSerializer):
    program: serializers.SlugRelatedField[GridProgram] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    performances = EventPerformanceSerializer(many=True, read_only=True)

    class Meta:
        model = GridEvent
        fields = (
            "id",
            "program",
            "status",
            "source",
            "external_id",
            "notified_at",
            "starts_at",
            "ends_at",
            "reduction_mode",
            "reduction_kw",
            "status_changed_at",
            "status_reason",
            "performances",
        )
        read_only_fields = fields


class GridEventCreateSerializer(serializers.Serializer):
    """A new event: program code, site codes, window (ISO 8601), reduction by or to a level in kW."""

    program = serializers.SlugRelatedField(slug_field="code", queryset=GridProgram.objects.all())
    sites = serializers.SlugRelatedField(slug_field="code", queryset=Site.objects.all(), many=True)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    reduction_kw = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=Decimal("0"), max_value=MAX_KW)
    reduction_mode = serializers.ChoiceField(choices=ReductionMode.choices, default=ReductionMode.BY)
    external_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields) if hasattr(self.initial_data, "keys") else set()
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        if len({site.pk for site in attrs["sites"]}) != len(attrs["sites"]):
            raise serializers.ValidationError({"sites": ["A site is named twice."]})
        return attrs

    def event_request(self) -> services.EventRequest:
        data = self.validated_data
        return services.EventRequest(
            program=data["program"],
            sites=tuple(data["sites"]),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            reduction_kw=data["reduction_kw"],
            reduction_mode=data["reduction_mode"],
            source=EventSource.API,
            external_id=data["external_id"],
        )
