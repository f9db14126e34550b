"""Read serializers of the commercial world: SLA tiers and their service-credit schedules."""

from __future__ import annotations

from rest_framework import serializers

from sla.models import ServiceCreditRule, Tier


class ServiceCreditRuleSerializer(serializers.ModelSerializer):
    """Uptime below `uptime_below_pct` earns `credit_pct` of the month's charge back."""

    class Meta:
        model = ServiceCreditRule
        fields = ("uptime_below_pct", "credit_pct")
        read_only_fields = fields


class TierSerializer(serializers.ModelSerializer):
    credit_rules = ServiceCreditRuleSerializer(many=True, read_only=True)

    class Meta:
        model = Tier
        fields = (
            "id",
            "code",
            "name",
            "uptime_target_pct",
            "price_multiplier",
            "priority",
            "is_preemptible",
            "min_sites",
            "requires_n_minus_1",
            "credit_rules",
        )
        read_only_fields = fields
