"""A large round or poll is split over worker processes, results in the right order; the device states a round
learns are written in one upsert; pyasic's command list is computed once per RPC class, not on every read."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from fleet import dispatcher
from fleet.choices import DeviceStatus, Outcome
from fleet.dispatcher import Tuning, poll, shards
from fleet.drivers import asic
from fleet.models import Device, DeviceCommand
from fleet.services import dispatch_round
from fleet.services.dispatch import endpoint_of
from fleet.services.registry import save_device_states

from .conftest import want


@pytest.fixture
def workers():
    yield
    dispatcher.shutdown_workers()


def _worker_pids() -> set[int]:
    return {worker.pid for worker in dispatcher._workers if worker.alive()}


def test_shards_split_by_device_id_within_the_bounds():
    tuning = Tuning(workers=3, min_shard=4)
    assert shards(list(range(7)), int, tuning) == [list(range(7))]  # under two shards' worth: one
    parts = shards(list(range(20)), int, tuning)
    assert parts == [list(range(0, 20, 3)), list(range(1, 20, 3)), list(range(2, 20, 3))]
    assert shards(list(range(100)), int, Tuning(workers=1, min_shard=1)) == [list(range(100))]


def test_a_large_round_runs_on_worker_processes_and_is_audited_as_one(simulator, fleet_sites, settings, workers):
    settings.FLEET = {**settings.FLEET, "WORKERS": 2, "MIN_SHARD": 2}
    north, south = fleet_sites["north"], fleet_sites["south"]
    want(north, "miner_air", 4)
    want(north, "miner_hydro", 2)
    want(south, "miner_air", 3)
    round_ = dispatch_round(trigger="manual")
    pids = _worker_pids()
    assert len(pids) == 2 and os.getpid() not in pids
    assert sum(m.on for m in simulator.miners.values()) == 9
    commands = DeviceCommand.objects.filter(round=round_)
    assert commands.count() == 9 and all(c.outcome == Outcome.OK and c.observed_running for c in commands)
    assert round_.summary["north"]["observed"] == 6 and round_.summary["south"]["observed"] == 3
    assert Device.objects.filter(is_running=True, status=DeviceStatus.ONLINE).count() == 9


def test_a_poll_over_worker_processes_keeps_each_reading_with_its_device(simulator, fleet_sites, workers):
    devices = list(Device.objects.select_related("hardware_model").order_by("pk"))
    for n, device in enumerate(devices):  # every third device on: a reading given to another device shows
        if device.is_miner:
            simulator.miners[device.address].on = n % 3 == 0
        else:
            simulator.nodes[device.address].state = "serving" if n % 3 == 0 else "idle"
    endpoints = [(endpoint_of(d), d.nominal_w) for d in devices]
    readings, meters = poll(endpoints, [], Tuning(timeout_s=2.5, workers=2, min_shard=2))
    assert len(_worker_pids()) == 2 and meters == []
    assert [r.running for r in readings] == [n % 3 == 0 for n in range(len(devices))]


def test_a_worker_that_died_is_replaced_and_its_shard_still_read(simulator, fleet_sites, workers):
    devices = list(Device.objects.select_related("hardware_model").order_by("pk"))
    for device in devices:
        if device.is_miner:
            simulator.miners[device.address].on = True
    endpoints = [(endpoint_of(d), d.nominal_w) for d in devices]
    tuning = Tuning(timeout_s=2.5, workers=2, min_shard=2)
    poll(endpoints, [], tuning)
    first = _worker_pids()
    os.kill(min(first), signal.SIGKILL)
    readings, _meters = poll(endpoints, [], tuning)
    assert [r.running for r in readings] == [d.is_miner for d in devices]
    readings, _meters = poll(endpoints, [], tuning)  # the round after runs on two workers again
    assert [r.running for r in readings] == [d.is_miner for d in devices]
    assert len(_worker_pids()) == 2 and min(first) not in _worker_pids()


def test_device_states_are_upserted_and_a_deleted_device_is_not_created_again(fleet_sites):
    first, second, *_rest = Device.objects.order_by("pk")
    first.status, first.is_running, first.power_w, first.placements = DeviceStatus.ONLINE, True, 3456.0, ["1:2"]
    second.status = DeviceStatus.FAULTED
    second_pk = second.pk
    Device.objects.filter(pk=second_pk).delete()
    assert save_device_states([first, second]) == 1
    first.refresh_from_db()
    assert (first.status, first.is_running, first.power_w, first.placements) == ("online", True, 3456.0, ["1:2"])
    assert not Device.objects.filter(pk=second_pk).exists()


def test_pyasic_lists_an_rpc_class_commands_once_not_on_every_read(simulator, fleet_sites, monkeypatch):
    from pyasic.rpc.base import BaseMinerRPCAPI

    calls = []
    original = BaseMinerRPCAPI.get_commands

    def counted(self):
        calls.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(BaseMinerRPCAPI, "get_commands", counted)
    monkeypatch.setattr(asic, "_rpc_classes", {})
    monkeypatch.setattr(asic, "_miners", {})
    luxos = [(endpoint_of(d), d.nominal_w) for d in Device.objects.filter(driver="luxos").order_by("pk")[:3]]
    for endpoint, _nominal_w in luxos:
        simulator.miners[endpoint.address].on = True

    async def read_all_twice():
        for _ in range(2):
            for endpoint, nominal_w in luxos:
                reading = await asic.read(endpoint, nominal_w=nominal_w)
                assert reading.running and reading.power_w > 3000

    asyncio.run(read_all_twice())
    assert calls == ["LUXMinerRPCAPI"]  # six multicommand reads of three miners, one listing


def _spread_in_a_daemon(_):
    from fleet.dispatcher import _read_here, _spread

    try:
        return _spread(_read_here, [[], []], Tuning(workers=2, min_shard=1)), sorted(_worker_pids()), os.getpid()
    finally:
        dispatcher.shutdown_workers()


def test_worker_processes_start_from_a_celery_prefork_child():
    """A Celery prefork child is a daemonic process, from which multiprocessing refuses to start children."""
    import billiard

    with billiard.Pool(1) as pool:
        results, pids, child = pool.map(_spread_in_a_daemon, [0])[0]
    assert results == [] and len(pids) == 2 and child not in pids
