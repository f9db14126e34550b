"""django-filter FilterSets of the physical world.

Time windows are half-open, [after, before), like the `for_window` QuerySet methods. Sites are named by code.
"""

from __future__ import annotations

import django_filters as filters
from drf_spectacular.utils import extend_schema_field

from sites.models import EnergyPrice, HardwareModel, MarketPrice, Site, WeatherReading


@extend_schema_field({"type": "string", "minLength": 1, "description": "Site code; repeat to match any of several."})
class SiteCodeFilter(filters.ModelMultipleChoiceFilter):
    """Rows of the sites named by code. An unknown code answers 400: a typo should not look like "no data"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("field_name", "site__code")
        super().__init__(to_field_name="code", queryset=Site.objects.all(), **kwargs)


def _after(field_name: str) -> filters.IsoDateTimeFilter:
    return filters.IsoDateTimeFilter(
        field_name=field_name, lookup_expr="gte", help_text=f"{field_name} at or after (ISO 8601)."
    )


def _before(field_name: str) -> filters.IsoDateTimeFilter:
    return filters.IsoDateTimeFilter(
        field_name=field_name, lookup_expr="lt", help_text=f"{field_name} strictly before (ISO 8601)."
    )


class SiteFilterSet(filters.FilterSet):
    country = filters.CharFilter(lookup_expr="iexact", help_text="ISO 3166-1 alpha-2 code.")

    class Meta:
        model = Site
        fields = ("status", "market_region", "cooling_type", "climate_zone", "country", "grid_region")


class HardwareModelFilterSet(filters.FilterSet):
    class Meta:
        model = HardwareModel
        fields = ("kind", "cooling_type")


class EnergyPriceFilterSet(filters.FilterSet):
    site = SiteCodeFilter()
    after = _after("interval_start")
    before = _before("interval_start")

    class Meta:
        model = EnergyPrice
        fields = ("site", "grid_region", "source", "after", "before")


class MarketPriceFilterSet(filters.FilterSet):
    after = _after("interval_start")
    before = _before("interval_start")

    class Meta:
        model = MarketPrice
        fields = ("source", "after", "before")


class WeatherReadingFilterSet(filters.FilterSet):
    site = SiteCodeFilter()
    after = _after("observed_at")
    before = _before("observed_at")

    class Meta:
        model = WeatherReading
        fields = ("site", "source", "after", "before")
