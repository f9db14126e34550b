"""Drivers: one entry point (`DriverSession`) over pyasic miners and our node agents, with a timeout on every call.

`FIRMWARES` says, per driver, what the firmware supports; dispatch only ever sends what is listed there.
"""

from __future__ import annotations

import asyncio
import warnings

import httpx

from . import node_agent
from .base import Capabilities, DriverError, Endpoint, Reading, Setpoint

FIRMWARES: dict[str, Capabilities] = {
    "luxos": Capabilities(
        on_off=True,
        power_target=True,
        serves_placements=False,
        reads=("power", "hashrate", "temperature"),
        how="pyasic LUXMiner: curtail sleep/wakeup; profileset (largest preset <= target); summary/power/stats",
    ),
    "avalon": Capabilities(
        on_off=True,
        power_target=False,
        serves_placements=False,
        reads=("power", "hashrate", "temperature"),
        how="pyasic AvalonMiner: ascset softoff/softon; no watt target (worklevel is a 3-step level); devs/estats",
    ),
    "node_agent": Capabilities(
        on_off=True,
        power_target=True,
        serves_placements=True,
        reads=("power", "tokens_per_s", "temperature", "placements"),
        how="energyarb node agent over HTTP: serve/drain, power cap; GET /v1/state",
    ),
}

__all__ = [
    "FIRMWARES",
    "Capabilities",
    "DriverError",
    "DriverSession",
    "Endpoint",
    "Reading",
    "Setpoint",
    "prepare",
]


def _asic():
    """pyasic takes about 1.5 s to import (and asyncssh warns about DSA): only processes that speak to miners pay."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from . import asic
    return asic


def prepare(drivers) -> None:
    """Import what these drivers need before an event loop runs: importing pyasic inside the loop would stall
    every request in flight for seconds (and time them out)."""
    if any(driver != "node_agent" for driver in drivers):
        _asic()


class DriverSession:
    """Speaks to many devices from one asyncio loop; use as `async with DriverSession(timeout_s) as s:`."""

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> DriverSession:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        self._client = httpx.AsyncClient(timeout=self.timeout_s, limits=limits)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client of an open session (`async with`)."""
        if self._client is None:
            raise RuntimeError("DriverSession used outside `async with`")
        return self._client

    async def _bounded(self, awaitable, endpoint: Endpoint):
        try:
            return await asyncio.wait_for(awaitable, timeout=self.timeout_s)
        except TimeoutError as exc:
            if endpoint.driver != "node_agent":
                _asic().forget(endpoint)
            raise DriverError(f"{endpoint.address}: no answer within {self.timeout_s:g} s") from exc
        except OSError as exc:
            raise DriverError(f"{endpoint.address}: {exc}") from exc

    def forget(self, endpoint: Endpoint) -> None:
        """Forget what is kept about a device (session, acknowledged target): the next command starts afresh."""
        if endpoint.driver != "node_agent":
            _asic().forget(endpoint)

    async def read(self, endpoint: Endpoint, *, nominal_w: float) -> Reading:
        if endpoint.driver == "node_agent":
            return await self._bounded(node_agent.read(self.client, endpoint), endpoint)
        return await self._bounded(_asic().read(endpoint, nominal_w=nominal_w), endpoint)

    async def send(self, endpoint: Endpoint, setpoint: Setpoint) -> bool:
        capabilities = FIRMWARES[endpoint.driver]
        if not capabilities.power_target:
            setpoint = Setpoint(running=setpoint.running, placements=setpoint.placements)
        if endpoint.driver == "node_agent":
            return await self._bounded(node_agent.command(self.client, endpoint, setpoint), endpoint)
        return await self._bounded(
            _asic().command(endpoint, setpoint, power_target=capabilities.power_target), endpoint
        )

    async def read_meter(self, address: str, port: int, secret: str | None) -> float:
        try:
            return await asyncio.wait_for(node_agent.read_meter(self.client, address, port, secret), self.timeout_s)
        except TimeoutError as exc:
            raise DriverError(f"meter {address}: no answer within {self.timeout_s:g} s") from exc
