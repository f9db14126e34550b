"""Models of the real markets (registered through ``sites.models``, app label ``sites``).

- ``PriceNode``: where a site buys power (market, node or zone, currency, native resolution). A site without one
  keeps the simulator.
- ``FxRate``: the daily rate that converts a currency to USD (stored, admin-editable, importable; never a constant).
- ``AncillaryPrice``: an ancillary-service clearing price, USD per MW of capacity per hour.
- ``SystemLoad``: a market's (or one of its zones') load, MW, actual or day-ahead forecast.

Times are interval starts in UTC; ``interval_minutes`` keeps the native resolution.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from sites.choices import DataSource

from .choices import AncillaryService, Currency, LoadKind, Market

NODE_NAME = RegexValidator(r"^[A-Za-z0-9_.\-]+$", "Letters, digits, '_', '.' and '-' only (e.g. HB_HUBAVG, DE-LU).")
RESOLUTIONS = (5, 15, 30, 60)


class PriceNode(models.Model):
    """A market's price node or zone that sites buy from, e.g. ERCOT HB_HUBAVG, ENTSO-E DE-LU, AEMO NSW1."""

    market = models.CharField(max_length=10, choices=Market.choices)
    node = models.CharField(
        max_length=40,
        validators=[NODE_NAME],
        help_text="Settlement point, bidding zone or region, as the market names it.",
    )
    currency = models.CharField(max_length=3, choices=Currency.choices, help_text="Currency the market settles in.")
    resolution_minutes = models.PositiveSmallIntegerField(
        choices=[(minutes, f"{minutes} min") for minutes in RESOLUTIONS], help_text="Native price interval."
    )
    description = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ("market", "node")
        constraints = [
            models.UniqueConstraint(
                fields=("market", "node"),
                name="%(app_label)s_%(class)s_unique_market_node",
                violation_error_message="This market already has this node.",
            ),
            models.CheckConstraint(
                condition=Q(resolution_minutes__in=RESOLUTIONS),
                name="%(app_label)s_%(class)s_resolution_valid",
                violation_error_message="The resolution must be 5, 15, 30 or 60 minutes.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_market_display()} {self.node}"

    @property
    def label(self) -> str:
        """Short form for cards and tables: ``ERCOT HB_HUBAVG (USD, 15 min)``."""
        return f"{self.market.upper()} {self.node} ({self.currency}, {self.resolution_minutes} min)"


class FxRate(models.Model):
    """USD per one unit of a currency on one day (e.g. EUR 2024-01-02: 1.0956)."""

    day = models.DateField()
    currency = models.CharField(max_length=3, choices=Currency.choices)
    usd_per_unit = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(Decimal("0.000001"))]
    )
    source = models.CharField(max_length=20, choices=DataSource.choices)
    history = HistoricalRecords()

    class Meta:
        ordering = ("-day", "currency")
        verbose_name = "FX rate"
        constraints = [
            models.UniqueConstraint(
                fields=("currency", "day"),
                name="%(app_label)s_%(class)s_unique_currency_day",
                violation_error_message="This currency already has a rate for this day.",
            ),
            models.CheckConstraint(
                condition=Q(usd_per_unit__gt=0),
                name="%(app_label)s_%(class)s_rate_positive",
                violation_error_message="An FX rate must be positive.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.day:%Y-%m-%d} {self.usd_per_unit} USD"


class AncillaryPrice(models.Model):
    """An ancillary-service clearing price for one interval, USD per MW of capacity per hour."""

    market = models.CharField(max_length=10, choices=Market.choices, default=Market.ERCOT)
    service = models.CharField(max_length=10, choices=AncillaryService.choices)
    interval_start = models.DateTimeField()
    interval_minutes = models.PositiveSmallIntegerField(default=60)
    price_usd_per_mw_h = models.DecimalField(
        max_digits=12, decimal_places=4, validators=[MinValueValidator(-1000), MaxValueValidator(100000)]
    )
    source = models.CharField(max_length=20, choices=DataSource.choices)

    class Meta:
        ordering = ("-interval_start", "service")
        indexes = [models.Index(fields=("service", "-interval_start"), name="sites_ancil_service_time_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=("market", "service", "interval_start"),
                name="%(app_label)s_%(class)s_unique_service_interval",
                violation_error_message="This service already has a price for this interval.",
            ),
            models.CheckConstraint(
                condition=Q(price_usd_per_mw_h__gte=-1000, price_usd_per_mw_h__lte=100000),
                name="%(app_label)s_%(class)s_price_plausible",
                violation_error_message="An ancillary price must be between -1,000 and 100,000 USD per MW-hour.",
            ),
            models.CheckConstraint(
                condition=Q(interval_minutes__gt=0),
                name="%(app_label)s_%(class)s_interval_positive",
                violation_error_message="The interval length must be positive.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.service} {self.interval_start:%Y-%m-%d %H:%M} {self.price_usd_per_mw_h} USD/MW-h"


class SystemLoad(models.Model):
    """A market's load over one interval, MW: the whole system (zone ``SYSTEM``) or one zone, actual or forecast."""

    market = models.CharField(max_length=10, choices=Market.choices, default=Market.ERCOT)
    zone = models.CharField(max_length=20, validators=[NODE_NAME], help_text="SYSTEM, a weather zone or a region.")
    kind = models.CharField(max_length=10, choices=LoadKind.choices, default=LoadKind.ACTUAL)
    interval_start = models.DateTimeField()
    interval_minutes = models.PositiveSmallIntegerField(default=60)
    load_mw = models.DecimalField(
        max_digits=12, decimal_places=3, validators=[MinValueValidator(0), MaxValueValidator(10_000_000)]
    )
    source = models.CharField(max_length=20, choices=DataSource.choices)

    class Meta:
        ordering = ("-interval_start", "zone")
        indexes = [models.Index(fields=("market", "zone", "-interval_start"), name="sites_load_zone_time_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=("market", "zone", "kind", "interval_start"),
                name="%(app_label)s_%(class)s_unique_zone_interval",
                violation_error_message="This zone already has a load of this kind for this interval.",
            ),
            models.CheckConstraint(
                condition=Q(load_mw__gte=0),
                name="%(app_label)s_%(class)s_load_not_negative",
                violation_error_message="A load cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(interval_minutes__gt=0),
                name="%(app_label)s_%(class)s_interval_positive",
                violation_error_message="The interval length must be positive.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.zone} {self.kind} {self.interval_start:%Y-%m-%d %H:%M} {self.load_mw} MW"
