"""What every driver offers: a setpoint in, an acknowledgement out; a reading of the device's state.

No Django here: the dispatcher hands drivers plain `Endpoint`s (address, port, firmware model, secret) so a
round runs on one asyncio loop without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class DriverError(Exception):
    """The device did not answer (refused, timed out, or answered nothing usable)."""


@dataclass(frozen=True)
class Capabilities:
    """What a firmware lets us do; a device without a power target is only ever switched on or off."""

    on_off: bool
    power_target: bool
    serves_placements: bool
    reads: tuple[str, ...]
    how: str


@dataclass(frozen=True)
class Endpoint:
    device_id: int
    driver: str
    address: str
    port: int
    firmware_model: str = ""
    secret: str | None = None


@dataclass(frozen=True)
class Setpoint:
    running: bool
    power_w: float | None = None  # only sent to firmwares with a power target
    placements: tuple[str, ...] = ()


@dataclass
class Reading:
    running: bool
    power_w: float
    hashrate_th_per_s: float | None = None
    tokens_per_s: float | None = None
    temperature_c: float | None = None
    placements: list[str] = field(default_factory=list)

    def follows(self, setpoint: Setpoint, *, nominal_w: float) -> bool:
        """Whether this reading shows the setpoint carried out: the state, the power within 15 % of a target (a
        preset profile may sit a little under it), and the placements a node was given."""
        if self.running != setpoint.running:
            return False
        if setpoint.running and setpoint.power_w and not 0.85 <= self.power_w / setpoint.power_w <= 1.15:
            return False
        return not (setpoint.running and set(setpoint.placements) - set(self.placements))
