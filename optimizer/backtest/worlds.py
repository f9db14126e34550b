"""WORLD.json: sites, hardware, inventory, commitments and settings without the database, validated with clear errors.

Two formats share the envelope (``schema``, ``name``, ``format``, optional ``description``); the schema is
documented in docs/backtest.md:

- ``energyarb``: ``hardware`` (kW, TH/s, tokens/s), ``sites`` (kW, region, cooling, inventory, optional location
  for simulated prices), optional ``commitments`` and ``settings``: the engine's own units.
- ``mara``: the hackathon API's single site as the API described it: ``site.power`` in watts and ``inventory``
  exactly as ``GET /inventory`` returned it (watts per unit, hashrate and tokens in the API's units), no per-type
  limit. It is mapped onto the engine by ``mara.problem_for_prices``, so the engine's objective is the API's profit.

Every error is a ``BacktestInputError`` whose message starts with the JSON path of the offending value
(``$.sites[2].power_capacity_kw: must be a finite number, got 'abc'``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from sites.simulation import COOLING_TYPES

from .. import engine
from ..engine import mara
from .grid import WorldGrid, parse_grid

FORMATS = ("mara", "energyarb")
SCHEMA = "energyarb-world/1"


class BacktestInputError(ValueError):
    """A world, a price file or an option the backtest cannot use; the message says where and why."""


@dataclass(frozen=True)
class SiteLocation:
    """What the price and weather simulators need to know about a site (simulated prices only)."""

    time_zone: str
    latitude: float
    climate_zone: str
    grid_region: str
    energy_cost_multiplier: float


@dataclass(frozen=True, eq=False)
class World:
    """Sites, hardware, inventory, commitments and economic settings: everything but the prices."""

    name: str
    format: str  # 'energyarb' | 'mara'
    sites: tuple[engine.Site, ...]
    hardware: tuple[engine.HardwareModel, ...]
    inventory_units: np.ndarray  # [S, H]
    cooling_types: tuple[str | None, ...]  # per site; None = PUE 1
    commitments: tuple[engine.Commitment, ...] = ()
    settings: engine.Settings = field(default_factory=lambda: engine.Settings(integer=True))
    locations: tuple[SiteLocation | None, ...] = ()
    mara_inventory: Mapping | None = None  # GET /inventory of a mara world
    mara_power_w: int | None = None
    grid: WorldGrid | None = None  # grid programs (optimizer/backtest/grid.py)
    # hardware whose warm-up per start the JSON gave; the others have none until `with_warmups` gives them the
    # live plan's (the `backtest` command does)
    warmups_given: frozenset[str] = frozenset()
    # each machine's (cooling type, kind), whose hall it runs in (sites.simulation.hall_cooling); () = every machine
    # at its site's PUE (a world whose hardware gives no cooling_type)
    hardware_halls: tuple[tuple[str, str], ...] = ()

    @property
    def site_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.sites)

    @property
    def hardware_codes(self) -> tuple[str, ...]:
        return tuple(h.code for h in self.hardware)

    @property
    def mara_api(self) -> tuple[Mapping, int]:
        """The GET /inventory and the machines' power of a mara world (BacktestInputError for another world)."""
        if self.mara_inventory is None or self.mara_power_w is None:
            raise BacktestInputError(f"world {self.name!r} has no hackathon API inventory")
        return self.mara_inventory, self.mara_power_w

    @property
    def money_unit(self) -> str:
        return "USD" if self.format == "energyarb" else "hackathon API units"

    def problem(
        self,
        *,
        period_hours: np.ndarray,
        energy_price_usd_per_mwh: np.ndarray,
        pue: np.ndarray,
        hashprice_usd_per_ph_day: np.ndarray,
        inference_price_usd_per_mtok: np.ndarray,
        inference_demand_mtok_per_h: Mapping[str, np.ndarray],
        previous_units: np.ndarray | None,
        settings: engine.Settings | None = None,
        period_starts: Sequence[datetime] | None = None,
        hall_pue: np.ndarray | None = None,
    ) -> engine.Problem:
        """The engine problem of this world over some periods (arrays ``[S, T]`` and ``[T]``); a world with grid
        programs needs the periods' ``period_starts`` to place them."""
        grid = None
        if self.grid is not None:
            if period_starts is None:
                raise ValueError("a world with grid programs needs the periods' start times")
            grid = self.grid.inputs(period_starts, np.asarray(period_hours, dtype=float))
        return engine.Problem(
            sites=self.sites,
            hardware=self.hardware,
            inventory_units=self.inventory_units,
            period_hours=period_hours,
            pue=pue,
            energy_price_usd_per_mwh=energy_price_usd_per_mwh,
            market=engine.Market(
                hashprice_usd_per_ph_day=hashprice_usd_per_ph_day,
                inference_price_usd_per_mtok=inference_price_usd_per_mtok,
                inference_demand_mtok_per_h=inference_demand_mtok_per_h,
            ),
            commitments=self.commitments,
            previous_units=previous_units,
            settings=settings or self.settings,
            period_starts=tuple(period_starts) if period_starts is not None else None,
            grid=grid,
            hall_pue=hall_pue,
        )


