"""Read serializers of decisions: optimization runs and, in detail, the allocations they chose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import serializers

from optimizer.choices import Strategy
from optimizer.models import Allocation, OptimizationRun
from sites.models import HardwareModel, Site

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class AllocationSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    hardware_model: serializers.SlugRelatedField[HardwareModel] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = Allocation
        fields = (
            "site",
            "hardware_model",
            "units_running",
            "it_power_kw",
            "facility_power_kw",
            "revenue_usd_per_h",
            "energy_cost_usd_per_h",
        )
        read_only_fields = fields


class OptimizationRunSerializer(serializers.ModelSerializer):
    """A run's outcome and economics, without its (large) inputs and allocations."""

    requested_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    profit_usd_per_h = serializers.DecimalField(
        max_digits=17,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="Revenue minus energy, carbon and penalty costs, USD/h.",
    )
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = OptimizationRun
        fields: tuple[str, ...] = (
            "id",
            "trigger",
            "strategy",
            "status",
            "requested_by",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "solve_seconds",
            "objective_usd_per_h",
            "revenue_usd_per_h",
            "energy_cost_usd_per_h",
            "carbon_cost_usd_per_h",
            "penalty_usd_per_h",
            "profit_usd_per_h",
            "is_applied",
            "error",
        )
        read_only_fields = fields


class OptimizationRunDetailSerializer(OptimizationRunSerializer):
    """A run with the inputs it saw, its breakdown, its explanation and every allocation."""

    allocations = AllocationSerializer(many=True, read_only=True)

    class Meta(OptimizationRunSerializer.Meta):
        fields = (
            *OptimizationRunSerializer.Meta.fields,
            "inputs",
            "details",
            "explanation",
            "advisor_status",
            "advisor_model",
            "advisor_narrative",
            "advisor_proposal",
            "advisor_verdict",
            "advised_at",
            "allocations",
        )
        read_only_fields = fields


class OptimizationRunRequestSerializer(serializers.Serializer):
    """Ask for a run; it is queued to a worker and answered at once with 202."""

    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.LP)

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields) if hasattr(self.initial_data, "keys") else set()
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return attrs
