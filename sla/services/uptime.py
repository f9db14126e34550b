"""Delivered vs committed capacity, monthly uptime, and service credits issued as ledger entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import DecimalField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Least
from django.utils import timezone

from .. import capacity
from ..choices import ContractStatus, DeliverySource
from ..models import (
    Contract,
    ContractDelivery,
    ServiceCredit,
)

ZERO = Decimal("0")
HUNDRED = Decimal("100")
KW_MINUTES = DecimalField(max_digits=20, decimal_places=3)


@dataclass(frozen=True)
class DeliveryRow:
    """One contract's committed and delivered kW over one interval (see `record_deliveries`)."""

    contract_id: int
    interval_start: datetime
    interval_minutes: int
    committed_kw: Decimal
    delivered_kw: Decimal


def _check_delivery(row: DeliveryRow) -> None:
    if not 1 <= row.interval_minutes <= 1440:
        raise ValueError(f"interval_minutes must be between 1 and 1440, not {row.interval_minutes}.")
    for name in ("committed_kw", "delivered_kw"):
        value = Decimal(getattr(row, name))
        if not value.is_finite() or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, not {value}.")
    if timezone.is_naive(row.interval_start):
        raise ValueError("interval_start must be an aware datetime.")


@transaction.atomic
def record_deliveries(*, rows: Iterable[DeliveryRow], source: str = DeliverySource.PLAN) -> int:
    """Upsert delivery records by (contract, interval_start); returns how many rows were written.

    Idempotent: recording the same interval again overwrites it (the optimizer re-applying a run corrects its
    own figures). A measured record (`source="meter"`, from the fleet's telemetry) overwrites the plan's
    estimate for its interval, and the plan's estimate never overwrites a measured one. One INSERT ... ON
    CONFLICT DO UPDATE per 500 rows.
    """
    rows = list(rows)
    for row in rows:
        _check_delivery(row)
    if source == DeliverySource.PLAN and rows:
        measured = set(
            ContractDelivery.objects.filter(
                source=DeliverySource.METER,
                contract_id__in={r.contract_id for r in rows},
                interval_start__in={r.interval_start for r in rows},
            ).values_list("contract_id", "interval_start")
        )
        rows = [r for r in rows if (r.contract_id, r.interval_start) not in measured]
    objs = [
        ContractDelivery(
            contract_id=row.contract_id,
            interval_start=row.interval_start,
            interval_minutes=row.interval_minutes,
            committed_kw=Decimal(row.committed_kw).quantize(Decimal("0.001")),
            delivered_kw=Decimal(row.delivered_kw).quantize(Decimal("0.001")),
            source=source,
            recorded_at=timezone.now(),
        )
        for row in rows
    ]
    ContractDelivery.objects.bulk_create(
        objs,
        batch_size=500,
        update_conflicts=True,
        unique_fields=("contract", "interval_start"),
        update_fields=("interval_minutes", "committed_kw", "delivered_kw", "source", "recorded_at"),
    )
    return len(objs)


def record_delivery(
    *,
    contract: Contract,
    interval_start: datetime,
    interval_minutes: int,
    committed_kw: Decimal,
    delivered_kw: Decimal,
) -> ContractDelivery:
    """Record what one contract was committed and actually delivered over one interval (upsert, idempotent).

    The optimizer calls this when it applies a run: committed = the contract's kW due in the interval,
    delivered = the inference kW its applied allocation really ran for the contract. Raises ValueError on a
    negative, non-finite or naive input.
    """
    record_deliveries(
        rows=[
            DeliveryRow(
                contract_id=contract.pk,
                interval_start=interval_start,
                interval_minutes=interval_minutes,
                committed_kw=committed_kw,
                delivered_kw=delivered_kw,
            )
        ]
    )
    return ContractDelivery.objects.get(contract=contract, interval_start=interval_start)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC for the month containing `month`."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


# Contracts that were (or are) in service: a month's minutes are owed from their start to `service_ended_at`.
SERVED_STATUSES = (
    ContractStatus.ACTIVE,
    ContractStatus.COMPLETED,
    ContractStatus.CANCELLED,
    ContractStatus.TERMINATED,
)


