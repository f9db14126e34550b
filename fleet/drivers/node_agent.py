"""Inference nodes through our node agent protocol (HTTP + JSON, bearer token; docs/fleet.md).

GET  /v1/state      -> {state, power_w, power_cap_w, tokens_per_s, temperature_c, placements}
POST /v1/serve      {placements: [str], power_cap_w?: int}  -> 202
POST /v1/drain      -> 202
PUT  /v1/power-cap  {power_cap_w: int}                      -> 200
"""

from __future__ import annotations

import httpx

from .base import DriverError, Endpoint, Reading, Setpoint


def _url(endpoint: Endpoint, path: str) -> str:
    return f"http://{endpoint.address}:{endpoint.port}{path}"


def _headers(endpoint: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {endpoint.secret}"} if endpoint.secret else {}


async def read(client: httpx.AsyncClient, endpoint: Endpoint) -> Reading:
    try:
        response = await client.get(_url(endpoint, "/v1/state"), headers=_headers(endpoint))
        response.raise_for_status()
        state = response.json()
        return Reading(
            running=state["state"] == "serving",
            power_w=float(state["power_w"]),
            tokens_per_s=float(state["tokens_per_s"]),
            temperature_c=float(state["temperature_c"]) if state.get("temperature_c") is not None else None,
            placements=[str(p) for p in state.get("placements", [])],
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"{endpoint.address}: {type(exc).__name__}: {exc}") from exc


async def command(client: httpx.AsyncClient, endpoint: Endpoint, setpoint: Setpoint) -> bool:
    try:
        if setpoint.running:
            body: dict = {"placements": list(setpoint.placements)}
            if setpoint.power_w:
                body["power_cap_w"] = int(setpoint.power_w)
            response = await client.post(_url(endpoint, "/v1/serve"), json=body, headers=_headers(endpoint))
        else:
            response = await client.post(_url(endpoint, "/v1/drain"), headers=_headers(endpoint))
    except httpx.HTTPError as exc:
        raise DriverError(f"{endpoint.address}: {type(exc).__name__}: {exc}") from exc
    return response.is_success


async def read_meter(client: httpx.AsyncClient, address: str, port: int, secret: str | None) -> float:
    """A site meter's power (kW) through the same agent protocol's `GET /v1/meter`."""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        response = await client.get(f"http://{address}:{port}/v1/meter", headers=headers)
        response.raise_for_status()
        return float(response.json()["power_kw"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"meter {address}: {type(exc).__name__}: {exc}") from exc
