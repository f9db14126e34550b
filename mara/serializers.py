"""Input validation of the served hackathon API (its output shapes are built in ``views``, as the event's were)."""

from __future__ import annotations

from rest_framework import serializers

from sites.models import MarketApiAllocation, MarketApiSite

from .services import MAX_UNITS

COUNT_FIELDS = MarketApiAllocation.COUNT_FIELDS
# Keys of the event's own answers. A client that reads GET /machines, changes counts and PUTs the object back
# sends them along; the event's server ignored them, and so does this one. Any other key is refused (a typo such
# as "asic_miners" would otherwise drop machines silently).
ECHOED_KEYS = frozenset(
    {"id", "site_id", "updated_at", "power", "revenue", "total_power_used", "total_power_cost", "total_revenue"}
)


class CreateSiteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MarketApiSite._meta.get_field("name").max_length, trim_whitespace=True)


class MachinesSerializer(serializers.Serializer):
    """``PUT /machines``: whole unit counts in 0..MAX_UNITS; a type left out runs 0 units (PUT replaces).

    Numeric strings ("5") are accepted because the event's own examples used HTTPie's ``field=5``, which sends
    strings; fractions, booleans, nulls, negative numbers and unknown keys are refused with field errors.
    """

    air_miners = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, required=False, default=0)
    hydro_miners = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, required=False, default=0)
    immersion_miners = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, required=False, default=0)
    gpu_compute = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, required=False, default=0)
    asic_compute = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, required=False, default=0)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            return super().to_internal_value(data)  # "Expected a dictionary"
        errors = {
            key: [f"Unknown machine type; expected one of {', '.join(COUNT_FIELDS)}."]
            for key in sorted(set(data) - set(COUNT_FIELDS) - ECHOED_KEYS)
        }
        if not set(data) & set(COUNT_FIELDS):
            errors["non_field_errors"] = [f"Give the unit count of at least one of {', '.join(COUNT_FIELDS)}."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value
