"""The simulated fleet speaks the real wire protocols: pyasic finds and drives its miners unchanged."""

from __future__ import annotations

import asyncio
import socket
import warnings

import httpx
import pytest

from fleet.models import Device
from fleet.simulator.devices import Fault

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pyasic
    from pyasic.miners.data import DataOptions

from .conftest import devices


def _run(coro):
    return asyncio.run(coro)


def test_pyasic_finds_a_registered_luxos_miner_and_reads_it(simulator, fleet_sites):
    miner = devices(fleet_sites["north"], "miner_air")[0]
    found = _run(pyasic.get_miner(miner.address))
    assert type(found).__name__ == "LUXMinerS21"
    simulator.miners[miner.address].on = True
    data = _run(found.get_data(include=[DataOptions.WATTAGE, DataOptions.HASHBOARDS]))
    assert 3400 < data.wattage < 3600
    assert 190 < float(data.hashrate) < 210
    assert data.temperature_avg is not None


def test_pyasic_finds_an_avalon_miner_and_switches_it(simulator, fleet_sites):
    miner = devices(fleet_sites["north"], "miner_hydro")[0]
    found = _run(pyasic.get_miner(miner.address))
    assert type(found).__name__ == "CGMinerAvalon1246"
    assert _run(found.resume_mining()) is True
    assert simulator.miners[miner.address].on is True
    assert _run(found.stop_mining()) is True
    assert simulator.miners[miner.address].on is False


def test_luxos_power_limit_selects_the_largest_preset_under_the_target(simulator, fleet_sites):
    miner = devices(fleet_sites["north"], "miner_air")[0]
    found = _run(pyasic.get_miner(miner.address))
    assert _run(found.set_power_limit(3100)) is True
    assert simulator.miners[miner.address].active_profile().watts == 2975  # 85 % of 3.5 kW


def test_luxos_privileged_command_without_a_session_is_refused(simulator, fleet_sites):
    miner = devices(fleet_sites["north"], "miner_air")[0]
    with socket.create_connection((miner.address, 4028), timeout=2) as conn:
        conn.sendall(b'{"command": "curtail", "parameter": "bogus,sleep"}')
        reply = conn.recv(65536)
    assert b'"STATUS": "E"' in reply and b"Invalid session id" in reply


def test_unreachable_fault_refuses_connections_until_cleared(simulator, fleet_sites):
    miner = devices(fleet_sites["north"], "miner_air")[0]
    simulator.set_fault(miner.address, Fault.UNREACHABLE)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((miner.address, 4028), timeout=2)
    simulator.set_fault(miner.address, None)
    socket.create_connection((miner.address, 4028), timeout=2).close()


def test_node_agent_requires_its_token_and_serves(simulator, fleet_sites, monkeypatch):
    node = devices(fleet_sites["north"], "inference_gpu")[0]
    sim_node = simulator.nodes[node.address]
    sim_node.token = "t0ken"
    base = f"http://{node.address}:{node.port}"
    assert httpx.get(f"{base}/v1/state").status_code == 401
    auth = {"Authorization": "Bearer t0ken"}
    response = httpx.post(f"{base}/v1/serve", json={"placements": ["7:9"], "power_cap_w": 9000}, headers=auth)
    assert response.status_code == 202
    state = httpx.get(f"{base}/v1/state", headers=auth).json()
    assert state["state"] == "serving" and state["placements"] == ["7:9"] and state["power_cap_w"] == 9000
    bad = httpx.put(f"{base}/v1/power-cap", json={"power_cap_w": "lots"}, headers=auth)
    assert bad.status_code == 400 and "power_cap_w" in bad.json()["error"]


def test_the_meter_sums_what_the_devices_really_draw(simulator, fleet_sites):
    from fleet.models import SiteFleet

    fleet = SiteFleet.objects.get(site=fleet_sites["south"])
    before = httpx.get(f"http://{fleet.meter_address}:{fleet.meter_port}/v1/meter").json()["power_kw"]
    for device in Device.objects.filter(site=fleet_sites["south"]):
        simulator.miners[device.address].on = True
    after = httpx.get(f"http://{fleet.meter_address}:{fleet.meter_port}/v1/meter").json()["power_kw"]
    assert before < 0.1 and after == pytest.approx(3 * 3.5 * 1.15, rel=0.03)
