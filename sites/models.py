"""The physical world: sites, their hardware, and the weather and prices they live with.

Units are in field names. Money and energy are Decimal. Times are aware datetimes stored in UTC.
Two price conventions exist and are kept apart on purpose:
- real units (EnergyPrice in USD/MWh, MarketPrice in USD per PH/s per day and USD per million tokens);
- the hackathon market API's abstract per-5-minute units (HackathonPrice), converted only in `sites.units`.
"""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from core.lifecycle import HistoryHooksMixin

from .choices import ClimateZone, CoolingType, DataSource, HardwareKind, MarketRegion, SiteStatus
from .markets.models import AncillaryPrice, FxRate, PriceNode, SystemLoad  # noqa: F401 (models of this app)
from .querysets import EnergyPriceQuerySet, MarketPriceQuerySet, SiteQuerySet, WeatherReadingQuerySet
from .validators import validate_time_zone

ZERO = Decimal("0")
ONE = Decimal("1")


class Site(HistoryHooksMixin, models.Model):
    """A data center that splits its power between Bitcoin mining and AI inference."""

    code = models.SlugField(max_length=40, unique=True, help_text="Stable identifier, e.g. site_3_norway.")
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 code.")
    latitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone], help_text="IANA name.")
    climate_zone = models.CharField(max_length=20, choices=ClimateZone.choices)
    cooling_type = models.CharField(max_length=20, choices=CoolingType.choices)
    market_region = models.CharField(
        max_length=10, choices=MarketRegion.choices, help_text="Region whose inference demand the site serves."
    )
    power_capacity_kw = models.DecimalField(
        max_digits=12, decimal_places=3, validators=[MinValueValidator(ZERO)], help_text="Facility power limit."
    )
    renewable_share = models.DecimalField(
        max_digits=4, decimal_places=3, validators=[MinValueValidator(ZERO), MaxValueValidator(ONE)]
    )
    grid_region = models.CharField(max_length=40, help_text="Power market or bidding zone, e.g. ERCOT, NO1.")
    grid_carbon_kg_per_mwh = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        validators=[MinValueValidator(ZERO)],
        default=Decimal("400"),
        help_text="Emissions of the grid's non-renewable energy.",
    )
    energy_cost_multiplier = models.DecimalField(
        max_digits=5,
        decimal_places=3,
        validators=[MinValueValidator(Decimal("0.01"))],
        default=ONE,
        help_text="Multiplies the regional energy price (tariffs, contracts).",
    )
    price_node = models.ForeignKey(
        PriceNode,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sites",
        help_text="Where the site buys power; empty: the simulator prices it.",
    )
    status = models.CharField(max_length=12, choices=SiteStatus.choices, default=SiteStatus.ONLINE)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = SiteQuerySet.as_manager()

    class Meta:
        ordering = ("code",)
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__gte=-90, latitude__lte=90) & Q(longitude__gte=-180, longitude__lte=180),
                name="%(app_label)s_%(class)s_coordinates_in_range",
                violation_error_message="Latitude must be within ±90° and longitude within ±180°.",
            ),
            models.CheckConstraint(
                condition=Q(renewable_share__gte=0, renewable_share__lte=1),
                name="%(app_label)s_%(class)s_renewable_share_0_1",
                violation_error_message="Renewable share is a fraction between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=Q(power_capacity_kw__gte=0),
                name="%(app_label)s_%(class)s_capacity_not_negative",
                violation_error_message="Power capacity cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(energy_cost_multiplier__gt=0),
                name="%(app_label)s_%(class)s_cost_multiplier_positive",
                violation_error_message="The energy cost multiplier must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=SiteStatus.values),
                name="%(app_label)s_%(class)s_status_valid",
                violation_error_message="Unknown site status.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def is_available(self) -> bool:
        """Only an online site may run hardware; maintenance and offline sites run nothing."""
        return self.status == SiteStatus.ONLINE

    @property
    def power_capacity_mw(self) -> Decimal:
        return self.power_capacity_kw / 1000

    def price_profile(self):
        """The simulator's energy-price profile of this site (pure: derived from its fields, no I/O)."""
        from .simulation import derive_site_price_profile

        return derive_site_price_profile(
            code=self.code,
            time_zone=self.time_zone,
            latitude=float(self.latitude),
            renewable_share=float(self.renewable_share),
            energy_cost_multiplier=float(self.energy_cost_multiplier),
            grid_region=self.grid_region,
        )

    def climate_profile(self):
        """The weather simulator's climate profile of this site (pure: derived from its fields, no I/O)."""
        from .simulation import derive_climate_profile

        return derive_climate_profile(
            latitude=float(self.latitude), climate_zone=self.climate_zone, time_zone=self.time_zone
        )


class HardwareModel(models.Model):
    """A catalogue entry: one kind of miner or inference node and its physics per unit."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=HardwareKind.choices)
    cooling_type = models.CharField(max_length=20, choices=CoolingType.choices)
    power_kw_per_unit = models.DecimalField(
        max_digits=8, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))]
    )
    hashrate_th_per_s = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text="Miners only: SHA-256 hashrate per unit in TH/s.",
    )
    tokens_per_s = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Inference only: sustained output tokens per second per unit.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ("kind", "code")
        constraints = [
            models.CheckConstraint(
                condition=Q(power_kw_per_unit__gt=0),
                name="%(app_label)s_%(class)s_power_positive",
                violation_error_message="Power per unit must be positive.",
            ),
            models.CheckConstraint(
                condition=(
                    # NULL would make a CHECK pass silently, hence the explicit isnull=False.
                    Q(kind=HardwareKind.MINER, hashrate_th_per_s__isnull=False, hashrate_th_per_s__gt=0)
                    & Q(tokens_per_s__isnull=True)
                    | Q(kind=HardwareKind.INFERENCE, tokens_per_s__isnull=False, tokens_per_s__gt=0)
                    & Q(hashrate_th_per_s__isnull=True)
                ),
                name="%(app_label)s_%(class)s_output_matches_kind",
                violation_error_message="A miner has a hashrate and no token rate; an inference node the reverse.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_miner(self) -> bool:
        return self.kind == HardwareKind.MINER

    @property
    def efficiency_j_per_th(self) -> Decimal | None:
        """Miner efficiency in joules per terahash (= W per TH/s); lower is better."""
        if not self.hashrate_th_per_s:
            return None
        return self.power_kw_per_unit * 1000 / self.hashrate_th_per_s


class SiteInventory(models.Model):
    """How many units of one hardware model a site has installed, available and running."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="inventories")
    hardware_model = models.ForeignKey(HardwareModel, on_delete=models.PROTECT, related_name="inventories")
    units_installed = models.PositiveIntegerField()
    units_available = models.PositiveIntegerField(help_text="Installed units fit to run (not broken or reserved).")
    units_running = models.PositiveIntegerField(default=0, help_text="Units powered by the applied allocation.")
    history = HistoricalRecords()

    class Meta:
        ordering = ("site__code", "hardware_model__code", "id")
        verbose_name_plural = "site inventories"
        constraints = [
            models.UniqueConstraint(
                fields=("site", "hardware_model"),
                name="%(app_label)s_%(class)s_unique_site_hardware",
                violation_error_message="This site already lists this hardware model.",
            ),
            models.CheckConstraint(
                condition=Q(units_available__lte=F("units_installed")),
                name="%(app_label)s_%(class)s_available_le_installed",
                violation_error_message="Units available cannot exceed units installed.",
            ),
            models.CheckConstraint(
                condition=Q(units_running__lte=F("units_available")),
                name="%(app_label)s_%(class)s_running_le_available",
                violation_error_message="Units running cannot exceed units available.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site.code}: {self.units_installed} x {self.hardware_model.code}"

    @property
    def installed_power_kw(self) -> Decimal:
        return self.units_installed * self.hardware_model.power_kw_per_unit

    @property
    def running_power_kw(self) -> Decimal:
        return self.units_running * self.hardware_model.power_kw_per_unit


class WeatherReading(models.Model):
    """Air temperature at a site at one moment (observed or forecast)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="weather_readings")
    observed_at = models.DateTimeField()
    temperature_c = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(-90), MaxValueValidator(60)]
    )
    source = models.CharField(max_length=20, choices=DataSource.choices)
    fetched_at = models.DateTimeField(auto_now_add=True)

    objects = WeatherReadingQuerySet.as_manager()

    class Meta:
        ordering = ("site", "-observed_at", "id")
        indexes = [models.Index(fields=("site", "-observed_at"), name="sites_weather_site_time_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=("site", "observed_at"),
                name="%(app_label)s_%(class)s_unique_site_time",
                violation_error_message="A reading for this site and time already exists.",
            ),
            models.CheckConstraint(
                condition=Q(temperature_c__gte=-90, temperature_c__lte=60),
                name="%(app_label)s_%(class)s_temperature_plausible",
                violation_error_message="Temperature must be between -90 °C and 60 °C.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site.code} {self.observed_at:%Y-%m-%d %H:%M} {self.temperature_c} °C"


class EnergyPrice(models.Model):
    """Wholesale energy price for one interval, for a site or for a whole grid region, in USD/MWh.

    Prices may be negative (surplus renewables): running load then earns money.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="energy_prices", null=True, blank=True)
    grid_region = models.CharField(max_length=40, blank=True)
    interval_start = models.DateTimeField()
    interval_minutes = models.PositiveSmallIntegerField(default=5)
    price_usd_per_mwh = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(-1000), MaxValueValidator(20000)]
    )
    source = models.CharField(max_length=20, choices=DataSource.choices)
    native_currency = models.CharField(
        max_length=3, default="USD", help_text="Currency the market quoted the price in (converted by FxRate)."
    )
    native_price_per_mwh = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="The price as quoted, per MWh."
    )

    objects = EnergyPriceQuerySet.as_manager()

    class Meta:
        ordering = ("-interval_start", "id")
        indexes = [models.Index(fields=("site", "-interval_start"), name="sites_energy_site_time_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(site__isnull=False, grid_region="") | Q(site__isnull=True) & ~Q(grid_region="")),
                name="%(app_label)s_%(class)s_site_xor_region",
                violation_error_message="An energy price belongs to a site or to a grid region, not both.",
            ),
            models.UniqueConstraint(
                fields=("site", "interval_start"),
                condition=Q(site__isnull=False),
                name="%(app_label)s_%(class)s_unique_site_interval",
                violation_error_message="This site already has a price for this interval.",
            ),
            models.UniqueConstraint(
                fields=("grid_region", "interval_start"),
                condition=Q(site__isnull=True),
                name="%(app_label)s_%(class)s_unique_region_interval",
                violation_error_message="This grid region already has a price for this interval.",
            ),
            models.CheckConstraint(
                condition=Q(price_usd_per_mwh__gte=-1000, price_usd_per_mwh__lte=20000),
                name="%(app_label)s_%(class)s_price_plausible",
                violation_error_message="Energy price must be between -1,000 and 20,000 USD/MWh.",
            ),
            models.CheckConstraint(
                condition=Q(interval_minutes__gt=0),
                name="%(app_label)s_%(class)s_interval_positive",
                violation_error_message="The interval length must be positive.",
            ),
        ]

    def __str__(self) -> str:
        owner = self.site.code if self.site is not None else self.grid_region
        return f"{owner} {self.interval_start:%Y-%m-%d %H:%M} {self.price_usd_per_mwh} USD/MWh"


