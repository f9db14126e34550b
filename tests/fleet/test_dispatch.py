"""Dispatch against the simulated fleet: setpoints sent and read back, audited, with ramps, hysteresis, the
kill switch, dry run, and every fault (unreachable, slow, acknowledged without a change, flapping)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.choices import Action, DeviceStatus, Outcome
from fleet.models import Device, DeviceCommand, DispatchRound, SiteFleet
from fleet.services import dispatch_round
from fleet.services.dispatch import _hourly_starts_left
from fleet.signals import capacity_lost
from fleet.simulator.devices import Fault
from sites.models import SiteInventory

from .conftest import devices, want


def _running(simulator, site, code):
    return sum(simulator.miners[d.address].on for d in devices(site, code))


def test_round_starts_the_planned_units_and_audits_each_command(simulator, fleet_sites):
    north = fleet_sites["north"]
    want(north, "miner_air", 3)
    want(north, "miner_hydro", 1)
    round_ = dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 3
    assert _running(simulator, north, "miner_hydro") == 1
    commands = DeviceCommand.objects.filter(round=round_)
    assert commands.count() == 4
    assert all(c.sent and c.acknowledged and c.observed_running and c.outcome == Outcome.OK for c in commands)
    assert all(c.action == Action.START and c.observed_power_w > 3000 for c in commands)
    assert round_.summary["north"]["observed"] == 4 and round_.summary["south"]["sent"] == 0
    assert Device.objects.filter(is_running=True, status=DeviceStatus.ONLINE).count() == 4


def test_a_smaller_plan_stops_devices_and_a_repeated_round_sends_nothing(simulator, fleet_sites):
    north = fleet_sites["north"]
    want(north, "miner_air", 4)
    dispatch_round(trigger="manual")
    want(north, "miner_air", 1)
    round_ = dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 1
    assert round_.commands.filter(action=Action.STOP, outcome=Outcome.OK).count() == 3
    assert dispatch_round(trigger="manual").commands.count() == 0


def test_power_target_goes_only_to_firmwares_that_take_one(simulator, fleet_sites):
    north = fleet_sites["north"]
    want(north, "miner_air", 1)
    want(north, "miner_hydro", 1)
    for sim_miner in simulator.miners.values():
        sim_miner.profile = "-2"  # the LuxOS miner starts on its lowest profile
    dispatch_round(trigger="manual")
    lux = devices(north, "miner_air")[0]
    assert simulator.miners[lux.address].profile == "default"  # profileset to the preset under 3.5 kW
    avalon = devices(north, "miner_hydro")[0]
    assert simulator.miners[avalon.address].on  # Avalon: switched on, no target sent (its profile untouched)
    assert simulator.miners[avalon.address].profile == "-2"


def test_ramp_limit_defers_starts_beyond_the_site_kw_per_minute(simulator, fleet_sites):
    north = fleet_sites["north"]
    SiteFleet.objects.filter(site=north).update(ramp_kw_per_min=8)  # two 3.5 kW miners a minute
    want(north, "miner_air", 4)
    round_ = dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 2
    assert round_.summary["north"]["deferred"] == 2
    # Within the same minute the budget is spent: nothing more starts.
    assert dispatch_round(trigger="manual").summary["north"]["sent"] == 0
    DeviceCommand.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 4


def test_hourly_ramp_budget_is_the_engines_allowances_summed_over_the_hour(simulator, fleet_sites, settings):
    # RAMP_LIMIT_FRACTION_PER_HOUR 0.5 of north's 4 air miners: the engine lets max(0.5 x 4 x 1/12, 1) = 1 start in
    # each 5-minute period, 12 an hour, so dispatch sends every start the plan wants (before: floor(0.5 x 4) = 2
    # an hour, the other 2 and one of the 2 hydro miners deferred).
    settings.ENERGYARB = {**settings.ENERGYARB, "RAMP_LIMIT_FRACTION_PER_HOUR": 0.5}
    north = fleet_sites["north"]
    want(north, "miner_air", 4)
    want(north, "miner_hydro", 2)  # its own budget, 12 an hour too
    round_ = dispatch_round(trigger="manual")
    assert (_running(simulator, north, "miner_air"), _running(simulator, north, "miner_hydro")) == (4, 2)
    assert round_.summary["north"]["deferred"] == 0
    # Two more stop-start cycles of the air miners spend the hour's 12 starts; the next 4 wait for the hour to roll.
    for _ in range(2):
        want(north, "miner_air", 0)
        dispatch_round(trigger="manual")
        want(north, "miner_air", 4)
        DeviceCommand.objects.update(created_at=timezone.now() - timedelta(minutes=10))  # past the kW ramp's minute
        dispatch_round(trigger="manual")
    assert (
        DeviceCommand.objects.filter(action=Action.START, sent=True, device__hardware_model__code="miner_air").count()
        == 12
    )
    want(north, "miner_air", 0)
    dispatch_round(trigger="manual")
    want(north, "miner_air", 4)
    DeviceCommand.objects.update(created_at=timezone.now() - timedelta(minutes=30))
    assert dispatch_round(trigger="manual").summary["north"]["deferred"] == 4
    assert _running(simulator, north, "miner_air") == 0
    DeviceCommand.objects.update(created_at=timezone.now() - timedelta(minutes=61))
    dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 4


@pytest.mark.django_db
@pytest.mark.parametrize(("inventory", "per_hour"), [(10, 12), (1000, 100)])
def test_dispatchs_hourly_budget_pins_the_engines_numbers(settings, inventory, per_hour):
    # The engine's numbers (tests/optimizer/test_engine_halls.py::
    # test_one_ramp_rule_the_hours_starts_are_the_sum_of_the_periods_that_dispatch_allows): f = 0.1, 5-minute
    # periods, 1 start a period for 10 units (12 an hour), 100 an hour for 1,000; before: 1 and 100.
    settings.ENERGYARB = {**settings.ENERGYARB, "RAMP_LIMIT_FRACTION_PER_HOUR": 0.1}
    assert _hourly_starts_left(timezone.now(), {1: {2: inventory}}) == {1: {2: per_hour}}


def test_minimum_on_time_holds_a_stop_until_it_has_passed(simulator, fleet_sites):
    north = fleet_sites["north"]
    SiteFleet.objects.filter(site=north).update(min_on_minutes=15)
    want(north, "miner_air", 2)
    dispatch_round(trigger="manual")
    want(north, "miner_air", 0)
    round_ = dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 2
    assert round_.commands.filter(outcome=Outcome.HELD, error="minimum on time").count() == 2
    Device.objects.update(running_changed_at=timezone.now() - timedelta(minutes=16))
    dispatch_round(trigger="manual")
    assert _running(simulator, north, "miner_air") == 0


def test_minimum_off_time_and_restart_cap_hold_a_start_and_another_device_runs(simulator, fleet_sites):
    north = fleet_sites["north"]
    SiteFleet.objects.filter(site=north).update(min_off_minutes=5, max_restarts_per_day=1)
    first = devices(north, "miner_air")[0]
    want(north, "miner_air", 1)
    dispatch_round(trigger="manual")
    assert simulator.miners[first.address].on
    want(north, "miner_air", 0)
    dispatch_round(trigger="manual")
    want(north, "miner_air", 1)
    round_ = dispatch_round(trigger="manual")  # just stopped: its minimum off time holds it
    assert round_.commands.get(device=first).error == "minimum off time"
    assert _running(simulator, north, "miner_air") == 1  # another device runs instead
    Device.objects.update(running_changed_at=timezone.now() - timedelta(minutes=10))
    want(north, "miner_air", 2)
    round_ = dispatch_round(trigger="manual")  # off long enough, but it already started once today
    assert round_.commands.get(device=first).error == "restart cap"
    assert not simulator.miners[first.address].on
    assert _running(simulator, north, "miner_air") == 2


def test_kill_switch_stops_every_device_of_the_site(simulator, fleet_sites, django_capture_on_commit_callbacks):
    north, south = fleet_sites["north"], fleet_sites["south"]
    want(north, "miner_air", 4)
    want(south, "miner_air", 3)
    dispatch_round(trigger="manual")
    SiteFleet.objects.filter(site=north).update(kill_switch=True)
    round_ = dispatch_round(trigger="kill_switch")
    assert _running(simulator, north, "miner_air") == 0
    assert _running(simulator, south, "miner_air") == 3
    assert round_.summary["north"]["observed"] == 4


def test_dry_run_logs_and_sends_nothing(simulator, fleet_sites):
    north = fleet_sites["north"]
    want(north, "miner_air", 4)
    round_ = dispatch_round(trigger="manual", dry_run=True)
    assert _running(simulator, north, "miner_air") == 0
    assert round_.dry_run and round_.commands.filter(outcome=Outcome.DRY_RUN, sent=False).count() == 4


@pytest.mark.parametrize(
    ("fault", "outcome", "status"),
    [
        (Fault.ACK_NO_CHANGE, Outcome.FAULTED, DeviceStatus.FAULTED),
        (Fault.FLAPPING, Outcome.FAULTED, DeviceStatus.FAULTED),
        (Fault.UNREACHABLE, Outcome.UNREACHABLE, DeviceStatus.OFFLINE),
        (Fault.SLOW, Outcome.UNREACHABLE, DeviceStatus.OFFLINE),
    ],
)
def test_a_device_that_does_not_follow_leaves_the_plan_and_asks_for_a_replan(
    simulator, fleet_sites, fault, outcome, status, django_capture_on_commit_callbacks
):
    north = fleet_sites["north"]
    bad = devices(north, "miner_air")[0]
    simulator.set_fault(bad.address, fault, slow_seconds=5)
    want(north, "miner_air", 4)
    heard = []
    capacity_lost.connect(lambda sender, **kw: heard.append(kw), weak=False, dispatch_uid="test-heard")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            round_ = dispatch_round(trigger="manual")
    finally:
        capacity_lost.disconnect(dispatch_uid="test-heard")
    command = round_.commands.get(device=bad)
    assert command.outcome == outcome and command.attempts == 3 and command.error
    bad.refresh_from_db()
    assert bad.status == status
    inventory = SiteInventory.objects.get(site=north, hardware_model__code="miner_air")
    assert inventory.units_available == 3 and inventory.units_running <= 3
    assert heard and heard[0]["site_codes"] == ["north"]
    # The others followed; the next round does not speak to the faulty one again.
    assert round_.summary["north"]["observed"] == 3
    assert not dispatch_round(trigger="manual").commands.filter(device=bad).exists()


def test_round_records_the_lag_from_the_plan(simulator, fleet_sites):
    planned = timezone.now() - timedelta(seconds=3)
    round_ = dispatch_round(trigger="plan", run_id=42, planned_at=planned)
    assert round_.run_id == 42 and 3 <= round_.lag_seconds < 30
    assert DispatchRound.objects.count() == 1


def test_an_applied_plan_queues_a_dispatch_round_on_the_fleet_queue(simulator, fleet_sites, settings):
    from energyarb.celery import app
    from sites.signals import allocation_applied

    want(fleet_sites["south"], "miner_air", 3)
    app.conf.task_always_eager = True
    try:
        allocation_applied.send(sender=None, run_id=7, applied_at=timezone.now(), units={})
    finally:
        app.conf.task_always_eager = False
    round_ = DispatchRound.objects.get()
    assert (round_.trigger, round_.run_id) == ("plan", 7)
    assert _running(simulator, fleet_sites["south"], "miner_air") == 3


def test_machines_panel_shows_planned_measured_and_lag(simulator, fleet_sites, staff_api):
    from fleet.services import poll_telemetry

    want(fleet_sites["south"], "miner_air", 2)
    dispatch_round(trigger="plan", run_id=1, planned_at=timezone.now())
    poll_telemetry()
    body = staff_api.get("/api/fleet/machines/").json()
    south = next(s for s in body["sites"] if s["site"] == "south")
    assert south["planned_it_kw"] == 7.0 and 6.5 < south["measured_it_kw"] < 7.5
    assert south["meter_kw"] > south["measured_it_kw"] and south["online"] == 3 and south["faulted"] == 0
    assert body["round"]["trigger"] == "plan" and body["round"]["lag_seconds"] is not None