def with_settings(world: World, **changes: float | None) -> World:
    """The world with some engine settings replaced (None leaves a setting as the world has it)."""
    wanted: dict[str, Any] = {key: value for key, value in changes.items() if value is not None}
    if not wanted:
        return world
    if world.format == "mara" and any(wanted.get(k) for k in ("switching_cost_usd_per_unit", "carbon_price_usd_per_t")):
        raise BacktestInputError("the hackathon API charges neither switching nor carbon: not with --format mara")
    return replace(world, settings=replace(world.settings, **wanted))


def with_warmups(world: World, *, miner_minutes: float, inference_minutes: float) -> World:
    """The world with each machine's warm-up per start as the live plan has it (``MINER_WARMUP_MINUTES``,
    ``INFERENCE_WARMUP_MINUTES``, ``optimizer.inputs.engine_hardware``), except where the JSON gave its own
    ``warmup_minutes``. A mara world keeps none: its objective is the hackathon API's profit, which has none."""
    if world.format == "mara":
        return world
    by_kind = {"miner": miner_minutes, "inference": inference_minutes}
    for kind, minutes in by_kind.items():
        if not (math.isfinite(minutes) and minutes >= 0):
            raise BacktestInputError(f"warm-up of a {kind}: must be a finite number >= 0 minutes, got {minutes!r}")
    hardware = tuple(
        h if h.code in world.warmups_given else replace(h, warmup_minutes=float(by_kind[h.kind]))
        for h in world.hardware
    )
    return replace(world, hardware=hardware)


def load_world(path: str | Path) -> World:
    """Read and validate a WORLD.json; BacktestInputError names the file and the JSON path."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BacktestInputError(f"world file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BacktestInputError(f"{path}: not a readable JSON file ({exc})") from None
    try:
        return parse_world(data)
    except BacktestInputError as exc:
        raise BacktestInputError(f"{path}: {exc}") from None


def parse_world(data: object) -> World:
    """A ``World`` from WORLD.json's parsed content; every error starts with the JSON path of the bad value."""
    root = _object(data, "$", required=("schema", "name", "format"), optional=_WORLD_KEYS)
    if root["schema"] != SCHEMA:
        raise BacktestInputError(f"$.schema: must be {SCHEMA!r}, got {root['schema']!r}")
    name = _string(root["name"], "$.name")
    if _choice(root["format"], "$.format", FORMATS) == "mara":
        return _parse_mara_world(root, name)
    return _parse_energyarb_world(root, name)


