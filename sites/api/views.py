"""Read-only API of the physical world: sites, hardware, prices and weather.

Authentication, `IsAuthenticated`, filtering backends and limit/offset pagination come from
settings.REST_FRAMEWORK; each ViewSet declares an ordered queryset with its joins so a page costs a constant
number of queries.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from sites.models import EnergyPrice, HardwareModel, MarketPrice, Site, SiteInventory, WeatherReading

from .filters import (
    EnergyPriceFilterSet,
    HardwareModelFilterSet,
    MarketPriceFilterSet,
    SiteFilterSet,
    WeatherReadingFilterSet,
)
from .serializers import (
    EnergyPriceSerializer,
    HardwareModelSerializer,
    LatestPricesSerializer,
    MarketPriceSerializer,
    SiteSerializer,
    WeatherReadingSerializer,
    data_age_seconds,
    is_stale,
)


class SiteViewSet(viewsets.ReadOnlyModelViewSet):
    """Sites with their inventory, installed / running kW, utilization and newest energy price.

    Query cost per page: one count, one for the sites (power summary aggregated, newest price as subqueries),
    one for their inventory lines with hardware models.
    """

    queryset = (
        Site.objects.select_related("price_node")
        .with_power_summary()
        .with_latest_energy_price()
        .prefetch_related(Prefetch("inventories", queryset=SiteInventory.objects.select_related("hardware_model")))
    )
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet
    lookup_field = "code"
    search_fields = ("code", "name", "grid_region")
    ordering_fields = (
        "code",
        "name",
        "country",
        "status",
        "power_capacity_kw",
        "installed_kw",
        "running_kw",
        "renewable_share",
        "latest_price_usd_per_mwh",
    )
    ordering = ("code",)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "now": timezone.now()}


class HardwareModelViewSet(viewsets.ReadOnlyModelViewSet):
    """The hardware catalogue: miners and inference nodes with their power and output per unit."""

    queryset = HardwareModel.objects.all()
    serializer_class = HardwareModelSerializer
    filterset_class = HardwareModelFilterSet
    lookup_field = "code"
    search_fields = ("code", "name")
    ordering_fields = ("code", "name", "kind", "power_kw_per_unit", "hashrate_th_per_s", "tokens_per_s")
    ordering = ("kind", "code")


class EnergyPriceViewSet(viewsets.ReadOnlyModelViewSet):
    """Energy prices per site or grid region, in USD/MWh, newest first."""

    queryset = EnergyPrice.objects.select_related("site")
    serializer_class = EnergyPriceSerializer
    filterset_class = EnergyPriceFilterSet
    ordering_fields = ("interval_start", "price_usd_per_mwh")
    ordering = ("-interval_start", "id")


class MarketPriceViewSet(viewsets.ReadOnlyModelViewSet):
    """Hashprice (USD per PH/s per day) and inference token price (USD per million tokens), newest first."""

    queryset = MarketPrice.objects.all()
    serializer_class = MarketPriceSerializer
    filterset_class = MarketPriceFilterSet
    ordering_fields = ("interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok")
    ordering = ("-interval_start",)


class WeatherReadingViewSet(viewsets.ReadOnlyModelViewSet):
    """Temperature readings per site, newest first."""

    queryset = WeatherReading.objects.select_related("site")
    serializer_class = WeatherReadingSerializer
    filterset_class = WeatherReadingFilterSet
    ordering_fields = ("observed_at", "temperature_c")
    ordering = ("-observed_at", "id")


class _SingleObjectSchema(AutoSchema):
    """The router names this endpoint's GET `list`, but it answers one object, not a page."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


class LatestPricesViewSet(viewsets.ViewSet):
    """A snapshot of how fresh the price data is: the newest market price and each site's newest energy price.

    Ages are measured from the interval start; data older than `max_data_age_minutes` (or missing) is flagged
    `stale`. Two queries, whatever the number of sites.
    """

    schema = _SingleObjectSchema()

    @extend_schema(responses=LatestPricesSerializer)
    def list(self, request: Request) -> Response:
        now = timezone.now()
        market = MarketPrice.objects.newest()
        market_data = None
        if market is not None:
            age = data_age_seconds(market.interval_start, now)
            market_data = {
                "interval_start": market.interval_start,
                "hashprice_usd_per_ph_day": market.hashprice_usd_per_ph_day,
                "inference_price_usd_per_mtok": market.inference_price_usd_per_mtok,
                "source": market.source,
                "age_seconds": age,
                "stale": is_stale(age),
            }
        sites = []
        for site in Site.objects.with_latest_energy_price().order_by("code"):
            age = data_age_seconds(site.latest_price_at, now)
            sites.append(
                {
                    "site": site.code,
                    "name": site.name,
                    "status": site.status,
                    "price_usd_per_mwh": site.latest_price_usd_per_mwh,
                    "interval_start": site.latest_price_at,
                    "age_seconds": age,
                    "stale": is_stale(age),
                }
            )
        payload = {
            "as_of": now,
            "max_data_age_minutes": settings.ENERGYARB["MAX_DATA_AGE_MINUTES"],
            "market": market_data,
            "sites": sites,
        }
        return Response(LatestPricesSerializer(payload).data)
