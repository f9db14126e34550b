"""ASIC miners through pyasic (pinned in requirements.txt): the same code drives a real miner and the simulator.

Firmwares and what we use of each (`FIRMWARES` in `__init__.py` is the table):
- LuxOS (custom firmware): start/stop by `curtail wakeup/sleep` (a privileged command: pyasic opens a session
  with `session`/`logon`), power target by `profileset` to the largest preset profile at or under the target
  (pyasic `set_power_limit`), reads by one multicommand `summary+power+stats` (hashrate from the hashboards:
  pyasic 0.79's LuxOS `_get_hashrate` ignores the summary it is given).
- Avalon stock CGMiner: start/stop by `ascset 0,softon|softoff`; its `worklevel` is a 3-step level, not a power
  target, so we never send one: such a miner is switched on or off. Reads by `devs+estats`.

A miner object (with its LuxOS session) is kept per endpoint for the life of the process.

CPU: pyasic 0.79 lists an RPC class's commands with `dir()` and `getattr` on every `multicommand` (to drop the
commands a firmware lacks), about a millisecond of CPU per read, most of a read's cost. The list depends on the
class only, so each miner's RPC object is given a subclass that computes it once (`_cached_commands`); what is
sent and parsed is pyasic's own.
"""

from __future__ import annotations

import asyncio

from pyasic.errors import APIError
from pyasic.miners.base import AnyMiner
from pyasic.miners.data import DataOptions
from pyasic.miners.factory import MINER_CLASSES, MinerTypes, miner_factory

from .base import DriverError, Endpoint, Reading, Setpoint

MINER_TYPES = {"luxos": MinerTypes.LUX_OS, "avalon": MinerTypes.AVALONMINER}
READS = {
    "luxos": [DataOptions.WATTAGE, DataOptions.HASHBOARDS],
    "avalon": [DataOptions.WATTAGE, DataOptions.HASHRATE, DataOptions.HASHBOARDS, DataOptions.ENVIRONMENT_TEMP],
}
RUNNING_SHARE = 0.05  # a miner drawing under 5 % of its nominal power and hashing nothing is stopped

_miners: dict[tuple[str, int], AnyMiner] = {}
_rpc_classes: dict[type, type] = {}
_targets: dict[tuple[str, int], int] = {}  # the power target each miner last acknowledged (not sent again)


async def _miner(endpoint: Endpoint) -> AnyMiner:
    key = (endpoint.address, endpoint.port)
    miner = _miners.get(key)
    if miner is None:
        if endpoint.firmware_model:
            classes = MINER_CLASSES[MINER_TYPES[endpoint.driver]]
            cls = classes.get(endpoint.firmware_model.upper()) or classes[None]
            miner = cls(endpoint.address)
        else:
            miner = await miner_factory.get_miner(endpoint.address)
            if miner is None:
                raise DriverError(f"{endpoint.address}: no miner answered")
        miner.rpc.port = endpoint.port
        miner.rpc.__class__ = _cached_commands(miner.rpc)
        if endpoint.secret is not None:
            miner.pwd = endpoint.secret  # web/SSH password where the firmware needs one
        _miners[key] = miner
    return miner


def _cached_commands(rpc) -> type:
    """The class of `rpc` with `get_commands` (pyasic's `dir()` walk, the same for every object of a class)
    computed once."""
    rpc_class = type(rpc)
    cached = _rpc_classes.get(rpc_class)
    if cached is None:
        names = tuple(rpc.get_commands())

        def get_commands(self) -> list[str]:
            return list(names)

        cached = type(rpc_class.__name__, (rpc_class,), {"get_commands": get_commands, "__module__": __name__})
        _rpc_classes[rpc_class] = cached
        _rpc_classes[cached] = cached
    return cached


def forget(endpoint: Endpoint) -> None:
    """Drop the kept miner object (after an error its session may be stale) and its acknowledged target."""
    _miners.pop((endpoint.address, endpoint.port), None)
    _targets.pop((endpoint.address, endpoint.port), None)


async def read(endpoint: Endpoint, *, nominal_w: float) -> Reading:
    miner = await _miner(endpoint)
    data = await miner.get_data(include=READS[endpoint.driver])
    if data.wattage is None:
        forget(endpoint)
        raise DriverError(f"{endpoint.address}: no answer to the power read")
    hashrate = float(data.hashrate) if data.hashrate is not None else 0.0
    temperature = data.temperature_avg if data.temperature_avg is not None else data.env_temp
    return Reading(
        running=hashrate > 0 or data.wattage > nominal_w * RUNNING_SHARE,
        power_w=float(data.wattage),
        hashrate_th_per_s=hashrate,
        temperature_c=float(temperature) if temperature is not None else None,
    )


async def command(endpoint: Endpoint, setpoint: Setpoint, *, power_target: bool) -> bool:
    """Send the setpoint; True when the miner acknowledged every part of it."""
    miner = await _miner(endpoint)
    try:
        if not setpoint.running:
            acknowledged = bool(await miner.stop_mining())
        else:
            acknowledged = bool(await miner.resume_mining())
            target = int(setpoint.power_w or 0)
            key = (endpoint.address, endpoint.port)
            if acknowledged and power_target and target and _targets.get(key) != target:
                acknowledged = bool(await miner.set_power_limit(target))
                if acknowledged:
                    _targets[key] = target
        if not acknowledged:
            forget(endpoint)  # a refused command may mean an expired session: the retry opens a new one
        return acknowledged
    except (APIError, LookupError, OSError, asyncio.IncompleteReadError) as exc:
        forget(endpoint)
        raise DriverError(f"{endpoint.address}: {exc}") from exc
