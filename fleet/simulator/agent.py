"""The node agent protocol (docs/fleet.md) as a simulated inference node answers it, and the site meter's read."""

from __future__ import annotations

import hmac

from .devices import SimMeter, SimNode


def _int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}.")
    return value


def node_handler(node: SimNode):
    def handle(method: str, path: str, headers: dict, body: dict | None) -> tuple[int, dict]:
        expected = f"Bearer {node.token}"
        if node.token and not hmac.compare_digest(headers.get("authorization", ""), expected):
            return 401, {"error": "a valid bearer token is required"}
        body = body or {}
        try:
            if path == "/v1/state" and method == "GET":
                return 200, node.snapshot()
            if path == "/v1/serve" and method == "POST":
                placements = body.get("placements", [])
                if not isinstance(placements, list) or not all(isinstance(p, str) for p in placements):
                    raise ValueError("placements must be a list of strings.")
                cap = body.get("power_cap_w")
                node.serve(placements, _int(cap, "power_cap_w", 1, 10 * node.nominal_w) if cap is not None else None)
                return 202, {"accepted": True}
            if path == "/v1/drain" and method == "POST":
                node.drain()
                return 202, {"accepted": True}
            if path == "/v1/power-cap" and method == "PUT":
                node.cap(_int(body.get("power_cap_w"), "power_cap_w", 1, 10 * node.nominal_w))
                return 200, {"accepted": True}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        if path in ("/v1/state", "/v1/serve", "/v1/drain", "/v1/power-cap"):
            return 405, {"error": "method not allowed"}
        return 404, {"error": "not found"}

    return handle


def meter_handler(meter: SimMeter):
    def handle(method: str, path: str, headers: dict, body: dict | None) -> tuple[int, dict]:
        if path == "/v1/meter" and method == "GET":
            return 200, {"site": meter.site, "power_kw": round(meter.power_kw(), 3)}
        return 404, {"error": "not found"}

    return handle
