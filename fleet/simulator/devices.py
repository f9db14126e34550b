"""The simulated machines: their physical state and the faults that can be injected into them.

Pure Python, no I/O: the wire protocols (`cgminer.py`, `http.py`) read and change these objects, and a site's
meter sums them. Power figures are watts; a miner that is asleep draws a few watts of control board.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field


class Fault(enum.StrEnum):
    """What a device can be made to do wrong (the simulator's `set_fault`)."""

    UNREACHABLE = "unreachable"  # its port refuses connections
    SLOW = "slow"  # replies only after `slow_seconds`
    ACK_NO_CHANGE = "ack_no_change"  # acknowledges commands, changes nothing
    FLAPPING = "flapping"  # what it reports alternates between running and stopped on every read


SLEEP_POWER_W = 15.0
IDLE_FRACTION = 0.08  # an inference node with no work draws this share of its nominal power


def _jitter(key: str, spread: float) -> float:
    """A stable per-device factor in [1 - spread, 1 + spread] so readings differ between devices."""
    digest = hashlib.blake2b(key.encode(), digest_size=2).digest()
    return 1 + spread * (int.from_bytes(digest, "big") / 65535 * 2 - 1)


@dataclass
class Faulty:
    fault: Fault | None = None
    slow_seconds: float = 10.0
    reads: int = 0  # requests answered: a flapping device alternates on this

    def observed_on(self, on: bool) -> bool:
        """What a read reports as running; a flapping device alternates from one request to the next."""
        if self.fault is Fault.FLAPPING:
            return self.reads % 2 == 1
        return on

    @property
    def changes(self) -> bool:
        return self.fault is not Fault.ACK_NO_CHANGE


@dataclass(frozen=True)
class Profile:
    """A LuxOS power profile: a named frequency/voltage step and what it draws and hashes."""

    name: str
    watts: int
    hashrate_ths: float
    frequency_mhz: int
    voltage_v: float


@dataclass
class SimMiner(Faulty):
    """An ASIC miner behind a CGMiner-style RPC on TCP 4028 (LuxOS or Avalon stock firmware)."""

    address: str = ""
    firmware: str = "luxos"  # luxos | avalon
    model: str = "Antminer S21"
    nominal_w: int = 3500
    nominal_ths: float = 200.0
    on: bool = True
    profile: str = "default"
    session_id: str = ""
    elapsed_s: int = 3600
    profiles: tuple[Profile, ...] = ()

    def __post_init__(self) -> None:
        if not self.profiles:
            steps = ((-2, 0.70), (-1, 0.85), (0, 1.0))
            self.profiles = tuple(
                Profile(
                    name="default" if step == 0 else f"{step}",
                    watts=round(self.nominal_w * share),
                    hashrate_ths=round(self.nominal_ths * share**0.8, 2),
                    frequency_mhz=round(490 * share),
                    voltage_v=round(13.2 * share**0.3, 2),
                )
                for step, share in steps
            )

    def active_profile(self) -> Profile:
        return next((p for p in self.profiles if p.name == self.profile), self.profiles[-1])

    def read(self) -> tuple[bool, float, float, float]:
        """(running, watts, TH/s, temperature C) as one read reports them."""
        running = self.observed_on(self.on)
        if not running:
            return False, SLEEP_POWER_W, 0.0, 30.0
        profile = self.active_profile()
        jitter = _jitter(self.address, 0.02)
        return True, profile.watts * jitter, profile.hashrate_ths * jitter, 55.0 + 10 * profile.watts / self.nominal_w

    def power_w(self) -> float:
        """The true draw (what the site meter sees), whatever the device reports."""
        return self.active_profile().watts * _jitter(self.address, 0.02) if self.on else SLEEP_POWER_W

    def set_on(self, on: bool) -> None:
        if self.changes:
            self.on = on

    def set_profile(self, name: str) -> bool:
        if not any(p.name == name for p in self.profiles):
            return False
        if self.changes:
            self.profile = name
        return True


@dataclass
class SimNode(Faulty):
    """An inference node running our node agent (HTTP, docs/fleet.md)."""

    address: str = ""
    port: int = 9100
    token: str = ""
    nominal_w: int = 10200
    nominal_tokens_per_s: float = 12000.0
    state: str = "idle"  # serving | draining | idle
    power_cap_w: int = 0
    placements: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.power_cap_w = self.power_cap_w or self.nominal_w

    def power_w(self) -> float:
        if self.state == "serving":
            return min(self.power_cap_w, self.nominal_w) * _jitter(self.address, 0.02)
        return self.nominal_w * IDLE_FRACTION

    def snapshot(self) -> dict:
        self.reads += 1
        serving = self.observed_on(self.state == "serving")
        power = self.power_w() if serving else self.nominal_w * IDLE_FRACTION
        share = min(self.power_cap_w, self.nominal_w) / self.nominal_w if serving else 0.0
        return {
            "agent": "energyarb-node-agent/1",
            "state": "serving" if serving else ("idle" if self.state == "serving" else self.state),
            "power_w": round(power, 1),
            "power_cap_w": self.power_cap_w,
            "tokens_per_s": round(self.nominal_tokens_per_s * share, 1),
            "temperature_c": round(40 + 35 * power / self.nominal_w, 1),
            "placements": list(self.placements) if serving else [],
        }

    def serve(self, placements: list[str], power_cap_w: int | None) -> None:
        if self.changes:
            self.state = "serving"
            self.placements = list(placements)
            if power_cap_w:
                self.power_cap_w = power_cap_w

    def drain(self) -> None:
        if self.changes:
            self.state = "idle"
            self.placements = []

    def cap(self, power_cap_w: int) -> None:
        if self.changes:
            self.power_cap_w = power_cap_w


@dataclass
class SimMeter:
    """A site's revenue meter: what the site really draws (devices' true power times the facility overhead)."""

    site: str
    address: str = ""
    port: int = 9200
    pue: float = 1.15
    devices: list = field(default_factory=list)

    def power_kw(self) -> float:
        return sum(d.power_w() for d in self.devices) / 1000 * self.pue