def served_kw_minutes(contracts: Iterable[int], *, start: datetime, end: datetime) -> dict[int, Decimal]:
    """kW-minutes served per contract by delivery records starting in [start, end) and in the contract's service
    window (after its start, before its end or the moment it was cancelled / terminated); each interval counts at
    most its committed kW (over-delivery never repays a shortfall). One grouped query."""
    served = ExpressionWrapper(Least("delivered_kw", "committed_kw") * F("interval_minutes"), KW_MINUTES)
    in_service = Q(interval_start__gte=F("contract__starts_at"), interval_start__lt=F("contract__ends_at")) & (
        Q(contract__status__in=(ContractStatus.ACTIVE, ContractStatus.COMPLETED))
        | Q(interval_start__lt=F("contract__status_changed_at"))
    )
    rows = (
        ContractDelivery.objects.filter(contract__in=list(contracts), interval_start__gte=start, interval_start__lt=end)
        .filter(in_service)
        .order_by()
        .values("contract")
        .annotate(served=Sum(served))
    )
    return {row["contract"]: Decimal(row["served"] or ZERO) for row in rows}


def monthly_uptime_pct(contract: Contract, *, served: Decimal, start: datetime, end: datetime) -> Decimal | None:
    """Uptime over every minute of the contract's service window in [start, end): served kW-minutes over capacity
    x minutes owed. A minute without a delivery record (a skipped or failed run, a control-plane outage) counts as
    undelivered. None when nothing was owed in the window."""
    due = contract.due_kw_minutes_between(start, end)
    return capacity.uptime_pct(delivered_kw_minutes=min(served, due), committed_kw_minutes=due)


@transaction.atomic
def issue_service_credits(*, month: date, now: datetime | None = None) -> int:
    """Issue the credits owed for a finished month; returns how many ledger entries were created.

    Monthly uptime of a contract = served kW-minutes / (capacity x every minute of its service window in the
    month) (`monthly_uptime_pct`): a minute without a delivery record is undelivered, so a month the optimizer
    never ran for is 0 % and credited in full. The tier's schedule (ServiceCreditRule bands, largest applicable
    step) turns it into a percentage of the month's charge (quoted price x capacity x hours of service in the
    month), capped at 100 % of that charge. Spot has no schedule and gets nothing.

    Idempotent: one entry per (contract, month), enforced by a unique constraint; existing entries are left as
    they are (a ledger is not rewritten), so running it twice or on two workers issues each credit once.
    Refuses a month that has not ended yet.
    """
    now = now or timezone.now()
    start, end = month_bounds(month)
    if end > now:
        raise ValueError(f"{start:%Y-%m} has not ended yet; credits are issued for finished months.")
    contracts = list(
        Contract.objects.filter(status__in=SERVED_STATUSES, starts_at__lt=end, ends_at__gt=start)
        .filter(tier__credit_rules__isnull=False)
        .exclude(service_credits__month=start.date())
        .distinct()
        .select_related("tier")
        .prefetch_related("tier__credit_rules")
        .order_by("pk")
    )
    served = served_kw_minutes((c.pk for c in contracts), start=start, end=end)
    credits = []
    for contract in contracts:
        uptime = monthly_uptime_pct(contract, served=served.get(contract.pk, ZERO), start=start, end=end)
        if uptime is None:
            continue
        credit_pct = min(contract.tier.credit_pct_for(uptime, list(contract.tier.credit_rules.all())), HUNDRED)
        if credit_pct <= 0:
            continue
        charge = contract.charge_usd_between(start, end)
        credits.append(
            ServiceCredit(
                contract=contract,
                month=start.date(),
                uptime_pct=uptime,
                credit_pct=credit_pct,
                charge_usd=charge,
                credit_usd=(charge * credit_pct / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
                issued_at=now,
            )
        )
    ServiceCredit.objects.bulk_create(credits, ignore_conflicts=True)
    return len(credits)