_WORLD_KEYS = ("description", "site", "inventory", "hardware", "sites", "commitments", "settings", "grid")
_SITE_KEYS = (
    "name", "region", "renewable_share", "grid_carbon_kg_per_mwh", "available", "cooling_type", "time_zone",
    "latitude", "longitude", "climate_zone", "grid_region", "energy_cost_multiplier",
)  # fmt: skip
_LOCATION_KEYS = ("time_zone", "latitude", "climate_zone", "grid_region", "energy_cost_multiplier")
_COMMITMENT_KEYS = ("n_minus_1", "allowed_sites", "min_sites")
_SETTINGS_KEYS = (
    "switching_cost_usd_per_unit", "carbon_price_usd_per_t", "ramp_limit_fraction", "mip_rel_gap", "time_limit_s",
)  # fmt: skip


def _parse_mara_world(root: dict, name: str) -> World:
    for key in ("hardware", "sites", "commitments", "settings", "grid"):
        if key in root:
            raise BacktestInputError(f"$.{key}: not part of a mara world (it has 'site' and 'inventory', as the API)")
    for key in ("site", "inventory"):
        if key not in root:
            raise BacktestInputError(f"$.{key}: required in a mara world")
    site = _object(root["site"], "$.site", required=("power",), optional=("name", "code"))
    power_w = _integer(site["power"], "$.site.power", minimum=1)
    code = _code(site.get("code", "mara"), "$.site.code")
    inventory = _object(root["inventory"], "$.inventory", required=("inference", "miners"), optional=())
    verbatim: dict = {}
    for group, output in (("miners", "hashrate"), ("inference", "tokens")):
        verbatim[group] = {}
        for kind, spec in _object(inventory[group], f"$.inventory.{group}").items():
            where = f"$.inventory.{group}.{kind}"
            spec = _object(spec, where, required=("power", output), optional=())
            verbatim[group][_code(kind, where)] = {
                "power": _integer(spec["power"], f"{where}.power", minimum=1),
                output: _number(spec[output], f"{where}.{output}", minimum=0),
            }
    if not verbatim["miners"] and not verbatim["inference"]:
        raise BacktestInputError("$.inventory: lists no machine type")
    _unique([*verbatim["miners"], *verbatim["inference"]], "$.inventory", "machine type")
    template = mara.problem_for_prices(
        [mara.PriceRow(0.0, 0.0, 0.0)], inventory=verbatim, power_w=power_w, site_code=code
    )
    return World(
        name=name,
        format="mara",
        sites=template.sites,
        hardware=template.hardware,
        inventory_units=np.array(template.inventory_units),
        cooling_types=(None,),
        settings=template.settings,
        locations=(None,),
        mara_inventory=verbatim,
        mara_power_w=power_w,
    )


