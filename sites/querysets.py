"""Chainable reads of the physical world."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TypedDict

from django.db import models
from django.db.models import Case, CharField, DecimalField, ExpressionWrapper, F, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, Concat, Now, Upper

from .choices import SiteStatus

KW = DecimalField(max_digits=14, decimal_places=3)


class PowerSummary(TypedDict):
    """What `SiteQuerySet.with_power_summary` annotates on each site (kW of IT load)."""

    installed_kw: Decimal
    running_kw: Decimal


class LatestEnergyPrice(TypedDict):
    """What `SiteQuerySet.with_latest_energy_price` annotates on each site (None: no price yet)."""

    latest_price_usd_per_mwh: Decimal | None
    latest_price_at: datetime | None


class LatestTemperature(TypedDict):
    """What `SiteQuerySet.with_latest_temperature` annotates on each site (None: no reading yet)."""

    latest_temperature_c: Decimal | None
    latest_temperature_at: datetime | None


class PriceSource(TypedDict):
    """What `SiteQuerySet.with_price_source` annotates on each site."""

    price_source: str


class SiteSummary(PowerSummary, LatestEnergyPrice):
    """A site read with both `with_power_summary` and `with_latest_energy_price`."""


class SiteQuerySet(models.QuerySet):
    def online(self) -> SiteQuerySet:
        return self.filter(status=SiteStatus.ONLINE)

    def with_power_summary(self) -> SiteQuerySet:
        """Annotate installed and running IT power in kW (one aggregate join, no N+1)."""
        per_unit = F("inventories__hardware_model__power_kw_per_unit")
        return self.annotate(
            installed_kw=Coalesce(
                Sum(ExpressionWrapper(F("inventories__units_installed") * per_unit, output_field=KW)),
                Value(0, output_field=KW),
            ),
            running_kw=Coalesce(
                Sum(ExpressionWrapper(F("inventories__units_running") * per_unit, output_field=KW)),
                Value(0, output_field=KW),
            ),
        )

    def with_latest_energy_price(self, at: datetime | None = None) -> SiteQuerySet:
        """Annotate the newest stored energy price (USD/MWh) whose interval starts at or before `at` (default: the
        database's now, read when the query runs, so a view's class-level queryset stays current) and its interval
        start: a stored day-ahead price for a later interval is not the price now."""
        from .models import EnergyPrice

        newest = EnergyPrice.objects.filter(site=OuterRef("pk"), interval_start__lte=at or Now()).order_by(
            "-interval_start"
        )
        return self.annotate(
            latest_price_usd_per_mwh=Subquery(newest.values("price_usd_per_mwh")[:1]),
            latest_price_at=Subquery(newest.values("interval_start")[:1]),
        )

    def with_price_source(self) -> SiteQuerySet:
        """Annotate ``price_source``: where the site's price comes from, ``ERCOT HB_HUBAVG (USD, 15 min)`` or
        ``simulator`` (the same text as ``PriceNode.label``), in the same query."""
        node = Concat(
            Upper("price_node__market"), Value(" "), "price_node__node", Value(" ("), "price_node__currency",
            Value(", "), Cast("price_node__resolution_minutes", CharField()), Value(" min)"),
            output_field=CharField(),
        )  # fmt: skip
        return self.annotate(
            price_source=Case(
                When(price_node__isnull=True, then=Value("simulator")), default=node, output_field=CharField()
            )
        )

    def with_latest_temperature(self, at: datetime | None = None) -> SiteQuerySet:
        """Annotate the newest temperature reading (°C) at or before `at` (default: the database's now) and its
        time: stored weather forecasts (readings after it) are not observations."""
        from .models import WeatherReading

        newest = WeatherReading.objects.filter(site=OuterRef("pk"), observed_at__lte=at or Now()).order_by(
            "-observed_at"
        )
        return self.annotate(
            latest_temperature_c=Subquery(newest.values("temperature_c")[:1]),
            latest_temperature_at=Subquery(newest.values("observed_at")[:1]),
        )


class EnergyPriceQuerySet(models.QuerySet):
    def for_window(self, start: datetime, end: datetime) -> EnergyPriceQuerySet:
        return self.filter(interval_start__gte=start, interval_start__lt=end)


class MarketPriceQuerySet(models.QuerySet):
    def for_window(self, start: datetime, end: datetime) -> MarketPriceQuerySet:
        return self.filter(interval_start__gte=start, interval_start__lt=end)

    def newest(self):
        return self.order_by("-interval_start").first()


class WeatherReadingQuerySet(models.QuerySet):
    def for_window(self, start: datetime, end: datetime) -> WeatherReadingQuerySet:
        return self.filter(observed_at__gte=start, observed_at__lt=end)
