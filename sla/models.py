"""The commercial world: SLA tiers, customers, quotes, contracts, where contracts run, and what they delivered."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.db import PreparedBulkCreateQuerySet
from core.lifecycle import LifecycleMixin
from sites.choices import MarketRegion
from sites.models import Site

from .capacity import uptime_pct
from .choices import CONTRACT_TRANSITIONS, ContractStatus, DeliverySource, PlacementKind, TierCode
from .querysets import ContractQuerySet, PlacementQuerySet, QuoteQuerySet

ZERO = Decimal("0")
HUNDRED = Decimal("100")


def cancellation_fee_pct_now() -> Decimal:
    """The cancellation fee a quote or contract written now carries in its terms (SLA_CANCELLATION_FEE_PCT)."""
    return Decimal(str(settings.ENERGYARB["SLA_CANCELLATION_FEE_PCT"])).quantize(Decimal("0.01"))


def _cancellation_fee_pct(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=cancellation_fee_pct_now,
        validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)],
        help_text="Cancelling costs this % of the quoted total of the part of the window not yet served.",
        **kwargs,
    )


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


class Quote(models.Model):
    """A priced offer for capacity, with the sites it would be placed on, valid until a deadline.

    A quote reserves nothing: admission runs again, under locks, when the contract is bought; only the price is
    held until `valid_until`. A quote is used by at most one contract (Contract.quote is unique).
    """

    # No index of its own: sla_quote_customer_created_idx (customer, created_at) leads with it and serves every
    # lookup by customer (a customer's quotes, the cascade when a customer is deleted); a second one only cost
    # an index insertion per quote (tests/sla/test_indexes.py).
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="quotes", db_index=False)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="quotes")
    capacity_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    region_preference = models.CharField(max_length=10, choices=MarketRegion.choices, blank=True)
    token_price_usd_per_mtok = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(ZERO)], help_text="Token price used."
    )
    token_price_source = models.CharField(
        max_length=10,
        help_text="'market' (newest stored MarketPrice) or 'default' (none stored): shown for reference, not charged.",
    )
    tokens_per_s_per_kw = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(ZERO)], help_text="Mean over the sites."
    )
    base_value_usd_per_kwh = models.DecimalField(max_digits=12, decimal_places=6, validators=[MinValueValidator(ZERO)])
    tier_multiplier = models.DecimalField(max_digits=5, decimal_places=2)
    utilization_pct = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)]
    )
    utilization_factor = models.DecimalField(max_digits=6, decimal_places=4)
    price_usd_per_kwh = models.DecimalField(max_digits=12, decimal_places=6, validators=[MinValueValidator(ZERO)])
    total_usd = models.DecimalField(max_digits=16, decimal_places=2, validators=[MinValueValidator(ZERO)])
    base_rate_usd_per_kw_month = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=ZERO,
        validators=[MinValueValidator(ZERO)],
        help_text="The rate card's 1.0x rate the quote was priced on.",
    )
    price_usd_per_kw_month = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=ZERO,
        validators=[MinValueValidator(ZERO)],
        help_text="Base rate x tier multiplier x utilization factor; the price per kWh is this / 730.",
    )
    sites = models.JSONField(
        default=list, help_text="The placement it was priced on: [{site, name, market_region, capacity_kw}]."
    )
    cancellation_fee_pct = _cancellation_fee_pct()
    valid_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = QuoteQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("customer", "-created_at"), name="sla_quote_customer_created_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity_kw__gt=0),
                name="%(app_label)s_%(class)s_capacity_positive",
                violation_error_message="Capacity must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="%(app_label)s_%(class)s_ends_after_start",
                violation_error_message="A quote's window must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(price_usd_per_kwh__gte=0, total_usd__gte=0, base_value_usd_per_kwh__gte=0),
                name="%(app_label)s_%(class)s_price_not_negative",
                violation_error_message="Quoted prices cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"Quote {self.pk} ({self.tier_id and self.tier.code}, {self.capacity_kw} kW)"

    def is_valid_at(self, moment: datetime) -> bool:
        return moment < self.valid_until

    @property
    def duration_hours(self) -> Decimal:
        return Decimal((self.ends_at - self.starts_at).total_seconds()) / 3600


class PreparedHistoryRows(models.Model):
    """Base of Contract's history model (HistoricalRecords' `bases`): simple-history's `bulk_history_create` builds
    each history row and hands it to the model's `objects.bulk_create`, which writes it as a prepared INSERT
    (core.db.PreparedBulkCreateQuerySet: the same statement and row, compiled once per process instead of once per
    admission). Abstract, and its manager is not used in migrations: the schema and migrations are unchanged."""

    objects = PreparedBulkCreateQuerySet.as_manager()

    class Meta:
        abstract = True


class Contract(LifecycleMixin, models.Model):
    """A customer's commitment: this much inference capacity, under this tier, for this window."""

    TRANSITIONS = CONTRACT_TRANSITIONS  # its lifecycle (core.lifecycle)

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contracts")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="contracts")
    capacity_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
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
    quote = models.OneToOneField(
        Quote,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="contract",
        help_text="The quote it was bought from; unique, so a quote buys at most one contract.",
    )
    admitted_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When admission control placed it; a contract is only started once admitted.",
    )
    cancellation_fee_pct = _cancellation_fee_pct()
    cancellation_fee_usd = models.DecimalField(
        max_digits=16,
        decimal_places=2,
        null=True,
        blank=True,
        editable=False,
        validators=[MinValueValidator(ZERO)],
        help_text="What cancelling cost, set when the contract is cancelled (sla.capacity.cancellation_fee_usd).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The history rows are read by contract (`id`, indexed) and by date; their customer, tier and quote columns
    # are copies without a constraint or a delete rule (simple-history: DO_NOTHING), never looked up, so they get
    # no index: each cost an index insertion per admission (tests/sla/test_indexes.py).
    history = HistoricalRecords(no_db_index=["customer", "tier", "quote"], bases=[PreparedHistoryRows])

    objects = ContractQuerySet.as_manager()

    # Read with a contract beyond its columns, set by `ContractQuerySet.with_details()` (prefetched lists),
    # `with_uptime()` (kW-minutes) and `with_placed_kw()`, or by admission on a contract it has just written; absent
    # otherwise. Declared for the type checker only: no column, no class attribute.
    placement_list: list[Placement]
    service_credit_list: list[ServiceCredit]
    preemption_notice_list: list[PreemptionNotice]
    downtime_list: list[Downtime]
    delivered_kw_minutes: Decimal
    committed_kw_minutes: Decimal
    placed_kw_now: Decimal

    class Meta:
        ordering = ("-starts_at", "-id")
        indexes = [
            models.Index(fields=("status", "starts_at", "ends_at"), name="sla_contract_status_window_idx"),
            # The dashboard's latest contracts (newest first, LIMIT n) without sorting the whole table.
            models.Index(fields=("-created_at", "-id"), name="sla_contract_newest_idx"),
        ]
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

    @property
    def duration_hours(self) -> Decimal:
        return Decimal((self.ends_at - self.starts_at).total_seconds()) / 3600

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.starts_at < end and start < self.ends_at

    @property
    def service_ended_at(self) -> datetime:
        """When it stops being owed: its end, or the moment it was cancelled / terminated / rejected earlier."""
        if self.status in (ContractStatus.CANCELLED, ContractStatus.TERMINATED, ContractStatus.REJECTED):
            return min(self.ends_at, max(self.status_changed_at or self.ends_at, self.starts_at))
        return self.ends_at

    def charge_usd_between(self, start: datetime, end: datetime) -> Decimal:
        """What the customer pays for [start, end): quoted price x capacity x hours of service in it (pure)."""
        lo, hi = max(start, self.starts_at), min(end, self.service_ended_at)
        if hi <= lo:
            return ZERO
        hours = Decimal((hi - lo).total_seconds()) / 3600
        return (self.quoted_price_usd_per_kwh * self.capacity_kw * hours).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )

    def due_kw_minutes_between(self, start: datetime, end: datetime) -> Decimal:
        """kW-minutes owed over [start, end): capacity x every minute of the service window in it (pure)."""
        lo, hi = max(start, self.starts_at), min(end, self.service_ended_at)
        if hi <= lo:
            return ZERO
        return self.capacity_kw * Decimal((hi - lo).total_seconds()) / 60

    def _uptime_as_of(self) -> datetime:
        return getattr(self, "uptime_as_of", None) or timezone.now()

    @property
    def uptime_to_date_pct(self) -> Decimal | None:
        """Served energy over what was owed every minute so far, in percent; needs `ContractQuerySet.with_uptime()`
        annotations; `uptime_as_of` (set it to measure at another moment) defaults to now. A minute without a
        delivery record counts as undelivered, as in the monthly credits (sla.services.uptime.monthly_uptime_pct)."""
        served = getattr(self, "delivered_kw_minutes", ZERO) or ZERO
        due = self.due_kw_minutes_between(self.starts_at, self._uptime_as_of())
        return uptime_pct(delivered_kw_minutes=min(served, due), committed_kw_minutes=due)

    @property
    def delivered_kwh(self) -> Decimal:
        return ((getattr(self, "delivered_kw_minutes", ZERO) or ZERO) / 60).quantize(Decimal("0.001"))

    @property
    def committed_kwh(self) -> Decimal:
        """kWh owed so far: every minute of the service window up to `uptime_as_of` (see `uptime_to_date_pct`)."""
        due = self.due_kw_minutes_between(self.starts_at, self._uptime_as_of())
        return (due / 60).quantize(Decimal("0.001"))


