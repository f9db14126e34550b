"""The commercial world: SLA tiers, customers, contracts and where contracts run."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from sites.choices import MarketRegion
from sites.models import Site

from .choices import CONTRACT_TRANSITIONS, ContractStatus, TierCode
from .querysets import ContractQuerySet, PlacementQuerySet

ZERO = Decimal("0")
HUNDRED = Decimal("100")


class Tier(models.Model):
    """An SLA tier: its uptime promise, price multiplier, priority and redundancy rules."""

    code = models.CharField(max_length=10, choices=TierCode.choices, unique=True)
    name = models.CharField(max_length=40)
    uptime_target_pct = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)],
        help_text="Monthly uptime promised, in percent; empty for best effort.",
    )
    price_multiplier = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    priority = models.PositiveSmallIntegerField(unique=True, help_text="1 is served first.")
    is_preemptible = models.BooleanField(default=False)
    min_sites = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Sites a contract is spread over."
    )
    requires_n_minus_1 = models.BooleanField(
        default=False, help_text="Losing any one site must still leave the full capacity served."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ("priority", "code")
        constraints = [
            models.CheckConstraint(
                condition=Q(uptime_target_pct__isnull=True) | Q(uptime_target_pct__gte=0, uptime_target_pct__lte=100),
                name="%(app_label)s_%(class)s_uptime_0_100",
                violation_error_message="Uptime target is a percentage between 0 and 100.",
            ),
            models.CheckConstraint(
                condition=Q(price_multiplier__gt=0),
                name="%(app_label)s_%(class)s_multiplier_positive",
                violation_error_message="The price multiplier must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(min_sites__gte=1),
                name="%(app_label)s_%(class)s_min_sites_positive",
                violation_error_message="A tier needs at least one site.",
            ),
            models.CheckConstraint(
                condition=Q(requires_n_minus_1=False) | Q(min_sites__gte=2),
                name="%(app_label)s_%(class)s_n_minus_1_needs_two_sites",
                violation_error_message="N-1 redundancy needs at least two sites.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def credit_pct_for(self, uptime_pct: Decimal, rules: list[ServiceCreditRule] | None = None) -> Decimal:
        """Service credit (percent of the month's charge) owed for a month's measured uptime.

        The largest credit whose threshold the uptime falls below applies; pure, no I/O when `rules` is given.
        """
        rules = list(self.credit_rules.all()) if rules is None else rules
        owed = [rule.credit_pct for rule in rules if uptime_pct < rule.uptime_below_pct]
        return max(owed, default=ZERO)


class ServiceCreditRule(models.Model):
    """One step of a tier's credit schedule: uptime below X % earns Y % of the month's charge back."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="credit_rules")
    uptime_below_pct = models.DecimalField(
        max_digits=6, decimal_places=3, validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)]
    )
    credit_pct = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)]
    )

    class Meta:
        ordering = ("tier__priority", "-uptime_below_pct", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("tier", "uptime_below_pct"),
                name="%(app_label)s_%(class)s_unique_tier_threshold",
                violation_error_message="This tier already has a credit step at this threshold.",
            ),
            models.CheckConstraint(
                condition=Q(credit_pct__gte=0, credit_pct__lte=100)
                & Q(uptime_below_pct__gte=0, uptime_below_pct__lte=100),
                name="%(app_label)s_%(class)s_percentages_0_100",
                violation_error_message="Thresholds and credits are percentages between 0 and 100.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier.code}: below {self.uptime_below_pct} % -> {self.credit_pct} % credit"


class Customer(models.Model):
    """A buyer of inference capacity, tied to one login."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="customer")
    name = models.CharField(max_length=100)
    company = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name


class Contract(models.Model):
    """A customer's commitment: this much inference capacity, under this tier, for this window."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contracts")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="contracts")
    capacity_kw = models.DecimalField(
        max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))]
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=ContractStatus.choices, default=ContractStatus.REQUESTED)
    region_preference = models.CharField(max_length=10, choices=MarketRegion.choices, blank=True)
    quoted_price_usd_per_kwh = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(ZERO)]
    )
    quoted_total_usd = models.DecimalField(max_digits=16, decimal_places=2, validators=[MinValueValidator(ZERO)])
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = ContractQuerySet.as_manager()

    class Meta:
        ordering = ("-starts_at", "-id")
        indexes = [models.Index(fields=("status", "starts_at", "ends_at"), name="sla_contract_status_window_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity_kw__gt=0),
                name="%(app_label)s_%(class)s_capacity_positive",
                violation_error_message="Capacity must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="%(app_label)s_%(class)s_ends_after_start",
                violation_error_message="A contract must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ContractStatus.values),
                name="%(app_label)s_%(class)s_status_valid",
                violation_error_message="Unknown contract status.",
            ),
            models.CheckConstraint(
                condition=Q(quoted_price_usd_per_kwh__gte=0, quoted_total_usd__gte=0),
                name="%(app_label)s_%(class)s_price_not_negative",
                violation_error_message="Quoted prices cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"Contract {self.pk} ({self.tier_id and self.tier.code}, {self.capacity_kw} kW)"

    def can_transition_to(self, status: str) -> bool:
        """Whether the lifecycle allows moving from the current status to `status` (pure)."""
        return status in CONTRACT_TRANSITIONS.get(self.status, frozenset())

    @property
    def duration_hours(self) -> Decimal:
        return Decimal((self.ends_at - self.starts_at).total_seconds()) / 3600

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.starts_at < end and start < self.ends_at


class Placement(models.Model):
    """Where a contract runs: kW at one site over [valid_from, valid_to); history is kept, never rewritten."""

    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="placements")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="placements")
    capacity_kw = models.DecimalField(
        max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))]
    )
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)

    objects = PlacementQuerySet.as_manager()

    class Meta:
        ordering = ("contract", "valid_from", "id")
        indexes = [models.Index(fields=("site", "valid_from", "valid_to"), name="sla_placement_site_window_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity_kw__gt=0),
                name="%(app_label)s_%(class)s_capacity_positive",
                violation_error_message="Placed capacity must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="%(app_label)s_%(class)s_valid_to_after_from",
                violation_error_message="A placement must end after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contract_id} @ {self.site.code}: {self.capacity_kw} kW"