def _parse_energyarb_world(root: dict, name: str) -> World:
    for key in ("site", "inventory"):
        if key in root:
            raise BacktestInputError(f"$.{key}: belongs to a mara world; an energyarb world has 'sites' and 'hardware'")
    for key in ("hardware", "sites"):
        if key not in root:
            raise BacktestInputError(f"$.{key}: required in an energyarb world")
    hardware = [_hardware(item, f"$.hardware[{h}]") for h, item in enumerate(_array(root["hardware"], "$.hardware", 1))]
    _unique([h.code for h in hardware], "$.hardware", "code")
    given = frozenset(item["code"] for item in root["hardware"] if isinstance(item, dict) and "warmup_minutes" in item)
    hw_index = {h.code: i for i, h in enumerate(hardware)}
    sites, cooling, locations, inventory = [], [], [], []
    for s, item in enumerate(_array(root["sites"], "$.sites", 1)):
        where = f"$.sites[{s}]"
        spec = _object(item, where, required=("code", "power_capacity_kw", "region", "inventory"), optional=_SITE_KEYS)
        sites.append(
            engine.Site(
                code=_code(spec["code"], f"{where}.code"),
                power_capacity_kw=_number(spec["power_capacity_kw"], f"{where}.power_capacity_kw", minimum=0),
                region=_choice(spec["region"], f"{where}.region", engine.REGIONS),
                renewable_share=_number(spec.get("renewable_share", 0), f"{where}.renewable_share", 0, maximum=1),
                grid_carbon_kg_per_mwh=_number(
                    spec.get("grid_carbon_kg_per_mwh", 0), f"{where}.grid_carbon_kg_per_mwh", minimum=0
                ),
                available=_boolean(spec.get("available", True), f"{where}.available"),
            )
        )
        kind = spec.get("cooling_type")
        cooling.append(None if kind is None else _choice(kind, f"{where}.cooling_type", COOLING_TYPES))
        row = np.zeros(len(hardware))
        for code, units in _object(spec["inventory"], f"{where}.inventory").items():
            if code not in hw_index:
                raise BacktestInputError(f"{where}.inventory.{code}: unknown hardware (known: {', '.join(hw_index)})")
            row[hw_index[code]] = _integer(units, f"{where}.inventory.{code}", minimum=0)
        inventory.append(row)
        locations.append(_location(spec, where))
    codes = [s.code for s in sites]
    _unique(codes, "$.sites", "code")
    commitments = [
        _commitment(item, f"$.commitments[{c}]", codes)
        for c, item in enumerate(_array(root.get("commitments", []), "$.commitments"))
    ]
    _unique([str(c.id) for c in commitments], "$.commitments", "id")
    return World(
        name=name,
        format="energyarb",
        sites=tuple(sites),
        hardware=tuple(hardware),
        inventory_units=np.array(inventory),
        cooling_types=tuple(cooling),
        commitments=tuple(commitments),
        settings=_settings(root.get("settings", {})),
        locations=tuple(locations),
        grid=parse_grid(root["grid"], codes) if "grid" in root else None,
        warmups_given=given,
        hardware_halls=_hardware_halls(root["hardware"], hardware),
    )


def _hardware_halls(items: list, hardware: list[engine.HardwareModel]) -> tuple[tuple[str, str], ...]:
    """Each machine's (cooling type, kind) when some machine gives its ``cooling_type`` (the others: ``air``)."""
    given = [item.get("cooling_type") for item in items]
    if all(kind is None for kind in given):
        return ()
    return tuple(
        (_choice(kind or "air", f"$.hardware[{h}].cooling_type", COOLING_TYPES), hw.kind)
        for h, (kind, hw) in enumerate(zip(given, hardware, strict=True))
    )


def _hardware(item: object, where: str) -> engine.HardwareModel:
    spec = _object(
        item,
        where,
        required=("code", "kind", "power_kw"),
        optional=("name", "hashrate_th_s", "tokens_per_s", "warmup_minutes", "cooling_type"),
    )
    kind = _choice(spec["kind"], f"{where}.kind", ("miner", "inference"))
    output, other = ("hashrate_th_s", "tokens_per_s") if kind == "miner" else ("tokens_per_s", "hashrate_th_s")
    if output not in spec:
        raise BacktestInputError(f"{where}.{output}: required for a {kind}")
    if other in spec:
        raise BacktestInputError(f"{where}.{other}: a {kind} has no {other}")
    return engine.HardwareModel(
        code=_code(spec["code"], f"{where}.code"),
        kind=kind,
        power_kw=_number(spec["power_kw"], f"{where}.power_kw", minimum=0, exclusive=True),
        warmup_minutes=_number(spec.get("warmup_minutes", 0), f"{where}.warmup_minutes", minimum=0),
        **{output: _number(spec[output], f"{where}.{output}", minimum=0)},
    )