class MarketPrice(models.Model):
    """Global market values for one interval: hashprice and the spot price of inference tokens."""

    interval_start = models.DateTimeField(unique=True)
    hashprice_usd_per_ph_day = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(ZERO), MaxValueValidator(10000)]
    )
    inference_price_usd_per_mtok = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(ZERO), MaxValueValidator(1000)]
    )
    source = models.CharField(max_length=20, choices=DataSource.choices)

    objects = MarketPriceQuerySet.as_manager()

    class Meta:
        ordering = ("-interval_start",)
        constraints = [
            models.CheckConstraint(
                condition=Q(hashprice_usd_per_ph_day__gte=0, inference_price_usd_per_mtok__gte=0),
                name="%(app_label)s_%(class)s_prices_not_negative",
                violation_error_message="Hashprice and token price cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.interval_start:%Y-%m-%d %H:%M} hashprice {self.hashprice_usd_per_ph_day}"


class HackathonPrice(models.Model):
    """One 5-minute interval of the MARA hackathon market API, in its own abstract units.

    Per interval: revenue = units x hashrate x hash_price (miners) or units x tokens x token_price
    (inference); power cost = watts x energy_price. These are not USD/MWh; `sites.units` converts.
    """

    interval_start = models.DateTimeField(unique=True)
    energy_price = models.DecimalField(max_digits=24, decimal_places=15, help_text="Abstract units per watt.")
    hash_price = models.DecimalField(max_digits=24, decimal_places=15, help_text="Abstract units per hashrate.")
    token_price = models.DecimalField(max_digits=24, decimal_places=15, help_text="Abstract units per token.")
    source = models.CharField(max_length=20, choices=DataSource.choices)

    class Meta:
        ordering = ("-interval_start",)
        constraints = [
            models.CheckConstraint(
                condition=Q(hash_price__gte=0, token_price__gte=0),
                name="%(app_label)s_%(class)s_prices_not_negative",
                violation_error_message="Hash and token prices cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"hackathon {self.interval_start:%Y-%m-%d %H:%M}"


class SourceFetch(models.Model):
    """One attempt to read an external source; failures are kept so staleness can be explained."""

    class Kind(models.TextChoices):
        ENERGY = "energy", "Energy prices"
        MARKET = "market", "Market prices"
        WEATHER = "weather", "Weather"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    source = models.CharField(max_length=20, choices=DataSource.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    rows_written = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-started_at", "id")
        indexes = [models.Index(fields=("kind", "-started_at"), name="sites_fetch_kind_time_idx")]

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "failed"
        return f"{self.kind} from {self.source} at {self.started_at:%Y-%m-%d %H:%M} ({outcome})"


# The MARA hackathon market API served under /mara/ (mara): its "site" is a tenant of that API, not a data
# center. A tenant gets an API key and a power budget in watts; its allocation counts units of the API's five
# machine types (see optimizer.engine.mara.HACKATHON_INVENTORY for their watts and outputs).

MARKET_API_SITE_POWER_W = 1_000_000  # what the hackathon gave every site
MARKET_API_KEY_LENGTH = 36


def generate_market_api_key() -> str:
    """A random key shaped like the event's (a UUID4 string), from the `secrets` module's CSPRNG."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


class MarketApiSite(models.Model):
    """A tenant of the served hackathon market API: created by ``POST /mara/sites``, identified by its API key.

    The key is stored as issued because the API's ``GET /sites`` answers with it, as the event's did; it grants
    access to this game surface only (no energyarb user, no /api/ access).
    """

    name = models.CharField(max_length=100)
    api_key = models.CharField(
        max_length=MARKET_API_KEY_LENGTH, unique=True, editable=False, default=generate_market_api_key
    )
    power_w = models.PositiveIntegerField(default=MARKET_API_SITE_POWER_W, help_text="Power budget in watts.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "market API site"
        constraints = [
            models.CheckConstraint(
                condition=Q(power_w__gt=0),
                name="%(app_label)s_%(class)s_power_positive",
                violation_error_message="A market API site's power must be positive.",
            ),
            models.CheckConstraint(
                condition=~Q(name=""),
                name="%(app_label)s_%(class)s_name_not_blank",
                violation_error_message="A market API site needs a name.",
            ),
            models.CheckConstraint(
                condition=~Q(api_key=""),
                name="%(app_label)s_%(class)s_api_key_not_blank",
                violation_error_message="A market API site needs an API key.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (market API site {self.pk})"


class MarketApiAllocation(models.Model):
    """The machines a market API site runs: unit counts of the API's five types (``PUT /mara/machines``).

    One per site. The total power may not exceed the site's; that check needs the inventory's watts per unit
    and is made by ``mara.services.set_market_api_allocation``, the only writer.
    """

    site = models.OneToOneField(MarketApiSite, on_delete=models.CASCADE, related_name="allocation")
    air_miners = models.PositiveIntegerField(default=0)
    hydro_miners = models.PositiveIntegerField(default=0)
    immersion_miners = models.PositiveIntegerField(default=0)
    gpu_compute = models.PositiveIntegerField(default=0)
    asic_compute = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    COUNT_FIELDS = ("air_miners", "hydro_miners", "immersion_miners", "gpu_compute", "asic_compute")

    class Meta:
        ordering = ("site", "id")
        verbose_name = "market API allocation"
        constraints = [
            models.CheckConstraint(
                condition=Q(air_miners__gte=0)
                & Q(hydro_miners__gte=0)
                & Q(immersion_miners__gte=0)
                & Q(gpu_compute__gte=0)
                & Q(asic_compute__gte=0),
                name="%(app_label)s_%(class)s_counts_not_negative",
                violation_error_message="Unit counts cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"allocation of market API site {self.site_id}"

    @property
    def counts(self) -> dict[str, int]:
        """API field -> units, in the API's field order."""
        return {name: getattr(self, name) for name in self.COUNT_FIELDS}
