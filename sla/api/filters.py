"""django-filter FilterSets of the commercial world."""

from __future__ import annotations

import django_filters as filters

from sla.models import Tier


class TierFilterSet(filters.FilterSet):
    class Meta:
        model = Tier
        fields = ("is_preemptible", "requires_n_minus_1")
