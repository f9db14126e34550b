"""django-filter FilterSets of decisions."""

from __future__ import annotations

import django_filters as filters

from optimizer.models import OptimizationRun


class OptimizationRunFilterSet(filters.FilterSet):
    queued_after = filters.IsoDateTimeFilter(
        field_name="queued_at", lookup_expr="gte", help_text="Queued at or after (ISO 8601)."
    )
    queued_before = filters.IsoDateTimeFilter(
        field_name="queued_at", lookup_expr="lt", help_text="Queued strictly before (ISO 8601)."
    )

    class Meta:
        model = OptimizationRun
        fields = ("status", "strategy", "trigger", "is_applied", "queued_after", "queued_before")
