"""`manage.py fleet_simulator [--devices N]`: serve a simulated fleet on loopback and register its devices.

Miners answer the CGMiner-style RPC on TCP 4028 of their own 127.x.y.z address (LuxOS and Avalon firmwares, so
`pyasic.get_miner(address)` finds them), inference nodes our node agent on 9100, site meters on 9200. Runs until
interrupted; `--faults address=fault,...` starts some devices faulty (unreachable, slow, ack_no_change, flapping).
"""

from __future__ import annotations

import ipaddress
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fleet.simulation import DEFAULT_NETWORK, build_simulator, layout, register_simulated_fleet
from fleet.simulator.devices import Fault


def _network(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise CommandError(f"--network: {exc}") from exc
    if not net.is_loopback or net.prefixlen != 16:
        raise CommandError("--network must be a /16 inside 127.0.0.0/8, e.g. 127.19.0.0/16.")
    return str(net)


class Command(BaseCommand):
    help = "Serve a simulated fleet (miners on 4028, node agents, site meters) on loopback and register it."

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, help="Total devices (default: the seeded inventory).")
        parser.add_argument("--network", default=DEFAULT_NETWORK, help="Loopback /16 to serve on.")
        parser.add_argument("--faults", default="", help="address=fault pairs, comma-separated.")
        parser.add_argument("--check", action="store_true", help="Start, report, and stop (no serving).")

    def handle(self, *args, devices=None, network=DEFAULT_NETWORK, faults="", check=False, **options):
        if devices is not None and not 1 <= devices <= 60000:
            raise CommandError("--devices must be between 1 and 60000.")
        network = _network(network)
        try:
            slots = layout(devices)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        with tqdm(total=len({s.site.pk for s in slots}), desc="registering", unit="site", disable=None) as bar:
            created = register_simulated_fleet(slots, network=network, progress=lambda site: bar.update())
        sim = build_simulator(network=network)
        sim.start()
        for pair in filter(None, faults.split(",")):
            address, _, fault = pair.partition("=")
            try:
                sim.set_fault(address.strip(), Fault(fault.strip()))
            except (KeyError, ValueError) as exc:
                sim.stop()
                raise CommandError(f"--faults {pair!r}: unknown device or fault ({exc}).") from exc
        self.stdout.write(
            f"Serving {len(sim.miners)} miners, {len(sim.nodes)} node agents and {len(sim.meters)} meters on "
            f"{network} ({created} newly registered)."
        )
        if check:
            sim.stop()
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            sim.stop()
