"""Delivered vs committed capacity, monthly uptime, and service credits by each tier's schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from sla.choices import ContractStatus
from sla.models import ContractDelivery, ServiceCredit
from sla.services import DeliveryRow, issue_service_credits, record_deliveries, record_delivery
from sla.tasks import issue_service_credits as issue_task
from tests.factories import ContractFactory

pytestmark = pytest.mark.django_db

JUNE = datetime(2026, 6, 1, tzinfo=UTC)
JULY = datetime(2026, 7, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def june_contract(tier, **fields):
    defaults = {
        "tier": tier,
        "capacity_kw": Decimal("100"),
        "starts_at": JUNE,
        "ends_at": JULY,
        "status": ContractStatus.ACTIVE,
        "quoted_price_usd_per_kwh": Decimal("0.500000"),
    }
    return ContractFactory(**{**defaults, **fields})


def deliver_month(contract, uptime_pct: str) -> None:
    """30 daily records of 100 kW committed, each delivering `uptime_pct` kW: the month's uptime is exactly it."""
    record_deliveries(
        rows=[DeliveryRow(contract.pk, JUNE + n * DAY, 1440, Decimal("100"), Decimal(uptime_pct)) for n in range(30)]
    )


def issue() -> dict[int, ServiceCredit]:
    with time_machine.travel(JULY + DAY, tick=False):
        issue_service_credits(month=date(2026, 6, 1))
    return {credit.contract_id: credit for credit in ServiceCredit.objects.all()}


@pytest.mark.parametrize(
    ("tier_code", "uptime", "credit_pct"),
    [
        ("premium", "100", None),
        ("premium", "99.9", None),  # at the target, not below it
        ("premium", "99.899", "10"),
        ("premium", "99", "10"),
        ("premium", "98.999", "25"),
        ("premium", "95", "25"),
        ("premium", "94.999", "100"),
        ("premium", "0", "100"),
        ("standard", "95", None),
        ("standard", "94.9", "10"),
        ("standard", "89", "25"),
        ("standard", "79", "100"),
        ("flexible", "90", None),
        ("flexible", "89.5", "10"),
        ("flexible", "75", "25"),
        ("flexible", "60", "100"),
        ("spot", "10", None),  # best effort: no schedule, no credit
    ],
)
def test_credit_follows_the_tier_schedule(fleet, tier_code, uptime, credit_pct):
    contract = june_contract(getattr(fleet, tier_code))
    deliver_month(contract, uptime)

    credits = issue()

    if credit_pct is None:
        assert credits == {}
        return
    credit = credits[contract.pk]
    assert credit.month == date(2026, 6, 1)
    assert credit.uptime_pct == Decimal(uptime)
    assert credit.credit_pct == Decimal(credit_pct)
    assert credit.charge_usd == Decimal("36000.00")  # 0.5 USD/kWh x 100 kW x 720 h
    assert credit.credit_usd == Decimal("36000.00") * Decimal(credit_pct) / 100


def test_over_delivery_never_repays_a_shortfall(fleet):
    contract = june_contract(fleet.premium)
    deliver_month(contract, "100")
    record_deliveries(
        rows=[
            DeliveryRow(contract.pk, JUNE, 720, Decimal("100"), Decimal("0")),  # 12 h down
            DeliveryRow(contract.pk, JUNE + DAY, 1440, Decimal("100"), Decimal("200")),  # twice the kW for a day
        ]
    )

    # June 1's record becomes 12 h down and its other 12 h have no record (undelivered): a day of 30 lost; the
    # day at 200 kW repays none of it.
    assert issue()[contract.pk].uptime_pct == Decimal("96.666")


def test_uptime_weights_intervals_by_length_and_kw(fleet):
    contract = june_contract(fleet.premium, capacity_kw=Decimal("100"))
    rows = [DeliveryRow(contract.pk, JUNE + n * DAY, 1440, Decimal("100"), Decimal("100")) for n in range(1, 30)]
    rows += [
        DeliveryRow(contract.pk, JUNE, 1380, Decimal("100"), Decimal("100")),  # 23 h full
        DeliveryRow(contract.pk, JUNE + timedelta(hours=23), 60, Decimal("100"), Decimal("0")),  # 1 h down
    ]
    record_deliveries(rows=rows)

    credit = issue()[contract.pk]
    # 1 h of 720 h lost: 99.861 % (rounded down), below Premium's 99.9 %: the first band, 10 % of the charge
    assert (credit.uptime_pct, credit.credit_pct, credit.credit_usd) == (
        Decimal("99.861"),
        Decimal("10"),
        Decimal("3600.00"),
    )


@pytest.mark.parametrize(
    ("outage_hours", "uptime", "credit_pct"),
    [(0.5, "99.930", None), (7, "99.027", "10"), (8, "98.888", "25"), (36, "95.000", "25"), (37, "94.861", "100")],
)
def test_premium_credit_is_a_band_of_the_charge_not_a_linear_penalty(fleet, outage_hours, uptime, credit_pct):
    """Hand-made June: one outage of `outage_hours` at full capacity, every other minute served.

    The old linear penalty (price x 10 % / 0.1 % per kWh short) passed the month's charge after about 7 h; the
    bands give 10 % below 99.9, 25 % below 99 and 100 % (never more) below 95."""
    contract = june_contract(fleet.premium)
    down, rows, minute = round(outage_hours * 60), [], 0
    while minute < 43200:  # records of at most a day, split where the outage ends
        length = min(1440, down - minute if minute < down else 1440, 43200 - minute)
        kw = Decimal("0") if minute < down else Decimal("100")
        rows.append(DeliveryRow(contract.pk, JUNE + timedelta(minutes=minute), length, Decimal("100"), kw))
        minute += length
    record_deliveries(rows=rows)

    credits = issue()

    if credit_pct is None:
        assert credits == {}
        return
    credit = credits[contract.pk]
    assert (credit.uptime_pct, credit.credit_pct) == (Decimal(uptime), Decimal(credit_pct))
    assert credit.credit_usd == Decimal("36000.00") * Decimal(credit_pct) / 100 <= credit.charge_usd


