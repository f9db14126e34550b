"""`manage.py fleet_simulator` and `manage.py dispatch --once [--json]`, through call_command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fleet.models import Device, DispatchRound

from .conftest import NETWORK, want


def test_fleet_simulator_registers_and_serves_the_seeded_layout(fleet_sites):
    out = StringIO()
    call_command("fleet_simulator", "--devices", "20", "--network", NETWORK, "--check", stdout=out)
    assert "Serving" in out.getvalue()
    # 12 devices were registered by the fixture; the command lays 20 over the same inventory, reusing names.
    assert Device.objects.filter(name__startswith="sim-").count() >= 12


def test_fleet_simulator_refuses_a_network_outside_loopback(fleet_sites):
    with pytest.raises(CommandError, match=r"127\.0\.0\.0/8"):
        call_command("fleet_simulator", "--network", "10.1.0.0/16", "--check")


def test_dispatch_once_json_reports_sent_acknowledged_observed_per_site(simulator, fleet_sites):
    want(fleet_sites["south"], "miner_air", 2)
    out = StringIO()
    call_command("dispatch", "--once", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["sites"]["south"]["sent"] == 2
    assert report["sites"]["south"]["acknowledged"] == 2 and report["sites"]["south"]["observed"] == 2
    assert DispatchRound.objects.get().trigger == "manual"


def test_dispatch_once_table_and_dry_run(simulator, fleet_sites):
    want(fleet_sites["south"], "miner_air", 3)
    out = StringIO()
    call_command("dispatch", "--once", "--dry-run", stdout=out)
    assert "[dry run]" in out.getvalue() and "south" in out.getvalue()
    assert not any(m.on for m in simulator.miners.values())


def test_dispatch_without_devices_says_so(db):
    with pytest.raises(CommandError, match="No devices"):
        call_command("dispatch", "--once")
