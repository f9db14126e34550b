"""Read serializers of the physical world. Fields are listed explicitly; computed fields are read-only.

Decimals render as strings (COERCE_DECIMAL_TO_STRING), so no money or power value loses precision in JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sites.choices import DataSource, SiteStatus
from sites.models import EnergyPrice, HardwareModel, MarketPrice, PriceNode, Site, SiteInventory, WeatherReading
from sites.querysets import SiteSummary

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

UTILIZATION_PLACES = Decimal("0.0001")


def data_age_seconds(at: datetime | None, now: datetime) -> int | None:
    """Whole seconds since `at`; None when there is no data. An interval that has not started yet is 0 s old."""
    if at is None:
        return None
    return max(0, int((now - at).total_seconds()))


def is_stale(age_seconds: int | None) -> bool:
    """Missing data, or data older than settings.ENERGYARB["MAX_DATA_AGE_MINUTES"], is stale."""
    return age_seconds is None or age_seconds > settings.ENERGYARB["MAX_DATA_AGE_MINUTES"] * 60


def _now(context: Mapping[str, Any]) -> datetime:
    """One `now` per request (the view puts it in the context) so every row of a page ages alike."""
    return context.get("now") or timezone.now()


class HardwareModelSerializer(serializers.ModelSerializer):
    efficiency_j_per_th = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="Miners only: joules per terahash (W per TH/s); lower is better.",
    )

    class Meta:
        model = HardwareModel
        fields = (
            "id",
            "code",
            "name",
            "kind",
            "cooling_type",
            "power_kw_per_unit",
            "hashrate_th_per_s",
            "tokens_per_s",
            "efficiency_j_per_th",
        )
        read_only_fields = fields


class SiteInventorySerializer(serializers.ModelSerializer):
    """One inventory line, flattened with the hardware facts a client needs to reason about power."""

    hardware_model: serializers.SlugRelatedField[HardwareModel] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    kind = serializers.CharField(source="hardware_model.kind", read_only=True)
    power_kw_per_unit = serializers.DecimalField(
        source="hardware_model.power_kw_per_unit", max_digits=8, decimal_places=3, read_only=True
    )

    class Meta:
        model = SiteInventory
        fields = ("hardware_model", "kind", "units_installed", "units_available", "units_running", "power_kw_per_unit")
        read_only_fields = fields


class PriceNodeBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = PriceNode
        fields = ("market", "node", "currency", "resolution_minutes")
        read_only_fields = fields


class SiteSerializer(serializers.ModelSerializer):
    """A site with its inventory, power summary and newest energy price.

    Expects the queryset of `SiteViewSet` (with_power_summary().with_latest_energy_price() and the inventory
    prefetched); that keeps a page of sites at a constant number of queries.
    """

    inventory = SiteInventorySerializer(source="inventories", many=True, read_only=True)
    installed_kw = serializers.DecimalField(
        max_digits=14, decimal_places=3, read_only=True, help_text="IT power of all installed units, kW."
    )
    running_kw = serializers.DecimalField(
        max_digits=14, decimal_places=3, read_only=True, help_text="IT power of the units running now, kW."
    )
    utilization = serializers.SerializerMethodField(help_text="running_kw / power_capacity_kw (0 when no capacity).")
    latest_price_usd_per_mwh = serializers.DecimalField(
        max_digits=10, decimal_places=2, read_only=True, allow_null=True, help_text="Newest stored energy price."
    )
    latest_price_at = serializers.DateTimeField(read_only=True, allow_null=True)
    latest_price_age_seconds = serializers.SerializerMethodField(help_text="Seconds since latest_price_at.")
    price_node = PriceNodeBriefSerializer(read_only=True, allow_null=True)
    price_source = serializers.SerializerMethodField(
        help_text="Where the site's price comes from: a node, or simulator."
    )

    class Meta:
        model = Site
        fields = (
            "id",
            "code",
            "name",
            "country",
            "latitude",
            "longitude",
            "time_zone",
            "climate_zone",
            "cooling_type",
            "market_region",
            "power_capacity_kw",
            "renewable_share",
            "grid_region",
            "grid_carbon_kg_per_mwh",
            "energy_cost_multiplier",
            "status",
            "status_changed_at",
            "inventory",
            "installed_kw",
            "running_kw",
            "utilization",
            "latest_price_usd_per_mwh",
            "latest_price_at",
            "latest_price_age_seconds",
            "price_node",
            "price_source",
        )
        read_only_fields = fields

    def get_price_source(self, site: Site) -> str:
        return site.price_node.label if site.price_node is not None else "simulator"

    @extend_schema_field(serializers.DecimalField(max_digits=9, decimal_places=4))
    def get_utilization(self, site: WithAnnotations[Site, SiteSummary]) -> str:
        if not site.power_capacity_kw:
            return str(Decimal(0).quantize(UTILIZATION_PLACES))
        return str((site.running_kw / site.power_capacity_kw).quantize(UTILIZATION_PLACES))

    @extend_schema_field(serializers.IntegerField(allow_null=True, min_value=0))
    def get_latest_price_age_seconds(self, site: WithAnnotations[Site, SiteSummary]) -> int | None:
        return data_age_seconds(site.latest_price_at, _now(self.context))


class EnergyPriceSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )

    class Meta:
        model = EnergyPrice
        fields = (
            "id", "site", "grid_region", "interval_start", "interval_minutes", "price_usd_per_mwh", "source",
            "native_currency", "native_price_per_mwh",
        )  # fmt: skip
        read_only_fields = fields


class MarketPriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = MarketPrice
        fields = ("id", "interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok", "source")
        read_only_fields = fields


class WeatherReadingSerializer(serializers.ModelSerializer):
    site: serializers.SlugRelatedField[Site] = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = WeatherReading
        fields = ("id", "site", "observed_at", "temperature_c", "source")
        read_only_fields = fields


class LatestMarketPriceSerializer(serializers.Serializer):
    """The newest market interval and how old it is."""

    interval_start = serializers.DateTimeField()
    hashprice_usd_per_ph_day = serializers.DecimalField(max_digits=10, decimal_places=4)
    inference_price_usd_per_mtok = serializers.DecimalField(max_digits=10, decimal_places=4)
    # DRF's serializer metaclass takes declared fields out of the class, so this never shadows `Field.source`.
    source = serializers.ChoiceField(choices=DataSource.choices)  # type: ignore[assignment]
    age_seconds = serializers.IntegerField(min_value=0)
    stale = serializers.BooleanField()


class LatestSitePriceSerializer(serializers.Serializer):
    """One site's newest energy price; a site without any price is reported stale with nulls."""

    site = serializers.CharField(help_text="Site code.")
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=SiteStatus.choices)
    price_usd_per_mwh = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    interval_start = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.IntegerField(min_value=0, allow_null=True)
    stale = serializers.BooleanField()


class LatestPricesSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(help_text="The server time the ages are measured from.")
    max_data_age_minutes = serializers.IntegerField(help_text="Data older than this is flagged stale.")
    market = LatestMarketPriceSerializer(allow_null=True, help_text="Null when no market price is stored.")
    sites = LatestSitePriceSerializer(many=True)
