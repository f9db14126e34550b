"""The simulated fleet on the Django side: lay out N devices over the sites, register them, and build the
simulator that answers for exactly those registered devices (used by `fleet_simulator`, the tests, the bench).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from sites.models import HardwareModel, Site, SiteInventory

from .choices import Driver
from .models import Device, SiteFleet
from .services.registry import sync_inventory
from .simulator.devices import SimMeter, SimMiner, SimNode
from .simulator.server import METER_PORT, MINER_PORT, NODE_PORT, FleetSimulator, device_address, meter_address

# Which firmware each catalogue miner runs in the simulation: LuxOS takes a power target, Avalon only on/off.
FIRMWARE_BY_HARDWARE = {
    "miner_air": (Driver.LUXOS, "Antminer S21"),
    "miner_hydro": (Driver.AVALON, "AvalonMiner 1246"),
    "miner_immersion": (Driver.LUXOS, "Antminer S21 Pro"),
}
DEFAULT_NETWORK = "127.19.0.0/16"
TOKEN_ENV = "FLEET_SIM_NODE_TOKEN"


@dataclass(frozen=True)
class Slot:
    site: Site
    hardware: HardwareModel
    count: int


def layout(total: int | None = None) -> list[Slot]:
    """Devices per (site, hardware): the seeded inventory, scaled to `total` devices when given."""
    lines = list(
        SiteInventory.objects.select_related("site", "hardware_model").order_by("site__code", "hardware_model__code")
    )
    installed = sum(line.units_installed for line in lines)
    if not installed:
        raise ValueError("No inventory to lay the simulated fleet out on: run seed_sites first.")
    if total is None:
        return [Slot(line.site, line.hardware_model, line.units_installed) for line in lines if line.units_installed]
    counts = [line.units_installed * total // installed for line in lines]
    for i in sorted(range(len(lines)), key=lambda i: -lines[i].units_installed)[: total - sum(counts)]:
        counts[i] += 1  # largest remainders first, so the counts add up to total
    return [Slot(line.site, line.hardware_model, n) for line, n in zip(lines, counts, strict=True) if n]


@transaction.atomic
def register_simulated_fleet(
    slots: list[Slot], *, network: str = DEFAULT_NETWORK, progress: Callable | None = None
) -> int:
    """Register the devices the simulator will serve (names `sim-<site>-<hw>-<n>`), idempotently; meters too."""
    token_ref = TOKEN_ENV if os.environ.get(TOKEN_ENV) else ""
    existing = set(Device.objects.filter(name__startswith="sim-").values_list("name", flat=True))
    used = set(Device.objects.values_list("address", flat=True))
    new, index = [], 0
    for slot in slots:
        driver, model = FIRMWARE_BY_HARDWARE.get(slot.hardware.code, (Driver.NODE_AGENT, "energyarb-node-agent/1"))
        for n in range(slot.count):
            name = f"sim-{slot.site.code}-{slot.hardware.code}-{n:05d}"
            if name in existing:
                continue
            while device_address(network, index) in used:
                index += 1
            address = device_address(network, index)
            used.add(address)
            new.append(
                Device(
                    site=slot.site,
                    hardware_model=slot.hardware,
                    name=name,
                    driver=driver,
                    firmware_model=model,
                    address=address,
                    port=NODE_PORT if driver == Driver.NODE_AGENT else MINER_PORT,
                    credentials_ref=token_ref if driver == Driver.NODE_AGENT else "",
                )
            )
    Device.objects.bulk_create(new, batch_size=2000)
    sites = sorted({slot.site.pk: slot.site for slot in slots}.values(), key=lambda s: s.code)
    for i, site in enumerate(sites):
        SiteFleet.objects.update_or_create(
            site=site, defaults={"meter_address": meter_address(network, i), "meter_port": METER_PORT}
        )
        if progress:
            progress(site)
    sync_inventory(site_ids=[s.pk for s in sites])
    return len(new)


def build_simulator(*, network: str = DEFAULT_NETWORK, pue: float = 1.15) -> FleetSimulator:
    """A simulator serving every registered device in `network` as the registry knows it (running or not)."""
    import ipaddress

    net = ipaddress.IPv4Network(network)
    sim = FleetSimulator()
    token = os.environ.get(TOKEN_ENV, "")
    meters: dict[int, SimMeter] = {}
    for fleet in SiteFleet.objects.filter(meter_address__isnull=False).select_related("site"):
        address = fleet.meter_address
        if address is not None and ipaddress.IPv4Address(address) in net:  # never None, by the filter
            meters[fleet.site_id] = sim.add_meter(
                SimMeter(site=fleet.site.code, address=address, port=fleet.meter_port, pue=pue)
            )
    for device in Device.objects.select_related("hardware_model").order_by("pk"):
        if ipaddress.IPv4Address(device.address) not in net:
            continue
        hw = device.hardware_model
        sim_device: SimMiner | SimNode
        if device.is_miner:
            sim_device = sim.add_miner(
                SimMiner(
                    address=device.address,
                    firmware=device.driver,
                    model=device.firmware_model or "Antminer S21",
                    nominal_w=round(float(hw.power_kw_per_unit) * 1000),
                    nominal_ths=float(hw.hashrate_th_per_s or 0),
                    on=device.is_running,
                )
            )
        else:
            sim_device = sim.add_node(
                SimNode(
                    address=device.address,
                    port=device.port,
                    token=token if device.credentials_ref else "",
                    nominal_w=round(float(hw.power_kw_per_unit) * 1000),
                    nominal_tokens_per_s=float(hw.tokens_per_s or 0),
                    state="serving" if device.is_running else "idle",
                    placements=list(device.placements or []),
                )
            )
        if device.site_id in meters:
            meters[device.site_id].devices.append(sim_device)
    return sim