def _commitment(item: object, where: str, site_codes: list[str]) -> engine.Commitment:
    required = ("id", "tier", "capacity_kw", "price_usd_per_kwh", "penalty_usd_per_kwh")
    spec = _object(item, where, required=required, optional=_COMMITMENT_KEYS)
    if isinstance(spec["id"], bool) or not isinstance(spec["id"], str | int):
        raise BacktestInputError(f"{where}.id: must be a string or an integer, got {spec['id']!r}")
    allowed = spec.get("allowed_sites")
    if allowed is not None:
        values = _array(allowed, f"{where}.allowed_sites", 1)
        allowed = tuple(_string(v, f"{where}.allowed_sites[{i}]") for i, v in enumerate(values))
        unknown = sorted(set(allowed) - set(site_codes))
        if unknown:
            raise BacktestInputError(f"{where}.allowed_sites: unknown site(s) {unknown} (known: {site_codes})")
    n_minus_1 = _boolean(spec.get("n_minus_1", False), f"{where}.n_minus_1")
    min_sites = _integer(spec.get("min_sites", 2 if n_minus_1 else 1), f"{where}.min_sites", minimum=1)
    if n_minus_1 and min_sites < 2:
        raise BacktestInputError(f"{where}.min_sites: an N-1 commitment needs at least 2 sites")
    return engine.Commitment(
        id=spec["id"],
        tier=_string(spec["tier"], f"{where}.tier"),
        capacity_kw=_number(spec["capacity_kw"], f"{where}.capacity_kw", minimum=0),
        price_usd_per_kwh=_number(spec["price_usd_per_kwh"], f"{where}.price_usd_per_kwh", minimum=0),
        penalty_usd_per_kwh=_number(spec["penalty_usd_per_kwh"], f"{where}.penalty_usd_per_kwh", minimum=0),
        n_minus_1=n_minus_1,
        allowed_sites=allowed,
        min_sites=min_sites,
    )


def _settings(value: object) -> engine.Settings:
    knobs = _object(value, "$.settings", optional=_SETTINGS_KEYS)
    ramp = knobs.get("ramp_limit_fraction")
    return engine.Settings(
        switching_cost_usd_per_unit=_number(
            knobs.get("switching_cost_usd_per_unit", 0), "$.settings.switching_cost_usd_per_unit", minimum=0
        ),
        carbon_price_usd_per_t=_number(knobs.get("carbon_price_usd_per_t", 0), "$.settings.carbon_price_usd_per_t", 0),
        integer=True,  # the backtest applies whole units, as the live optimizer does
        mip_rel_gap=_number(knobs.get("mip_rel_gap", 0.001), "$.settings.mip_rel_gap", minimum=0, maximum=1),
        ramp_limit_fraction=None if ramp is None else _number(ramp, "$.settings.ramp_limit_fraction", minimum=0),
        time_limit_s=_number(knobs.get("time_limit_s", 60), "$.settings.time_limit_s", minimum=0, exclusive=True),
    )


def _location(spec: dict, where: str) -> SiteLocation | None:
    present = [k for k in _LOCATION_KEYS if k in spec]
    if not present:
        return None
    missing = [k for k in _LOCATION_KEYS if k not in spec]
    if missing:
        raise BacktestInputError(f"{where}.{missing[0]}: required with {', '.join(present)} (a site's location)")
    return SiteLocation(
        time_zone=_string(spec["time_zone"], f"{where}.time_zone"),
        latitude=_number(spec["latitude"], f"{where}.latitude", minimum=-90, maximum=90),
        climate_zone=_string(spec["climate_zone"], f"{where}.climate_zone"),
        grid_region=_string(spec["grid_region"], f"{where}.grid_region"),
        energy_cost_multiplier=_number(
            spec["energy_cost_multiplier"], f"{where}.energy_cost_multiplier", minimum=0, exclusive=True
        ),
    )


# Validators: each returns the value or raises BacktestInputError naming ``where``.


def _object(value: object, where: str, *, required: Sequence[str] = (), optional: Sequence[str] | None = None) -> dict:
    """``value`` as a JSON object with the ``required`` keys; with ``optional`` given, no other keys either."""
    if not isinstance(value, dict):
        raise BacktestInputError(f"{where}: must be an object, got {_json_type(value)}")
    for key in required:
        if key not in value:
            raise BacktestInputError(f"{where}.{key}: required")
    if optional is not None:
        allowed = (*required, *optional)
        for key in value:
            if key not in allowed:
                raise BacktestInputError(f"{where}.{key}: unknown field (expected one of {', '.join(allowed)})")
    return value