class Placement(models.Model):
    """Where a contract runs: kW at one site over [valid_from, valid_to); history is kept, never rewritten."""

    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="placements")
    # No index of its own: sla_placement_site_window_idx (site, valid_from, valid_to) leads with it and serves every
    # lookup by site (tests/sla/test_indexes.py); a second one cost an index insertion per placement.
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="placements", db_index=False)
    capacity_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=12, choices=PlacementKind.choices, default=PlacementKind.ADMISSION)
    moved_from = models.ForeignKey(
        Site,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The site this kW was moved off (failover, migration, return); empty for admission and replacement.",
    )
    reason = models.CharField(max_length=200, blank=True)
    # Kept by the database for every writer (sla migration 0013's triggers, PostgreSQL and SQLite), so admission
    # reads the committed load without joining the contract and tier: never set them, a value written is replaced
    # by the contract's. An instance holds what was read (a new one: False until refresh_from_db).
    held = models.BooleanField(
        default=False,
        editable=False,
        help_text="Its contract holds capacity (requested or active). Kept by the database (sla migration 0013).",
    )
    spot = models.BooleanField(
        default=False,
        editable=False,
        help_text="Its contract's tier is preemptible. Kept by the database (sla migration 0013).",
    )

    objects = PlacementQuerySet.as_manager()

    class Meta:
        ordering = ("contract", "valid_from", "id")
        indexes = [
            models.Index(fields=("site", "valid_from", "valid_to"), name="sla_placement_site_window_idx"),
            # Admission asks "what holds capacity after this moment": placements ending later (or never), which
            # stays a small slice of the table as history accumulates.
            models.Index(fields=("valid_to", "valid_from"), name="sla_placement_end_idx"),
        ]
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
            models.CheckConstraint(
                condition=Q(kind__in=PlacementKind.values),
                name="%(app_label)s_%(class)s_kind_valid",
                violation_error_message="Unknown placement kind.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contract_id} @ {self.site.code}: {self.capacity_kw} kW"


class PreemptionNotice(models.Model):
    """Notice to a Spot contract that it loses kW at a site from `effective_at`, issued before that moment.

    The lead time is what the displacing commitment leaves: until its window begins, or none when it begins at once
    (Spot never blocks a higher tier, so it cannot keep running past the moment the room is promised elsewhere).
    """

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="preemption_notices")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="preemption_notices")
    capacity_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    issued_at = models.DateTimeField()
    effective_at = models.DateTimeField()
    reason = models.CharField(max_length=200)
    displaced_by = models.ForeignKey(
        Contract,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="displacements",
        help_text="The higher-tier contract that took the room, if any.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ("-issued_at", "-id")
        indexes = [models.Index(fields=("contract", "-issued_at"), name="sla_preempt_contract_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_at__gte=F("issued_at")),
                name="%(app_label)s_%(class)s_notice_before_effect",
                violation_error_message="A preemption notice is issued before it takes effect.",
            ),
            models.CheckConstraint(
                condition=Q(capacity_kw__gt=0),
                name="%(app_label)s_%(class)s_capacity_positive",
                violation_error_message="Preempted capacity must be positive.",
            ),
        ]

    def __str__(self) -> str:
        return f"Contract {self.contract_id} loses {self.capacity_kw} kW at {self.site_id} from {self.effective_at}"

    @property
    def lead_seconds(self) -> float:
        return (self.effective_at - self.issued_at).total_seconds()


class Downtime(models.Model):
    """Committed kW a contract could not be served (a site failed and no other site had room), from when."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="downtimes")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="downtimes")
    unserved_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Empty while it lasts.")
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=("contract", "-started_at"), name="sla_downtime_contract_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(unserved_kw__gt=0),
                name="%(app_label)s_%(class)s_unserved_positive",
                violation_error_message="Unserved capacity must be positive.",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="%(app_label)s_%(class)s_ends_after_start",
                violation_error_message="Downtime ends after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"Contract {self.contract_id}: {self.unserved_kw} kW unserved from {self.started_at}"


class ContractDelivery(models.Model):
    """Committed vs delivered kW of one contract over one interval: as planned, or as measured by telemetry."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="deliveries")
    interval_start = models.DateTimeField()
    interval_minutes = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(1440)])
    committed_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(ZERO)])
    delivered_kw = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(ZERO)])
    source = models.CharField(
        max_length=5,
        choices=DeliverySource.choices,
        default=DeliverySource.PLAN,
        help_text="Where delivered_kw comes from: the applied plan, or the nodes' telemetry (which wins).",
    )
    # The plan applied last in the interval: the kW it runs for the contract and since when. A later plan in the
    # same interval replaces only the rest of the interval (record_deliveries weighs the kW by time).
    in_force_kw = models.DecimalField(
        max_digits=12, decimal_places=3, null=True, blank=True, validators=[MinValueValidator(ZERO)]
    )
    in_force_since = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("contract", "interval_start")
        verbose_name_plural = "contract deliveries"
        indexes = [models.Index(fields=("interval_start",), name="sla_delivery_interval_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=("contract", "interval_start"),
                name="%(app_label)s_%(class)s_unique_contract_interval",
                violation_error_message="This contract already has a delivery record for this interval.",
            ),
            models.CheckConstraint(
                condition=Q(committed_kw__gte=0, delivered_kw__gte=0),
                name="%(app_label)s_%(class)s_kw_not_negative",
                violation_error_message="Committed and delivered kW cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(interval_minutes__gte=1, interval_minutes__lte=1440),
                name="%(app_label)s_%(class)s_interval_1_1440",
                violation_error_message="An interval lasts between 1 minute and 1 day.",
            ),
        ]

    def __str__(self) -> str:
        when = f"{self.interval_start:%Y-%m-%d %H:%M}"
        return f"Contract {self.contract_id} {when}: {self.delivered_kw}/{self.committed_kw} kW"

    @property
    def served_kw(self) -> Decimal:
        """Delivered kW counted toward uptime: over-delivery in one interval never repays a shortfall in another."""
        return min(self.delivered_kw, self.committed_kw)


