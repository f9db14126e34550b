"""Read-only API of the real markets: price nodes, FX rates, ancillary-service prices and system load.

Routes are added to ``sites.api.urls``; authentication, filtering and limit/offset pagination come from
settings.REST_FRAMEWORK. Time windows are half-open, [after, before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import django_filters as filters
from rest_framework import serializers, viewsets

from sites.api.filters import _after, _before

from .models import AncillaryPrice, FxRate, PriceNode, SystemLoad

if TYPE_CHECKING:
    from sites.models import Site


class PriceNodeSerializer(serializers.ModelSerializer):
    sites: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(
        slug_field="code", many=True, read_only=True
    )

    class Meta:
        model = PriceNode
        fields = ("id", "market", "node", "currency", "resolution_minutes", "description", "sites")
        read_only_fields = fields


class FxRateSerializer(serializers.ModelSerializer):
    class Meta:
        model = FxRate
        fields = ("id", "day", "currency", "usd_per_unit", "source")
        read_only_fields = fields


class AncillaryPriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = AncillaryPrice
        fields = ("id", "market", "service", "interval_start", "interval_minutes", "price_usd_per_mw_h", "source")
        read_only_fields = fields


class SystemLoadSerializer(serializers.ModelSerializer):
    class Meta:
        model = SystemLoad
        fields = ("id", "market", "zone", "kind", "interval_start", "interval_minutes", "load_mw", "source")
        read_only_fields = fields


class FxRateFilterSet(filters.FilterSet):
    after = filters.DateFilter(field_name="day", lookup_expr="gte", help_text="day on or after (YYYY-MM-DD).")
    before = filters.DateFilter(field_name="day", lookup_expr="lt", help_text="day strictly before (YYYY-MM-DD).")

    class Meta:
        model = FxRate
        fields = ("currency", "source", "after", "before")


class AncillaryPriceFilterSet(filters.FilterSet):
    after = _after("interval_start")
    before = _before("interval_start")

    class Meta:
        model = AncillaryPrice
        fields = ("market", "service", "source", "after", "before")


class SystemLoadFilterSet(filters.FilterSet):
    after = _after("interval_start")
    before = _before("interval_start")

    class Meta:
        model = SystemLoad
        fields = ("market", "zone", "kind", "source", "after", "before")


class PriceNodeViewSet(viewsets.ReadOnlyModelViewSet):
    """Where sites buy power: market, node or zone, currency, native resolution, and the sites tied to each."""

    queryset = PriceNode.objects.prefetch_related("sites")
    serializer_class = PriceNodeSerializer
    filterset_fields = ("market", "currency")
    ordering_fields = ("market", "node")
    ordering = ("market", "node")


class FxRateViewSet(viewsets.ReadOnlyModelViewSet):
    """Daily FX rates, USD per unit of the currency, newest first."""

    queryset = FxRate.objects.all()
    serializer_class = FxRateSerializer
    filterset_class = FxRateFilterSet
    ordering_fields = ("day",)
    ordering = ("-day", "currency")


class AncillaryPriceViewSet(viewsets.ReadOnlyModelViewSet):
    """Ancillary-service clearing prices (USD per MW of capacity per hour), newest first."""

    queryset = AncillaryPrice.objects.all()
    serializer_class = AncillaryPriceSerializer
    filterset_class = AncillaryPriceFilterSet
    ordering_fields = ("interval_start", "price_usd_per_mw_h")
    ordering = ("-interval_start", "service")


class SystemLoadViewSet(viewsets.ReadOnlyModelViewSet):
    """System and zone load (MW), actual or day-ahead forecast, newest first."""

    queryset = SystemLoad.objects.all()
    serializer_class = SystemLoadSerializer
    filterset_class = SystemLoadFilterSet
    ordering_fields = ("interval_start", "load_mw")
    ordering = ("-interval_start", "zone")


routes: list[tuple] = [
    ("price-nodes", PriceNodeViewSet, "price-node"),
    ("fx-rates", FxRateViewSet, "fx-rate"),
    ("ancillary-prices", AncillaryPriceViewSet, "ancillary-price"),
    ("system-load", SystemLoadViewSet, "system-load"),
]
