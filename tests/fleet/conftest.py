"""A small simulated fleet on loopback for the fleet tests: two sites, LuxOS and Avalon miners, GPU nodes.

Each test process serves on its own 127.<n>.0.0/16 (n from the xdist worker), so parallel processes never bind
the same address; the simulator runs in a background thread of the test process and is stopped after the test.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from fleet.models import Device, SiteFleet
from fleet.simulation import Slot, build_simulator, register_simulated_fleet
from sites.choices import HardwareKind
from tests.factories import HardwareModelFactory, SiteFactory, SiteInventoryFactory


def _network() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    # xdist workers 127.200-249; a run without xdist its own 127.150-199 (two runs at once do not collide).
    n = 200 + int(worker.removeprefix("gw")) % 50 if worker else 150 + os.getpid() % 50
    return f"127.{n}.0.0/16"


NETWORK = _network()


@pytest.fixture(autouse=True)
def _fast_fleet(settings):
    settings.FLEET = {
        **settings.FLEET,
        "DEVICE_TIMEOUT_S": 2.5,  # generous: CI machines are busy; the slow fault answers after 5 s
        "RETRIES": 2,
        "BACKOFF_S": 0.02,
        "SETTLE_S": 0.01,
        "READBACK_CONFIRMATIONS": 2,
        "CONCURRENCY": 200,
        "DRY_RUN": False,
    }


@pytest.fixture
def hardware(db):
    return {
        "miner_air": HardwareModelFactory(code="miner_air", power_kw_per_unit=Decimal("3.500")),
        "miner_hydro": HardwareModelFactory(code="miner_hydro", power_kw_per_unit=Decimal("5.700")),
        "inference_gpu": HardwareModelFactory(code="inference_gpu", inference=True, kind=HardwareKind.INFERENCE),
    }


@pytest.fixture
def fleet_sites(hardware):
    """Two sites: `north` with 4 LuxOS + 2 Avalon miners and 3 GPU nodes; `south` with 3 LuxOS miners."""
    north = SiteFactory(code="north")
    south = SiteFactory(code="south")
    layout = [
        Slot(north, hardware["miner_air"], 4),
        Slot(north, hardware["miner_hydro"], 2),
        Slot(north, hardware["inference_gpu"], 3),
        Slot(south, hardware["miner_air"], 3),
    ]
    for slot in layout:
        SiteInventoryFactory(site=slot.site, hardware_model=slot.hardware, units_installed=slot.count)
    register_simulated_fleet(layout, network=NETWORK)
    SiteFleet.objects.update(min_on_minutes=0, min_off_minutes=0)
    return {"north": north, "south": south}


@pytest.fixture
def simulator(fleet_sites):
    sim = build_simulator(network=NETWORK)
    sim.start()
    yield sim
    sim.stop()


def devices(site, code):
    return list(Device.objects.filter(site=site, hardware_model__code=code).order_by("pk"))


def want(site, code, units):
    """Write the applied plan's units for one site and hardware (what store_and_apply does)."""
    from sites.models import SiteInventory

    SiteInventory.objects.filter(site=site, hardware_model__code=code).update(units_running=units)
