"""One process serving a whole simulated fleet on loopback, each device on its own 127.x.y.z address.

Miners answer the CGMiner-style RPC on TCP 4028 (so `pyasic.get_miner(address)` finds them), inference nodes
our node agent on 9100, site meters on 9200. One asyncio loop in a background thread carries every listener;
faults are injected per address (`set_fault`), thread-safe. No Django here: `manage.py fleet_simulator` and the
tests build the fleet from the registry and register what it serves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import resource
import threading
from collections.abc import Iterable

from . import cgminer
from .agent import meter_handler, node_handler
from .devices import Fault, SimMeter, SimMiner, SimNode
from .http import serve_one

MINER_PORT = 4028
NODE_PORT = 9100
METER_PORT = 9200
READ_TIMEOUT_S = 10


def device_address(network: str, index: int) -> str:
    """The index-th device address of a /16 loopback network, skipping .0, .1 and .255 of each /24."""
    base = ipaddress.IPv4Network(network)
    third, fourth = divmod(index, 250)
    if third >= 255:
        raise ValueError(f"{network} holds at most {255 * 250} devices.")
    return str(base.network_address + third * 256 + fourth + 2)


def meter_address(network: str, index: int) -> str:
    """Site meters live in the last /24 of the network (device_address never reaches it)."""
    return str(ipaddress.IPv4Network(network).network_address + 255 * 256 + index + 2)


def raise_open_files_limit(needed: int) -> int:
    """Lift the soft descriptor limit toward the hard one: each listener is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, needed))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


class FleetSimulator:
    """Serve miners, nodes and meters; `start()` returns once every listener is bound."""

    def __init__(self) -> None:
        self.miners: dict[str, SimMiner] = {}
        self.nodes: dict[str, SimNode] = {}
        self.meters: dict[str, SimMeter] = {}
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0

    # --- building -----------------------------------------------------------------------------------------------

    def add_miner(self, miner: SimMiner) -> SimMiner:
        self.miners[miner.address] = miner
        return miner

    def add_node(self, node: SimNode) -> SimNode:
        self.nodes[node.address] = node
        return node

    def add_meter(self, meter: SimMeter) -> SimMeter:
        self.meters[meter.site] = meter
        return meter

    def device(self, address: str) -> SimMiner | SimNode:
        return self.miners.get(address) or self.nodes[address]

    # --- serving ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        raise_open_files_limit(len(self.miners) + len(self.nodes) + len(self.meters) + 4096)
        loop = self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen_all())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="fleet-simulator", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            for server in self._servers.values():
                server.close()
            self._servers.clear()
            # Connections still being answered (a slow device's sleep) end here, not with the loop.
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=30)
        self._loop.close()
        self._loop = None

    def serve_forever(self) -> None:
        if self._thread:
            self._thread.join()

    async def _listen_all(self) -> None:
        for address in self.miners:
            await self._listen(address)
        for address in self.nodes:
            await self._listen(address)
        for meter in self.meters.values():
            handler = meter_handler(meter)

            async def answer(reader, writer, handler=handler):
                await serve_one(reader, writer, handler)

            self._servers[f"meter:{meter.site}"] = await asyncio.start_server(answer, meter.address, meter.port)

    async def _listen(self, address: str) -> None:
        if address in self.miners:
            server = await asyncio.start_server(self._miner_connection, address, MINER_PORT, backlog=256)
        else:
            node = self.nodes[address]
            server = await asyncio.start_server(self._node_connection, address, node.port, backlog=256)
        self._servers[address] = server

    async def _miner_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        miner = self.miners[writer.get_extra_info("sockname")[0]]
        try:
            raw = b""
            while True:  # the client sends one JSON object and waits: read until it parses
                chunk = await asyncio.wait_for(reader.read(4096), timeout=READ_TIMEOUT_S)
                raw += chunk
                if not chunk or _complete(raw):
                    break
            reply = cgminer.handle_request(miner, raw)
            if miner.fault is Fault.SLOW:
                await asyncio.sleep(miner.slow_seconds)
            writer.write(reply)
            await writer.drain()
        except (ConnectionError, OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _node_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        node = self.nodes[writer.get_extra_info("sockname")[0]]
        delay = node.slow_seconds if node.fault is Fault.SLOW else 0
        await serve_one(reader, writer, node_handler(node), delay_s=delay)

    # --- faults -------------------------------------------------------------------------------------------------

    def set_fault(self, address: str, fault: Fault | str | None, *, slow_seconds: float | None = None) -> None:
        """Give one device a fault (None clears it); an unreachable device stops listening until cleared."""
        fault = Fault(fault) if fault else None
        device = self.device(address)

        async def apply() -> None:
            was_unreachable = device.fault is Fault.UNREACHABLE
            device.fault = fault
            device.reads = 0
            if slow_seconds is not None:
                device.slow_seconds = slow_seconds
            if fault is Fault.UNREACHABLE and address in self._servers:
                server = self._servers.pop(address)
                server.close()
                await server.wait_closed()
            elif was_unreachable and fault is not Fault.UNREACHABLE:
                await self._listen(address)

        if self._loop is None:
            device.fault = fault
            return
        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(timeout=30)

    def set_faults(self, addresses: Iterable[str], fault: Fault | str | None, **kwargs) -> None:
        for address in addresses:
            self.set_fault(address, fault, **kwargs)


def _complete(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True
