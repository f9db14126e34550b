"""Telemetry from the simulated fleet: readings and meter stored, 5-minute rollups, retention; and uptime measured
from the nodes serving each placement (downtime within one poll, failover by the next dispatch, credits)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from fleet.choices import DeviceStatus
from fleet.models import Device, MeterReading, SiteTelemetryRollup, TelemetryReading
from fleet.services import dispatch_round, poll_telemetry, prune_telemetry
from fleet.services.telemetry import store_readings
from sla.choices import ContractStatus, DeliverySource, TierCode
from sla.models import ContractDelivery, Downtime, ServiceCredit
from sla.services import DeliveryRow, issue_service_credits, record_deliveries
from tests.factories import ContractFactory, PlacementFactory, ServiceCreditRuleFactory, TierFactory

from .conftest import devices, want


def test_poll_stores_every_device_and_the_meter_and_rolls_up_the_site(simulator, fleet_sites):
    north = fleet_sites["north"]
    want(north, "miner_air", 2)
    dispatch_round(trigger="manual")
    result = poll_telemetry()
    assert result["readings"] == Device.objects.count() == 12
    assert MeterReading.objects.count() == 2
    rollup = SiteTelemetryRollup.objects.get(site=north)
    assert rollup.samples == 1 and rollup.planned_it_kw == pytest.approx(7.0)
    # Two LuxOS miners at ~3.5 kW, the rest asleep or idle; the meter adds the facility overhead on top.
    assert 7.0 < rollup.device_power_kw < 10.0
    assert rollup.meter_power_kw == pytest.approx(rollup.device_power_kw * 1.15, rel=0.05)
    assert rollup.hashrate_th_per_s == pytest.approx(400, rel=0.05)
    assert rollup.devices_online == 9


def test_a_second_poll_in_the_bucket_updates_its_rollup(simulator, fleet_sites):
    now = timezone.now().replace(second=0, microsecond=0)
    bucket = now - timedelta(minutes=now.minute % 5)
    poll_telemetry(now=bucket)
    poll_telemetry(now=bucket + timedelta(minutes=1))
    assert SiteTelemetryRollup.objects.get(site=fleet_sites["south"]).samples == 2
    assert SiteTelemetryRollup.objects.count() == 2


def test_an_unreachable_device_goes_offline_and_comes_back(simulator, fleet_sites):
    miner = devices(fleet_sites["south"], "miner_air")[0]
    simulator.set_fault(miner.address, "unreachable")
    poll_telemetry()
    miner.refresh_from_db()
    assert miner.status == DeviceStatus.OFFLINE
    simulator.set_fault(miner.address, None)
    poll_telemetry()
    miner.refresh_from_db()
    assert miner.status == DeviceStatus.ONLINE and miner.last_seen_at is not None


def test_copy_ingestion_stores_rows_as_bulk_insert_would(fleet_sites):
    device = Device.objects.first()
    now = timezone.now()
    stored = store_readings([(device.pk, device.site_id, now, True, 3500.0, 200.0, None, 60.0, ["1:2"])] * 3)
    assert stored == 3
    assert list(TelemetryReading.objects.values_list("power_w", "placements")) == [(3500.0, ["1:2"])] * 3


def test_retention_prunes_raw_readings_but_keeps_rollups(simulator, fleet_sites, settings):
    old = timezone.now() - timedelta(hours=settings.FLEET["TELEMETRY_RETENTION_HOURS"] + 1)
    poll_telemetry(now=old)
    poll_telemetry()
    pruned = prune_telemetry()
    assert pruned["readings"] == 12 and pruned["rollups"] == 0
    assert SiteTelemetryRollup.objects.count() == 4
    assert TelemetryReading.objects.filter(observed_at__lt=timezone.now() - timedelta(hours=1)).count() == 0


@pytest.fixture
def contract(fleet_sites):
    """A running Premium contract of 15 kW placed at `north`: two of its three GPU nodes must serve it."""
    tier = TierFactory(code=TierCode.PREMIUM, uptime_target_pct=Decimal("99.900"))
    ServiceCreditRuleFactory(tier=tier, uptime_below_pct=Decimal("99.900"), credit_pct=Decimal("10.00"))
    now = timezone.now()
    contract = ContractFactory(
        tier=tier, capacity_kw=Decimal("15.000"), status=ContractStatus.ACTIVE, starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )  # fmt: skip
    PlacementFactory(
        contract=contract, site=fleet_sites["north"], capacity_kw=Decimal("15.000"), valid_from=now - timedelta(hours=1)
    )
    want(fleet_sites["north"], "inference_gpu", 2)
    return contract


def _delivered(contract):
    return ContractDelivery.objects.get(contract=contract, source=DeliverySource.METER).delivered_kw


def test_dispatch_gives_the_placement_to_nodes_and_the_poll_measures_it_delivered(simulator, contract, fleet_sites):
    dispatch_round(trigger="manual")
    serving = [d for d in devices(fleet_sites["north"], "inference_gpu") if d.placements]
    assert len(serving) == 2
    assert all(simulator.nodes[d.address].state == "serving" for d in serving)
    poll_telemetry()
    assert _delivered(contract) == Decimal("15.000")
    assert not Downtime.objects.filter(contract=contract).exists()


def test_a_node_that_stops_serving_opens_downtime_at_the_next_poll_and_failover_closes_it(
    simulator, contract, fleet_sites, django_capture_on_commit_callbacks
):
    dispatch_round(trigger="manual")
    poll_telemetry()
    victim = next(d for d in devices(fleet_sites["north"], "inference_gpu") if d.placements)
    simulator.nodes[victim.address].drain()  # it stops serving on its own
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = poll_telemetry()
    assert result["downtimes_opened"] == 1 and result["left_plan"] == 1
    downtime = Downtime.objects.get(contract=contract, ended_at__isnull=True)
    assert downtime.unserved_kw == Decimal("4.800")  # 15 kW less one 10.2 kW node
    assert _delivered(contract) == Decimal("10.200")
    victim.refresh_from_db()
    assert victim.status == DeviceStatus.FAULTED
    assert callbacks  # the re-plan signal and a dispatch round are queued after commit
    # Failover: the next round gives the placement to the third node; the next poll closes the downtime.
    want(fleet_sites["north"], "inference_gpu", 2)
    dispatch_round(trigger="manual")
    assert poll_telemetry()["downtimes_closed"] == 1
    assert _delivered(contract) == Decimal("15.000")
    downtime.refresh_from_db()
    assert downtime.ended_at is not None


def test_measured_deliveries_win_over_the_plan_and_credits_follow_them(contract):
    start = datetime(2026, 11, 1, tzinfo=UTC)
    contract.starts_at, contract.ends_at = start, datetime(2026, 12, 1, tzinfo=UTC)
    contract.save()
    interval = start + timedelta(days=3)
    planned = DeliveryRow(contract.pk, interval, 5, Decimal("15"), Decimal("15"))
    measured = DeliveryRow(contract.pk, interval, 5, Decimal("15"), Decimal("0"))
    record_deliveries(rows=[measured], source=DeliverySource.METER)
    record_deliveries(rows=[planned])  # the plan's estimate does not overwrite the measurement
    assert ContractDelivery.objects.get(contract=contract).delivered_kw == 0
    # The rest of the month served as measured: one 5-minute interval down of 8,640 is 99.988 %: no credit ...
    rows = [
        DeliveryRow(contract.pk, start + timedelta(minutes=5 * i), 5, Decimal("15"), Decimal("15")) for i in range(8640)
    ]
    record_deliveries(rows=[r for r in rows if r.interval_start != interval], source=DeliverySource.METER)
    with time_machine.travel(datetime(2026, 12, 2, tzinfo=UTC)):
        assert issue_service_credits(month=date(2026, 11, 1)) == 0
    # ... while twenty such intervals (99.77 %) earn Premium's credit.
    ServiceCredit.objects.all().delete()
    outage = [
        DeliveryRow(contract.pk, start + timedelta(minutes=5 * i), 5, Decimal("15"), Decimal("0")) for i in range(20)
    ]
    record_deliveries(rows=outage, source=DeliverySource.METER)
    with time_machine.travel(datetime(2026, 12, 2, tzinfo=UTC)):
        assert issue_service_credits(month=date(2026, 11, 1)) == 1
    credit = ServiceCredit.objects.get(contract=contract)
    assert credit.uptime_pct < Decimal("99.9") and credit.credit_pct == Decimal("10.00")