def _array(value: object, where: str, min_items: int = 0) -> list:
    if not isinstance(value, list):
        raise BacktestInputError(f"{where}: must be an array, got {_json_type(value)}")
    if len(value) < min_items:
        raise BacktestInputError(f"{where}: needs at least {min_items} item(s)")
    return value


def _number(
    value: object, where: str, minimum: float | None = None, *, maximum: float | None = None, exclusive: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BacktestInputError(f"{where}: must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (exclusive and value == minimum)):
        raise BacktestInputError(f"{where}: must be {'>' if exclusive else '>='} {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise BacktestInputError(f"{where}: must be <= {maximum:g}, got {value!r}")
    return float(value)


def _integer(value: object, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BacktestInputError(f"{where}: must be an integer >= {minimum}, got {value!r}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BacktestInputError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _code(value: object, where: str) -> str:
    """A site or hardware code: it becomes a CSV cell and a price-file column suffix, so no separators."""
    code = _string(value, where)
    if any(ch in code for ch in ',."\n') or code != code.strip():
        raise BacktestInputError(f"{where}: a code may not contain commas, dots, quotes or edge spaces: {code!r}")
    return code


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise BacktestInputError(f"{where}: must be true or false, got {value!r}")
    return value


def _choice(value: object, where: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise BacktestInputError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _unique(codes: Sequence[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for i, code in enumerate(codes):
        if code in seen:
            raise BacktestInputError(f"{where}[{i}]: duplicate {key} {code!r}")
        seen.add(code)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# Example worlds.


def catalogue_world() -> dict:
    """WORLD.json content of the ten seeded sites (sites/catalogue.py), as optimizer/worlds/ten-sites.json holds it."""
    from sites import catalogue

    hardware = []
    for seed in catalogue.HARDWARE:
        item = {"code": seed.code, "name": seed.name, "kind": seed.kind, "power_kw": float(seed.power_kw_per_unit)}
        item["cooling_type"] = seed.cooling_type
        if seed.kind == "miner":
            item["hashrate_th_s"] = float(cast(str, seed.hashrate_th_per_s))  # every miner has one
        else:
            item["tokens_per_s"] = float(cast(str, seed.tokens_per_s))  # every inference model has one
        hardware.append(item)
    sites = [
        {
            "code": seed.code,
            "name": seed.name,
            "power_capacity_kw": float(seed.power_capacity_kw),
            "region": seed.market_region,
            "renewable_share": float(seed.renewable_share),
            "grid_carbon_kg_per_mwh": float(seed.grid_carbon_kg_per_mwh),
            "cooling_type": seed.cooling_type,
            "time_zone": seed.time_zone,
            "latitude": float(seed.latitude),
            "longitude": float(seed.longitude),
            "climate_zone": seed.climate_zone,
            "grid_region": seed.grid_region,
            "energy_cost_multiplier": float(seed.energy_cost_multiplier),
            "inventory": {
                code: units
                for code, units in zip(catalogue.INVENTORY_COLUMNS, catalogue.INVENTORY[seed.code], strict=True)
                if units
            },
        }
        for seed in catalogue.SITES
    ]
    return {
        "schema": SCHEMA,
        "name": "The ten seeded sites",
        "format": "energyarb",
        "description": "Generated from sites/catalogue.py by optimizer.backtest.catalogue_world(); do not edit.",
        "hardware": hardware,
        "sites": sites,
    }


def hackathon_world() -> World:
    """The hackathon's single site: 1,000,000 W, GET /inventory's five types, no per-type limit."""
    return parse_world(
        {
            "schema": SCHEMA,
            "name": "MARA Hackathon 2025 site",
            "format": "mara",
            "site": {"name": "mara", "power": mara.SITE_POWER_W},
            "inventory": mara.HACKATHON_INVENTORY,
        }
    )
