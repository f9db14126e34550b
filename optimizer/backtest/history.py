"""Realized price histories: read from a price file, simulated, or (database.py) loaded from stored rows.

A ``History`` holds one value per 5-minute interval, in the engine's units (USD/MWh, USD per PH/s per day, USD per
million tokens, Mtok/h), plus the hackathon API's own rows for the ``mara`` format so that format can be accounted
exactly as the API did. Price-file columns are documented in docs/backtest.md; errors name the line and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from sites.simulation import hall_pue_grid, pue

from .. import engine
from ..engine import mara
from .worlds import BacktestInputError, World

STEP_MINUTES = 5
INTERVAL_HOURS = STEP_MINUTES / 60
DEFAULT_TEMPERATURE_C = 20.0  # PUE of a site whose temperature is unknown (as optimizer.inputs does)
MARA_COLUMNS = ("timestamp", "energy_price", "hash_price", "token_price")
MARKET_COLUMNS = ("interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok")
# Per-site and per-region columns of an energyarb price file: "<prefix>.<site code or region>".
ENERGY_PREFIX, TEMPERATURE_PREFIX, DEMAND_PREFIX = "energy_usd_per_mwh", "temperature_c", "demand_mtok_per_h"


@dataclass(frozen=True, eq=False)
class History:
    """Realized values per 5-minute interval: what actually happened, in engine units."""

    interval_starts: tuple[datetime, ...]  # [N], aware UTC, consecutive 5-minute steps
    energy_price_usd_per_mwh: np.ndarray  # [S, N]
    pue: np.ndarray  # [S, N]
    hashprice_usd_per_ph_day: np.ndarray  # [N]
    inference_price_usd_per_mtok: np.ndarray  # [N]
    inference_demand_mtok_per_h: Mapping[str, np.ndarray] = field(
        default_factory=dict
    )  # region -> [N]; absent = no limit
    mara_rows: tuple[mara.PriceRow, ...] | None = None  # the API's own rows (mara format)
    temperature_c: np.ndarray | None = None  # [S, N], NaN where unknown
    # [S, H, N] each machine's hall PUE over its site's (``realized_hall_factor``); None = every machine at ``pue``
    hall_factor: np.ndarray | None = None

    @property
    def hall_pue(self) -> np.ndarray | None:
        """``[S, H, N]`` PUE of each machine's hall (None without halls)."""
        return None if self.hall_factor is None else self.pue[:, None, :] * self.hall_factor

    def __len__(self) -> int:
        return len(self.interval_starts)

    def window(self, start: int, stop: int) -> History:
        """Intervals ``[start, stop)`` (numpy views, no copies: the replay slices it once per interval)."""
        return History(
            interval_starts=self.interval_starts[start:stop],
            energy_price_usd_per_mwh=self.energy_price_usd_per_mwh[:, start:stop],
            pue=self.pue[:, start:stop],
            hashprice_usd_per_ph_day=self.hashprice_usd_per_ph_day[start:stop],
            inference_price_usd_per_mtok=self.inference_price_usd_per_mtok[start:stop],
            inference_demand_mtok_per_h={r: v[start:stop] for r, v in self.inference_demand_mtok_per_h.items()},
            mara_rows=None if self.mara_rows is None else self.mara_rows[start:stop],
            temperature_c=None if self.temperature_c is None else self.temperature_c[:, start:stop],
            hall_factor=None if self.hall_factor is None else self.hall_factor[:, :, start:stop],
        )

    def between(self, start: datetime | None, end: datetime | None) -> History:
        """The intervals starting in ``[start, end)`` (either bound may be None)."""
        starts = self.interval_starts
        lo = 0 if start is None else next((i for i, t in enumerate(starts) if t >= to_utc(start)), len(self))
        hi = len(self) if end is None else next((i for i, t in enumerate(starts) if t >= to_utc(end)), len(self))
        return self.window(lo, max(lo, hi))