class ServiceCredit(models.Model):
    """A ledger entry: part of a month's charge given back because measured uptime fell below the tier's target."""

    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="service_credits")
    month = models.DateField(help_text="First day of the month it is for.")
    uptime_pct = models.DecimalField(
        max_digits=6, decimal_places=3, validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)]
    )
    credit_pct = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(ZERO), MaxValueValidator(HUNDRED)]
    )
    charge_usd = models.DecimalField(max_digits=16, decimal_places=2, validators=[MinValueValidator(ZERO)])
    credit_usd = models.DecimalField(max_digits=16, decimal_places=2, validators=[MinValueValidator(ZERO)])
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ("-month", "contract")
        constraints = [
            models.UniqueConstraint(
                fields=("contract", "month"),
                name="%(app_label)s_%(class)s_unique_contract_month",
                violation_error_message="This contract already has a credit for this month.",
            ),
            models.CheckConstraint(
                condition=Q(uptime_pct__gte=0, uptime_pct__lte=100) & Q(credit_pct__gt=0, credit_pct__lte=100),
                name="%(app_label)s_%(class)s_percentages_in_range",
                violation_error_message="Uptime is 0-100 % and a credit is more than 0 and at most 100 %.",
            ),
            models.CheckConstraint(
                condition=Q(credit_usd__gte=0, credit_usd__lte=F("charge_usd")),
                name="%(app_label)s_%(class)s_credit_within_charge",
                violation_error_message="A credit cannot exceed the month's charge.",
            ),
        ]

    def __str__(self) -> str:
        return f"Contract {self.contract_id} {self.month:%Y-%m}: {self.credit_pct} % = {self.credit_usd} USD"