def test_every_minute_of_the_month_counts_even_without_a_record(fleet):
    """A skipped or failed run writes no record: its minutes are undelivered, not left out of the month."""
    contract = june_contract(fleet.premium)
    rows = [DeliveryRow(contract.pk, JUNE + n * DAY, 1440, Decimal("100"), Decimal("100")) for n in range(30)]
    del rows[12]  # one day with no record at all (a control-plane outage)
    record_deliveries(rows=rows)
    silent = june_contract(fleet.standard)  # the optimizer never recorded it

    credits = issue()

    assert (credits[contract.pk].uptime_pct, credits[contract.pk].credit_pct) == (Decimal("96.666"), Decimal("25"))
    assert (credits[silent.pk].uptime_pct, credits[silent.pk].credit_pct) == (Decimal("0.000"), Decimal("100"))
    assert credits[silent.pk].credit_usd == credits[silent.pk].charge_usd == Decimal("36000.00")  # capped at 100 %


def test_charge_counts_only_the_hours_of_service_in_the_month(fleet):
    late_start = june_contract(fleet.premium, starts_at=JUNE + 15 * DAY, ends_at=JULY + 10 * DAY)
    cancelled = june_contract(fleet.premium, status=ContractStatus.CANCELLED, status_changed_at=JUNE + 3 * DAY)
    for contract in (late_start, cancelled):
        deliver_month(contract, "90")

    credits = issue()

    assert credits[late_start.pk].charge_usd == Decimal("18000.00")  # 15 days of June
    assert credits[cancelled.pk].charge_usd == Decimal("3600.00")  # 3 days before the cancellation


def test_deliveries_outside_the_month_do_not_count(fleet):
    contract = june_contract(fleet.premium, ends_at=JULY + 30 * DAY)
    deliver_month(contract, "100")
    record_delivery(
        contract=contract, interval_start=JULY, interval_minutes=1440, committed_kw=Decimal("100"), delivered_kw=0
    )

    assert issue() == {}


def test_issuing_twice_issues_each_credit_once(fleet):
    contract = june_contract(fleet.premium)
    deliver_month(contract, "90")
    assert len(issue()) == 1

    with time_machine.travel(JULY + 2 * DAY, tick=False):
        assert issue_service_credits(month=date(2026, 6, 15)) == 0
        assert issue_task.apply(kwargs={"month": "2026-06"}).get() == {"month": "2026-06", "issued": 0}
    assert ServiceCredit.objects.count() == 1


def test_task_issues_the_previous_month_by_default(fleet):
    contract = june_contract(fleet.flexible)
    deliver_month(contract, "50")

    with time_machine.travel(JULY + timedelta(hours=1), tick=False):
        assert issue_task.apply().get() == {"month": "2026-06", "issued": 1}
        assert issue_task.apply().get() == {"month": "2026-06", "issued": 0}


def test_an_unfinished_month_is_not_credited(fleet):
    contract = june_contract(fleet.premium)
    deliver_month(contract, "0")

    with time_machine.travel(JUNE + 20 * DAY, tick=False):
        with pytest.raises(ValueError, match="has not ended"):
            issue_service_credits(month=date(2026, 6, 1))
        result = issue_task.apply(kwargs={"month": "2026-06"}).get()
    assert result["issued"] == 0 and "has not ended" in result["error"]
    assert issue_task.apply(kwargs={"month": "June"}).get()["error"] == "bad month"
    assert not ServiceCredit.objects.exists()


def test_record_delivery_is_an_idempotent_upsert(fleet):
    contract = june_contract(fleet.premium)

    record_delivery(contract=contract, interval_start=JUNE, interval_minutes=5, committed_kw=100, delivered_kw=90)
    row = record_delivery(
        contract=contract, interval_start=JUNE, interval_minutes=5, committed_kw=Decimal("100"), delivered_kw=95
    )

    assert ContractDelivery.objects.count() == 1
    assert (row.committed_kw, row.delivered_kw, row.served_kw) == (Decimal("100"), Decimal("95"), Decimal("95"))


@pytest.mark.parametrize(
    "change",
    [
        {"interval_minutes": 0},
        {"interval_minutes": 1441},
        {"committed_kw": Decimal("-1")},
        {"delivered_kw": Decimal("NaN")},
        {"interval_start": datetime(2026, 6, 1)},  # naive
    ],
)
def test_record_delivery_refuses_impossible_values(fleet, change):
    contract = june_contract(fleet.premium)
    values = {
        "interval_start": JUNE,
        "interval_minutes": 5,
        "committed_kw": Decimal("100"),
        "delivered_kw": Decimal("100"),
    }

    with pytest.raises(ValueError):
        record_delivery(contract=contract, **{**values, **change})
    assert not ContractDelivery.objects.exists()
