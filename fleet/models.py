"""The machines behind the inventory: registered devices, per-site dispatch settings, the command audit, telemetry."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from sites.models import HardwareModel, Site

from .choices import Action, DeviceStatus, Driver, Outcome, RoundTrigger
from .querysets import DeviceQuerySet

credentials_ref_validator = RegexValidator(
    r"^[A-Z][A-Z0-9_]{0,99}$",
    "A credentials reference names an environment variable or a key of the secrets file (A-Z, 0-9, _), "
    "never the secret itself.",
)
DEFAULT_PORTS = {Driver.LUXOS: 4028, Driver.AVALON: 4028, Driver.NODE_AGENT: 9100}


class Device(models.Model):
    """One machine at a site: a miner or an inference node, where it answers and how to speak to it."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="devices")
    hardware_model = models.ForeignKey(HardwareModel, on_delete=models.PROTECT, related_name="devices")
    name = models.CharField(max_length=80, unique=True)
    driver = models.CharField(max_length=12, choices=Driver.choices)
    firmware_model = models.CharField(
        max_length=60, blank=True, help_text="Model as its firmware reports it (e.g. Antminer S21); empty: detected."
    )
    address = models.GenericIPAddressField(protocol="IPv4")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    credentials_ref = models.CharField(
        max_length=100,
        blank=True,
        validators=[credentials_ref_validator],
        help_text="Name of the environment variable or secrets-file key holding its credentials; empty: none.",
    )
    status = models.CharField(max_length=10, choices=DeviceStatus.choices, default=DeviceStatus.UNKNOWN)
    status_reason = models.CharField(max_length=200, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    is_running = models.BooleanField(default=False, help_text="Last read back as running (hashing or serving).")
    running_changed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it last started or stopped (minimum on/off times)."
    )
    power_w = models.FloatField(null=True, blank=True, help_text="Last power read (W).")
    placements = models.JSONField(default=list, blank=True, help_text="Contract placements it serves (nodes).")
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["last_seen_at", "power_w", "placements"])

    objects = DeviceQuerySet.as_manager()

    class Meta:
        ordering = ("site__code", "name", "id")
        indexes = [models.Index(fields=("site", "hardware_model", "status"), name="fleet_device_site_hw_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=("address", "port"),
                name="%(app_label)s_%(class)s_unique_endpoint",
                violation_error_message="Another device already answers at this address and port.",
            ),
            models.CheckConstraint(
                condition=Q(port__gte=1, port__lte=65535),
                name="%(app_label)s_%(class)s_port_range",
                violation_error_message="A port is between 1 and 65535.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.address}:{self.port})"

    @property
    def is_miner(self) -> bool:
        return self.driver != Driver.NODE_AGENT

    @property
    def nominal_w(self) -> float:
        return float(self.hardware_model.power_kw_per_unit) * 1000


class SiteFleet(models.Model):
    """How a site's devices are dispatched: kill switch, ramp limit, hysteresis, dry run, and its meter."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="fleet")
    kill_switch = models.BooleanField(default=False, help_text="On: every device of the site is stopped and held.")
    kill_switch_reason = models.CharField(max_length=200, blank=True)
    dry_run = models.BooleanField(default=False, help_text="Log the commands dispatch would send; send nothing.")
    ramp_kw_per_min = models.DecimalField(
        max_digits=10, decimal_places=1, default=Decimal("2000"), validators=[MinValueValidator(Decimal("1"))]
    )
    min_on_minutes = models.PositiveIntegerField(default=10, validators=[MaxValueValidator(1440)])
    min_off_minutes = models.PositiveIntegerField(default=5, validators=[MaxValueValidator(1440)])
    max_restarts_per_day = models.PositiveIntegerField(default=12, validators=[MinValueValidator(1)])
    meter_address = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    meter_port = models.PositiveIntegerField(default=9200, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    meter_credentials_ref = models.CharField(max_length=100, blank=True, validators=[credentials_ref_validator])
    history = HistoricalRecords()

    class Meta:
        ordering = ("site__code", "id")
        verbose_name = "site fleet settings"
        verbose_name_plural = "site fleet settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(ramp_kw_per_min__gt=0),
                name="%(app_label)s_%(class)s_ramp_positive",
                violation_error_message="The ramp limit must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(max_restarts_per_day__gte=1),
                name="%(app_label)s_%(class)s_restarts_positive",
                violation_error_message="At least one restart a day must be allowed.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site.code} fleet"


class DispatchRound(models.Model):
    """One pass of carrying the applied plan out on the machines."""

    trigger = models.CharField(max_length=12, choices=RoundTrigger.choices)
    run_id = models.PositiveBigIntegerField(null=True, blank=True, help_text="The optimizer run it carried out.")
    planned_at = models.DateTimeField(null=True, blank=True, help_text="When that plan was applied.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    summary = models.JSONField(default=dict, blank=True, help_text="Per site: sent, acknowledged, observed, faulted.")

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=("-started_at",), name="fleet_round_started_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=F("started_at")),
                name="%(app_label)s_%(class)s_finishes_after_start",
                violation_error_message="A round finishes after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"Dispatch {self.pk} ({self.trigger}) at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def lag_seconds(self) -> float | None:
        """From the plan being applied to the round finishing."""
        if self.planned_at is None or self.finished_at is None:
            return None
        return max((self.finished_at - self.planned_at).total_seconds(), 0.0)


class DeviceCommand(models.Model):
    """The audit of one command: what was desired, sent, acknowledged and read back, and how it ended."""

    round = models.ForeignKey(DispatchRound, on_delete=models.CASCADE, related_name="commands")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="commands")
    action = models.CharField(max_length=10, choices=Action.choices)
    desired_running = models.BooleanField()
    desired_power_w = models.FloatField(null=True, blank=True)
    sent = models.BooleanField(default=False)
    acknowledged = models.BooleanField(null=True, blank=True)
    observed_running = models.BooleanField(null=True, blank=True)
    observed_power_w = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=("device", "-created_at"), name="fleet_command_device_idx"),
            models.Index(fields=("-created_at",), name="fleet_command_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.device_id}: {self.outcome}"


class TelemetryReading(models.Model):
    """One poll of one device (raw; kept `FLEET_TELEMETRY_RETENTION_HOURS`, then only the rollups remain)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="readings")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="device_readings")
    observed_at = models.DateTimeField()
    running = models.BooleanField()
    power_w = models.FloatField(validators=[MinValueValidator(0)])
    hashrate_th_per_s = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    placements = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("-observed_at", "-id")
        indexes = [
            models.Index(fields=("device", "-observed_at"), name="fleet_reading_device_idx"),
            models.Index(fields=("site", "observed_at"), name="fleet_reading_site_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(power_w__gte=0),
                name="%(app_label)s_%(class)s_power_not_negative",
                violation_error_message="Power cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} at {self.observed_at:%H:%M:%S}: {self.power_w:.0f} W"


class MeterReading(models.Model):
    """One read of a site's meter: the site's real draw, the truth for energy cost and grid baselines."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="meter_readings")
    observed_at = models.DateTimeField()
    power_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0"))])

    class Meta:
        ordering = ("-observed_at", "-id")
        indexes = [models.Index(fields=("site", "-observed_at"), name="fleet_meter_site_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(power_kw__gte=0),
                name="%(app_label)s_%(class)s_power_not_negative",
                violation_error_message="Power cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site_id} meter at {self.observed_at:%H:%M:%S}: {self.power_kw} kW"


class SiteTelemetryRollup(models.Model):
    """Five minutes of a site: planned vs measured power, output, devices online and faulted."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="telemetry_rollups")
    bucket_start = models.DateTimeField()
    samples = models.PositiveIntegerField()
    device_power_kw = models.FloatField(help_text="Mean of the devices' summed power reads.")
    meter_power_kw = models.FloatField(null=True, blank=True, help_text="Mean of the meter's reads.")
    planned_it_kw = models.FloatField(null=True, blank=True, help_text="IT kW the applied plan ran.")
    hashrate_th_per_s = models.FloatField(default=0)
    tokens_per_s = models.FloatField(default=0)
    max_temperature_c = models.FloatField(null=True, blank=True)
    devices_online = models.PositiveIntegerField(default=0)
    devices_faulted = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("site__code", "-bucket_start", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("site", "bucket_start"),
                name="%(app_label)s_%(class)s_unique_site_bucket",
                violation_error_message="This site already has a rollup for this bucket.",
            ),
        ]
        indexes = [models.Index(fields=("bucket_start",), name="fleet_rollup_bucket_idx")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.bucket_start:%Y-%m-%d %H:%M}: {self.device_power_kw:.1f} kW"


__all__ = [
    "Action",
    "Device",
    "DeviceCommand",
    "DispatchRound",
    "MeterReading",
    "Outcome",
    "SiteFleet",
    "SiteTelemetryRollup",
    "TelemetryReading",
]
