"""Deliveries tell the truth about each interval: two plans applied within one interval each count for the
minutes they were in force (issue 13), instead of the last one overwriting the record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from optimizer.choices import RunStatus, RunTrigger
from optimizer.services import optimize_now
from sites.models import Site, SiteInventory
from sites.services import refresh_market_prices, refresh_weather
from sla.models import ContractDelivery
from sla.services.uptime import DeliveryRow, InForce, time_weighted_kw
from tests.factories import T0, ContractFactory, PlacementFactory, TierFactory

INTERVAL = T0 + timedelta(hours=12)  # a 5-minute interval: 12:00-12:05


@pytest.fixture
def contract(db):
    """300 kW of Standard placed on Norway only, running across the interval."""
    call_command("seed_sites", stdout=StringIO())
    with time_machine.travel(INTERVAL + timedelta(minutes=2), tick=False):
        refresh_market_prices(at=INTERVAL)
        refresh_weather(at=INTERVAL)
    contract = ContractFactory(
        status="active", tier=TierFactory(code="standard"), capacity_kw=Decimal("300"),
        starts_at=INTERVAL - timedelta(hours=1), ends_at=INTERVAL + timedelta(days=1),
    )  # fmt: skip
    PlacementFactory(contract=contract, site=Site.objects.get(code="site_3_norway"), capacity_kw=Decimal("300"),
                     valid_from=INTERVAL - timedelta(hours=1))  # fmt: skip
    return contract


def test_two_runs_in_one_interval_are_weighted_by_the_minutes_each_plan_ran(contract):
    # 12:02 a plan serves all 300 kW; 12:03 Norway's inference hardware is gone and the next plan serves 0 kW.
    # The interval delivered 300 kW for 3 minutes and 0 kW for 2: 180 kW on average, not 0 (the last plan).
    with time_machine.travel(INTERVAL + timedelta(minutes=2), tick=False):
        first = optimize_now(trigger=RunTrigger.MANUAL)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert ContractDelivery.objects.get(contract=contract).delivered_kw == Decimal("300.000")
    SiteInventory.objects.filter(site__code="site_3_norway", hardware_model__kind="inference").update(
        units_available=0, units_running=0
    )
    with time_machine.travel(INTERVAL + timedelta(minutes=3), tick=False):
        second = optimize_now(trigger=RunTrigger.MANUAL)
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert second.details["commitments"][0]["unserved_kw"] == 300
    delivery = ContractDelivery.objects.get(contract=contract)
    assert delivery.delivered_kw == Decimal("180.000")
    assert (delivery.in_force_kw, delivery.in_force_since) == (Decimal("0.000"), INTERVAL + timedelta(minutes=3))


def row(kw: str, minute: float, lost: str = "0") -> DeliveryRow:
    return DeliveryRow(
        contract_id=1,
        interval_start=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        interval_minutes=5,
        committed_kw=Decimal("10"),
        delivered_kw=Decimal(kw),
        applied_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=minute),
        unserved_kw_minutes=Decimal(lost),
    )


def test_the_plan_before_the_first_run_of_an_interval_counts_until_it_applies():
    # The previous interval ended with 10 kW in force; a plan of 0 kW applies at minute 1: 10 x 1/5 = 2 kW.
    assert time_weighted_kw(row("0", 1), earlier=None, before_kw=Decimal("10")).delivered_kw == Decimal("2.000")
    # No earlier record at all: the new plan stands for the whole interval.
    assert time_weighted_kw(row("7", 1), earlier=None, before_kw=None).delivered_kw == Decimal("7.000")


def test_three_plans_in_one_interval_each_count_for_their_minutes():
    # 10 kW until minute 1, 0 kW until minute 3, 10 kW to minute 5: (10 + 0 + 20) / 5 = 6 kW.
    first = time_weighted_kw(row("0", 1), earlier=None, before_kw=Decimal("10"))
    second = time_weighted_kw(row("10", 3), earlier=first, before_kw=None)
    assert second.delivered_kw == Decimal("6.000")
    # A cut-over of 10 kW-minutes in the last plan takes 2 kW off the mean.
    assert time_weighted_kw(row("10", 3, lost="10"), earlier=first, before_kw=None).delivered_kw == Decimal("4.000")


def test_an_earlier_record_without_a_plan_in_force_counts_its_mean_as_the_plan():
    earlier = InForce(Decimal("5"), Decimal("5"), datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert time_weighted_kw(row("0", 4), earlier=earlier, before_kw=None).delivered_kw == Decimal("4.000")
