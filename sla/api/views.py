"""Read-only API of the commercial world. Customer contracts and quotes are a separate, tenant-scoped API."""

from __future__ import annotations

from django.db.models import Prefetch
from rest_framework import viewsets

from sla.models import ServiceCreditRule, Tier

from .filters import TierFilterSet
from .serializers import TierSerializer


class TierViewSet(viewsets.ReadOnlyModelViewSet):
    """SLA tiers in priority order, each with its service-credit schedule (two queries per page plus count)."""

    queryset = Tier.objects.prefetch_related(
        Prefetch("credit_rules", queryset=ServiceCreditRule.objects.order_by("-uptime_below_pct", "id"))
    )
    serializer_class = TierSerializer
    filterset_class = TierFilterSet
    lookup_field = "code"
    ordering_fields = ("priority", "code", "price_multiplier", "uptime_target_pct")
    ordering = ("priority", "code")
