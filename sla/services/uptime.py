"""Delivered vs committed capacity, monthly uptime, and service credits issued as ledger entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
    """One contract's committed and delivered kW over one interval (see `record_deliveries`).

    ``applied_at`` set: ``delivered_kw`` is what a plan applied at that moment runs from then to the interval's
    end; the plan in force before it (an earlier record of the interval, or the previous interval's) counts until
    then, and ``unserved_kw_minutes`` (a cut-over) is taken off. Unset: ``delivered_kw`` is the whole interval's.
    """

    contract_id: int
    interval_start: datetime
    interval_minutes: int
    committed_kw: Decimal
    delivered_kw: Decimal
    applied_at: datetime | None = None
    unserved_kw_minutes: Decimal = ZERO


@dataclass(frozen=True)
class InForce:
    """What a delivery record says about one interval: its mean kW and the plan running at its end."""

    delivered_kw: Decimal  # mean over the interval
    in_force_kw: Decimal  # kW of the plan in force from in_force_since to the interval's end
    in_force_since: datetime


def time_weighted_kw(row: DeliveryRow, *, earlier: InForce | None, before_kw: Decimal | None) -> InForce:
    """The interval's mean kW when ``row``'s plan takes over at ``row.applied_at``.

    With an earlier record of the same interval (mean ``d``, its plan ``k`` in force to the end), only the rest
    of the interval changes: ``d + (new - k) x rest / minutes``. Without one, the plan in force before (``before_kw``,
    from the previous interval's record; the new plan itself when there is none) ran until ``applied_at``:
    ``before x (minutes - rest) / minutes + new x rest / minutes``. A cut-over's kW-minutes are then taken off.
    """
    minutes = Decimal(row.interval_minutes)
    end = row.interval_start + timedelta(minutes=row.interval_minutes)
    at = min(max(row.applied_at or row.interval_start, row.interval_start), end)
    rest = Decimal(str((end - at).total_seconds() / 60.0)) / minutes  # share of the interval the new plan runs
    new_kw = Decimal(row.delivered_kw)
    if earlier is not None:
        mean = earlier.delivered_kw + (new_kw - earlier.in_force_kw) * rest
    else:
        before = new_kw if before_kw is None else Decimal(before_kw)
        mean = before * (1 - rest) + new_kw * rest
    mean -= Decimal(row.unserved_kw_minutes) / minutes
    return InForce(delivered_kw=max(mean, ZERO).quantize(Decimal("0.001")), in_force_kw=new_kw, in_force_since=at)


def _in_force(rows: list[DeliveryRow]) -> list[InForce]:
    """``time_weighted_kw`` of every row, reading the records it builds on in two queries."""
    ids = {row.contract_id for row in rows}
    starts = {row.interval_start for row in rows}
    previous_starts = {row.interval_start - timedelta(minutes=row.interval_minutes) for row in rows}
    records = {
        (d.contract_id, d.interval_start): d
        for d in ContractDelivery.objects.filter(contract_id__in=ids, interval_start__in=starts | previous_starts)
    }
    out = []
    for row in rows:
        earlier = records.get((row.contract_id, row.interval_start))
        before = records.get((row.contract_id, row.interval_start - timedelta(minutes=row.interval_minutes)))
        if row.applied_at is None:
            out.append(InForce(Decimal(row.delivered_kw), Decimal(row.delivered_kw), row.interval_start))
            continue
        out.append(
            time_weighted_kw(
                row,
                earlier=None if earlier is None else _record_in_force(earlier),
                before_kw=None if before is None else _record_in_force(before).in_force_kw,
            )
        )
    return out


def _record_in_force(record: ContractDelivery) -> InForce:
    kw = record.in_force_kw if record.in_force_kw is not None else record.delivered_kw
    return InForce(record.delivered_kw, kw, record.in_force_since or record.interval_start)


def _check_delivery(row: DeliveryRow) -> None:
    if not 1 <= row.interval_minutes <= 1440:
        raise ValueError(f"interval_minutes must be between 1 and 1440, not {row.interval_minutes}.")
    for name in ("committed_kw", "delivered_kw"):
        value = Decimal(getattr(row, name))
        if not value.is_finite() or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, not {value}.")
    if timezone.is_naive(row.interval_start) or (row.applied_at is not None and timezone.is_naive(row.applied_at)):
        raise ValueError("interval_start and applied_at must be aware datetimes.")
    lost = Decimal(row.unserved_kw_minutes)
    if not lost.is_finite() or lost < 0:
        raise ValueError(f"unserved_kw_minutes must be a finite number >= 0, not {lost}.")


@transaction.atomic
def record_deliveries(*, rows: Iterable[DeliveryRow], source: str = DeliverySource.PLAN) -> int:
    """Upsert delivery records by (contract, interval_start); returns how many rows were written.

    A row without ``applied_at`` overwrites the interval (idempotent: recording it again changes nothing). A row
    with ``applied_at`` (the optimizer applying a plan) is weighed by time against the plan in force before it
    (``time_weighted_kw``): two runs applied within one interval each count for the minutes they were in force.
    A measured record (`source="meter"`, from the fleet's telemetry) overwrites the plan's estimate for its
    interval, and the plan's estimate never overwrites a measured one. Up to three reads, then one INSERT ... ON
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
    weighted = _in_force(rows) if any(row.applied_at is not None for row in rows) else None
    objs = []
    for i, row in enumerate(rows):
        state = weighted[i] if weighted is not None else None
        objs.append(
            ContractDelivery(
                contract_id=row.contract_id,
                interval_start=row.interval_start,
                interval_minutes=row.interval_minutes,
                committed_kw=Decimal(row.committed_kw).quantize(Decimal("0.001")),
                delivered_kw=(state.delivered_kw if state else Decimal(row.delivered_kw)).quantize(Decimal("0.001")),
                in_force_kw=Decimal(state.in_force_kw if state else row.delivered_kw).quantize(Decimal("0.001")),
                in_force_since=state.in_force_since if state else row.interval_start,
                source=source,
                recorded_at=timezone.now(),
            )
        )
    ContractDelivery.objects.bulk_create(
        objs,
        batch_size=500,
        update_conflicts=True,
        unique_fields=("contract", "interval_start"),
        update_fields=(
            "interval_minutes",
            "committed_kw",
            "delivered_kw",
            "in_force_kw",
            "in_force_since",
            "source",
            "recorded_at",
        ),
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
