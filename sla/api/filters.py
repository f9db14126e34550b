"""django-filter FilterSets of the commercial world."""

from __future__ import annotations

import django_filters as filters

from sla.choices import ContractStatus, TierCode
from sla.models import Contract, Quote, Tier


class TierFilterSet(filters.FilterSet):
    class Meta:
        model = Tier
        fields = ("is_preemptible", "requires_n_minus_1")


class ContractFilterSet(filters.FilterSet):
    """Contracts by status, tier code and window (ISO 8601 bounds; `status=active&status=requested` ORs)."""

    status = filters.MultipleChoiceFilter(choices=ContractStatus.choices)
    tier = filters.ChoiceFilter(field_name="tier__code", choices=TierCode.choices)
    starts_after = filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")
    ends_after = filters.IsoDateTimeFilter(field_name="ends_at", lookup_expr="gt")
    ends_before = filters.IsoDateTimeFilter(field_name="ends_at", lookup_expr="lte")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Contract
        fields = ("status", "tier", "region_preference")


class QuoteFilterSet(filters.FilterSet):
    tier = filters.ChoiceFilter(field_name="tier__code", choices=TierCode.choices)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Quote
        fields = ("tier",)
