"""The MARA Hackathon 2025 market API's accounting, exactly, and its mapping onto the engine.

The API priced everything per 5-minute interval in abstract units: a type's revenue is ``units x hashrate x
hash_price`` (miners) or ``units x tokens x token_price`` (inference); the power cost is ``total watts x
energy_price``; a site has 1,000,000 W and integer unit counts, with no per-type limit.

``problem_for_prices`` expresses that accounting in the engine's units so that, for a 5-minute period
(1/12 h) at PUE 1, the engine's objective *is* the API's profit:

- energy: ``units x (W/1000) kW x price_usd_per_mwh / 1000 x 1/12 h = units x W x energy_price``
  with ``price_usd_per_mwh = energy_price x 1e6 x 12``;
- mining: ``units x hashrate/1000 x hashprice/24 x 1/12 = units x hashrate x hash_price``
  with ``hashprice_usd_per_ph_day = hash_price x 1000 x 24 x 12``;
- inference: ``units x tokens x 3600/1e6 Mtok/h x price x 1/12 = units x tokens x token_price``
  with ``price_usd_per_mtok = token_price x 1e6 x 12 / 3600``, demand unlimited.

``score_allocation`` is the API's own arithmetic (``GET /machines``), independent of the engine, and
``best_allocation`` finds the best integer allocation of one interval exactly (a knapsack over watts), so the
tests can check the engine against both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

from .problem import HardwareModel, Market, Problem, Settings, Site
from .solution import Solution

# The /inventory shape: category (miners, inference) -> hardware code -> field (power, hashrate, tokens) -> value.
Inventory = Mapping[str, Mapping[str, Mapping[str, int]]]
SITE_POWER_W = 1_000_000
INTERVAL_HOURS = 5 / 60
# GET /inventory, verbatim: power in watts per unit, hashrate and tokens in the API's abstract units.
HACKATHON_INVENTORY: dict[str, dict[str, dict[str, int]]] = {
    "inference": {"asic": {"power": 15000, "tokens": 50000}, "gpu": {"power": 5000, "tokens": 1000}},
    "miners": {
        "air": {"hashrate": 1000, "power": 3500},
        "hydro": {"hashrate": 5000, "power": 5000},
        "immersion": {"hashrate": 10000, "power": 10000},
    },
}
# Hardware code -> the PUT /machines field that counts it.
API_FIELDS = {
    "air": "air_miners",
    "hydro": "hydro_miners",
    "immersion": "immersion_miners",
    "gpu": "gpu_compute",
    "asic": "asic_compute",
}


@dataclass(frozen=True)
class PriceRow:
    """One row of GET /prices (or of the event-day CSV)."""

    energy_price: float
    hash_price: float
    token_price: float
    timestamp: str | None = None


@dataclass(frozen=True)
class MachinesReport:
    """What GET /machines reported for an allocation at one price row."""

    allocation: dict[str, int]  # API field -> units
    power: dict[str, int]  # API field -> watts
    revenue: dict[str, float]  # API field -> revenue
    total_power_used: int
    total_power_cost: float
    total_revenue: float

    @property
    def profit(self) -> float:
        return self.total_revenue - self.total_power_cost


def hardware_from_inventory(
    inventory: Inventory = HACKATHON_INVENTORY,
) -> tuple[HardwareModel, ...]:
    """Engine hardware models from the /inventory shape (kW = W / 1000; outputs in the API's units)."""
    models = [
        HardwareModel(code=code, kind="miner", power_kw=spec["power"] / 1000.0, hashrate_th_s=float(spec["hashrate"]))
        for code, spec in inventory["miners"].items()
    ]
    models += [
        HardwareModel(code=code, kind="inference", power_kw=spec["power"] / 1000.0, tokens_per_s=float(spec["tokens"]))
        for code, spec in inventory["inference"].items()
    ]
    return tuple(models)


def _specs(inventory: Inventory) -> dict[str, tuple[int, float, str]]:
    """code -> (watts, output per unit, 'hash' | 'token')."""
    specs = {code: (int(s["power"]), float(s["hashrate"]), "hash") for code, s in inventory["miners"].items()}
    specs |= {code: (int(s["power"]), float(s["tokens"]), "token") for code, s in inventory["inference"].items()}
    return specs


def problem_for_prices(
    prices: Sequence[PriceRow],
    *,
    inventory: Inventory = HACKATHON_INVENTORY,
    power_w: int = SITE_POWER_W,
    integer: bool = True,
    site_code: str = "mara",
) -> Problem:
    """An engine problem whose objective is the API's profit over the given 5-minute intervals.

    One site, PUE 1, no carbon, no switching cost, unlimited demand, and an inventory of as many units of each
    type as the site's power could hold (the API has no per-type limit).
    """
    hardware = hardware_from_inventory(inventory)
    n_t = len(prices)
    energy = np.array([p.energy_price for p in prices])
    units_cap = np.array([[math.floor(power_w / (h.power_kw * 1000.0)) for h in hardware]], dtype=float)
    return Problem(
        sites=(Site(code=site_code, power_capacity_kw=power_w / 1000.0, region="americas"),),
        hardware=hardware,
        inventory_units=units_cap,
        period_hours=np.full(n_t, INTERVAL_HOURS),
        pue=np.ones((1, n_t)),
        energy_price_usd_per_mwh=(energy * 1e6 * 12)[None, :],
        market=Market(
            hashprice_usd_per_ph_day=np.array([p.hash_price for p in prices]) * 1000 * 24 * 12,
            inference_price_usd_per_mtok=np.array([p.token_price for p in prices]) * 1e6 * 12 / 3600,
        ),
        settings=Settings(integer=integer, mip_rel_gap=1e-9),
    )


def score_allocation(
    allocation: Mapping[str, int],
    price: PriceRow,
    *,
    inventory: Inventory = HACKATHON_INVENTORY,
    power_w: int = SITE_POWER_W,
) -> MachinesReport:
    """The API's accounting of one interval for ``allocation`` (keys: API fields or hardware codes).

    Raises ``ValueError`` where the API refused: negative or fractional units, or more watts than the site has.
    """
    specs = _specs(inventory)
    by_field = {API_FIELDS.get(code, code): code for code in specs}
    counts: dict[str, int] = {API_FIELDS.get(code, code): 0 for code in specs}
    for key, units in allocation.items():
        field_name = API_FIELDS.get(key, key)
        if field_name not in by_field:
            raise ValueError(f"unknown machine type {key!r}")
        if units < 0 or units != int(units):
            raise ValueError(f"{field_name}: unit counts must be non-negative integers")
        counts[field_name] = int(units)
    power = {f: counts[f] * specs[by_field[f]][0] for f in counts}
    revenue = {
        f: counts[f]
        * specs[by_field[f]][1]
        * (price.hash_price if specs[by_field[f]][2] == "hash" else price.token_price)
        for f in counts
    }
    total_power = sum(power.values())
    if total_power > power_w:
        raise ValueError(f"total power {total_power} W exceeds the site's {power_w} W")
    return MachinesReport(
        allocation=counts,
        power=power,
        revenue=revenue,
        total_power_used=total_power,
        total_power_cost=total_power * price.energy_price,
        total_revenue=sum(revenue.values()),
    )


def best_allocation(
    price: PriceRow,
    *,
    inventory: Inventory = HACKATHON_INVENTORY,
    power_w: int = SITE_POWER_W,
) -> tuple[dict[str, int], float]:
    """The best integer allocation of one interval, exactly: an unbounded knapsack over watts.

    Watts are counted in steps of the greatest common divisor of the unit powers (500 W for the hackathon),
    so the table has ``power_w / gcd`` cells and the answer is exact, not a heuristic.
    """
    specs = _specs(inventory)
    codes = list(specs)
    step = reduce(math.gcd, [specs[c][0] for c in codes])
    weights = [specs[c][0] // step for c in codes]
    profits = [
        specs[c][1] * (price.hash_price if specs[c][2] == "hash" else price.token_price)
        - specs[c][0] * price.energy_price
        for c in codes
    ]
    cells = power_w // step
    best = np.zeros(cells + 1)
    choice = np.full(cells + 1, -1)
    for cap in range(1, cells + 1):
        best[cap], choice[cap] = best[cap - 1], -1
        for i, w in enumerate(weights):
            if w <= cap and best[cap - w] + profits[i] > best[cap] + 1e-9:
                best[cap], choice[cap] = best[cap - w] + profits[i], i
    counts = dict.fromkeys(codes, 0)
    cap = cells
    while cap > 0:
        if choice[cap] < 0:
            cap -= 1
        else:
            counts[codes[choice[cap]]] += 1
            cap -= weights[choice[cap]]
    return {API_FIELDS.get(c, c): n for c, n in counts.items()}, float(best[cells])


def allocation_from_solution(solution: Solution, period: int = 0) -> dict[str, int]:
    """The engine's plan for one interval as a PUT /machines body."""
    units = solution.units[0, :, period]
    return {API_FIELDS.get(code, code): round(float(n)) for code, n in zip(solution.hardware_codes, units, strict=True)}


def read_price_csv(path: str) -> list[PriceRow]:
    """Rows of the event-day trace (``timestamp,energy_price,hash_price,token_price``), oldest first."""
    import csv

    with open(path, newline="") as handle:
        rows = [
            PriceRow(float(r["energy_price"]), float(r["hash_price"]), float(r["token_price"]), r.get("timestamp"))
            for r in csv.DictReader(handle)
        ]
    return sorted(rows, key=lambda r: r.timestamp or "")