def to_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC (the event trace's timestamps are naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_steps(starts: Sequence[datetime], labels: Sequence[str]) -> None:
    """Consecutive 5-minute intervals, oldest first, or an error naming the first row that breaks the rule."""
    step = timedelta(minutes=STEP_MINUTES)
    for i in range(1, len(starts)):
        if starts[i] - starts[i - 1] != step:
            raise BacktestInputError(
                f"{labels[i]}: intervals must be consecutive {STEP_MINUTES}-minute steps "
                f"({starts[i - 1].isoformat()} then {starts[i].isoformat()})"
            )


def realized_pue(world: World, temperature_c: np.ndarray) -> np.ndarray:
    """``[S, N]`` PUE from temperatures (NaN = unknown: 20 degC); a site without a cooling type runs at PUE 1."""
    result = np.ones(temperature_c.shape)
    for s, cooling in enumerate(world.cooling_types):
        if cooling is not None:
            known = np.where(np.isnan(temperature_c[s]), DEFAULT_TEMPERATURE_C, temperature_c[s])
            result[s] = pue(cooling, known)
    return result


def realized_hall_factor(world: World, temperature_c: np.ndarray) -> np.ndarray | None:
    """``[S, H, N]`` each machine's hall PUE (``sites.simulation.hall_pue_grid``, NaN = 20 degC) over its site's
    PUE at the same temperature, or None for a world without halls. A forecast holds the last one; a hotter or
    cooler site PUE scales its halls alike."""
    if not world.hardware_halls:
        return None
    known = np.where(np.isnan(temperature_c), DEFAULT_TEMPERATURE_C, temperature_c)
    halls = hall_pue_grid(world.cooling_types, world.hardware_halls, known)
    factor: np.ndarray = halls / realized_pue(world, temperature_c)[:, None, :]
    return factor


def mara_history(world: World, rows: Sequence[mara.PriceRow], starts: Sequence[datetime]) -> History:
    """The API's price rows in engine units, through ``mara.problem_for_prices`` (the one place with its factors)."""
    inventory, power_w = world.mara_api
    problem = mara.problem_for_prices(rows, inventory=inventory, power_w=power_w, site_code=world.sites[0].code)
    return History(
        interval_starts=tuple(starts),
        energy_price_usd_per_mwh=np.array(problem.energy_price_usd_per_mwh),
        pue=np.ones((1, len(rows))),
        hashprice_usd_per_ph_day=np.array(problem.market.hashprice_usd_per_ph_day),
        inference_price_usd_per_mtok=np.array(problem.market.inference_price_usd_per_mtok),
        mara_rows=tuple(rows),
    )


# Price files.


def read_prices(path: str | Path, world: World) -> History:
    """Realized prices from a CSV in the world's format; errors name the file, line and column."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or ())
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise BacktestInputError(f"price file not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BacktestInputError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise BacktestInputError(f"{path}: no price rows")
    try:
        reader_for = _read_mara if world.format == "mara" else _read_energyarb
        return reader_for(world, columns, rows)
    except BacktestInputError as exc:
        raise BacktestInputError(f"{path}: {exc}") from None


def _cell(row: dict, line: int, column: str, *, minimum: float | None = None) -> float:
    raw = row.get(column)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BacktestInputError(f"line {line}, column {column}: not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise BacktestInputError(f"line {line}, column {column}: not a finite number: {raw!r}")
    if minimum is not None and value < minimum:
        raise BacktestInputError(f"line {line}, column {column}: must be >= {minimum:g}, got {raw!r}")
    return value


def _sorted_rows(rows: list[tuple[int, dict]], column: str) -> list[tuple[datetime, int, dict]]:
    """Rows with their parsed interval start, oldest first (a file may list newest first, as GET /prices does)."""
    parsed = []
    for line, row in rows:
        raw = (row.get(column) or "").strip()
        try:
            moment = to_utc(datetime.fromisoformat(raw.replace("Z", "+00:00")))
        except ValueError:
            raise BacktestInputError(f"line {line}, column {column}: not an ISO 8601 time: {raw!r}") from None
        parsed.append((moment, line, row))
    parsed.sort(key=lambda item: item[0])
    check_steps([p[0] for p in parsed], [f"line {p[1]}" for p in parsed])
    return parsed


def _read_mara(world: World, columns: list[str], rows: list[tuple[int, dict]]) -> History:
    missing = [c for c in MARA_COLUMNS if c not in columns]
    if missing:
        raise BacktestInputError(f"missing column(s) {missing}; a mara price file has {', '.join(MARA_COLUMNS)}")
    parsed = _sorted_rows(rows, "timestamp")
    prices = [
        mara.PriceRow(
            _cell(row, line, "energy_price"),
            _cell(row, line, "hash_price", minimum=0),
            _cell(row, line, "token_price", minimum=0),
            iso(moment),
        )
        for moment, line, row in parsed
    ]
    return mara_history(world, prices, [p[0] for p in parsed])


def _read_energyarb(world: World, columns: list[str], rows: list[tuple[int, dict]]) -> History:
    codes = world.site_codes
    required = {*MARKET_COLUMNS, *(f"{ENERGY_PREFIX}.{c}" for c in codes)}
    optional = {*(f"{TEMPERATURE_PREFIX}.{c}" for c in codes), *(f"{DEMAND_PREFIX}.{r}" for r in engine.REGIONS)}
    missing = sorted(required - set(columns))
    if missing:
        raise BacktestInputError(f"missing column(s) {missing} (one energy price column per site of the world)")
    unknown = sorted(set(columns) - required - optional)
    if unknown:
        raise BacktestInputError(f"unknown column(s) {unknown}; the columns are listed in docs/backtest.md")
    parsed = _sorted_rows(rows, "interval_start")

    def series(column: str, minimum: float | None = None) -> np.ndarray:
        return np.array([_cell(row, line, column, minimum=minimum) for _, line, row in parsed])

    temperature = np.full((len(codes), len(parsed)), np.nan)
    for s, code in enumerate(codes):
        if f"{TEMPERATURE_PREFIX}.{code}" in columns:
            temperature[s] = series(f"{TEMPERATURE_PREFIX}.{code}")
    return History(
        interval_starts=tuple(p[0] for p in parsed),
        energy_price_usd_per_mwh=np.array([series(f"{ENERGY_PREFIX}.{c}") for c in codes]),
        pue=realized_pue(world, temperature),
        hashprice_usd_per_ph_day=series("hashprice_usd_per_ph_day", 0),
        inference_price_usd_per_mtok=series("inference_price_usd_per_mtok", 0),
        inference_demand_mtok_per_h={
            r: series(f"{DEMAND_PREFIX}.{r}", 0) for r in engine.REGIONS if f"{DEMAND_PREFIX}.{r}" in columns
        },
        temperature_c=temperature,
        hall_factor=realized_hall_factor(world, temperature),
    )


def write_prices_csv(history: History, world: World, path: str | Path) -> None:
    """``history`` as a price file of the world's format: ``read_prices`` reads back the same values."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if world.format == "mara":
            writer.writerow(MARA_COLUMNS)
            for moment, row in zip(history.interval_starts, history.mara_rows or (), strict=True):
                writer.writerow([iso(moment), repr(row.energy_price), repr(row.hash_price), repr(row.token_price)])
            return
        codes, temperature = world.site_codes, history.temperature_c
        regions = list(history.inference_demand_mtok_per_h)
        header = [*MARKET_COLUMNS, *(f"{ENERGY_PREFIX}.{c}" for c in codes)]
        if temperature is not None:
            header += [f"{TEMPERATURE_PREFIX}.{c}" for c in codes]
        header += [f"{DEMAND_PREFIX}.{r}" for r in regions]
        writer.writerow(header)
        for t, moment in enumerate(history.interval_starts):
            values = [history.hashprice_usd_per_ph_day[t], history.inference_price_usd_per_mtok[t]]
            values += list(history.energy_price_usd_per_mwh[:, t])
            if temperature is not None:
                values += list(temperature[:, t])
            values += [history.inference_demand_mtok_per_h[r][t] for r in regions]
            writer.writerow([iso(moment), *(repr(float(v)) for v in values)])


# Simulated prices.


def simulate_history(
    world: World,
    *,
    start: datetime,
    periods: int,
    seed: int = 2025,
    spike_cap_usd_per_mwh: float = 5000.0,
    hashprice_level_usd_per_ph_day: float = 50.0,
) -> History:
    """Simulated energy prices, market prices, temperatures and regional demand for an energyarb world (no DB).

    The simulators and site profiles of the periodic refresh (``sites.services.simulate_market_window``, defaults
    = the settings' defaults), so for the seeded sites this is what the refresh would have stored, before the
    database rounds it to cents. Demand is ``simulate_inference_demand``, as optimizer.inputs uses it.
    """
    from sites.simulation import (
        derive_climate_profile,
        derive_site_price_profile,
        floor_to_step,
        simulate_fleet_prices,
        simulate_hashprice,
        simulate_inference_demand,
        simulate_inference_price,
        simulate_temperatures,
    )

    if world.format != "energyarb":
        raise BacktestInputError("prices can be simulated for energyarb worlds only")
    if periods < 1:
        raise BacktestInputError("the simulated window has no 5-minute interval")
    start = floor_to_step(to_utc(start), STEP_MINUTES)
    missing = [site.code for site, loc in zip(world.sites, world.locations, strict=True) if loc is None]
    if missing:
        raise BacktestInputError(
            "simulated prices need each site's time_zone, latitude, climate_zone, grid_region and "
            f"energy_cost_multiplier; missing for {missing}"
        )
    pairs = [(site, loc) for site, loc in zip(world.sites, world.locations, strict=True) if loc is not None]  # all
    profiles = [
        derive_site_price_profile(
            code=site.code,
            time_zone=loc.time_zone,
            latitude=loc.latitude,
            renewable_share=site.renewable_share,
            energy_cost_multiplier=loc.energy_cost_multiplier,
            grid_region=loc.grid_region,
        )
        for site, loc in pairs
    ]
    temperature = np.vstack(
        [
            simulate_temperatures(
                derive_climate_profile(latitude=loc.latitude, climate_zone=loc.climate_zone, time_zone=loc.time_zone),
                start,
                periods,
                seed=seed,
                stream=site.code,
            )
            for site, loc in pairs
        ]
    )
    return History(
        interval_starts=tuple(start + timedelta(minutes=STEP_MINUTES * i) for i in range(periods)),
        energy_price_usd_per_mwh=simulate_fleet_prices(
            profiles, start, periods, seed=seed, spike_cap_usd_per_mwh=spike_cap_usd_per_mwh
        ),
        pue=realized_pue(world, temperature),
        hashprice_usd_per_ph_day=simulate_hashprice(
            start, periods, seed=seed, level_usd_per_ph_day=hashprice_level_usd_per_ph_day
        ),
        inference_price_usd_per_mtok=simulate_inference_price(start, periods, seed=seed),
        inference_demand_mtok_per_h=simulate_inference_demand(start, periods, seed=seed),
        temperature_c=temperature,
        hall_factor=realized_hall_factor(world, temperature),
    )
