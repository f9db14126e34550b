"""The database as a backtest world and history: seeded sites, stored prices, weather and contracts.

Imports Django lazily, so the rest of the package stays usable without settings (bench, pure tests).
Query cost: sites with inventories in two queries, one per site for energy prices and one for weather, one for
market prices, and optimizer.inputs' three for the contracts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from .. import engine
from ..engine import mara
from .history import (
    STEP_MINUTES,
    History,
    check_steps,
    iso,
    mara_history,
    realized_hall_factor,
    realized_pue,
    to_utc,
)
from .worlds import BacktestInputError, SiteLocation, World

LOOKBACK = timedelta(days=1)  # the value in force at the window's start may have been stored before it


def world_from_database(*, at: datetime) -> World:
    """The sites (by code), hardware, available units, and the contracts active at ``at`` as optimizer.inputs
    builds them; switching cost, carbon price and time limit from settings.ENERGYARB."""
    from django.conf import settings
    from django.db.models import Prefetch

    from sites.models import Site, SiteInventory

    from ..inputs import commitments_at, engine_hardware, engine_site

    inventories = SiteInventory.objects.select_related("hardware_model").order_by("hardware_model__code")
    sites = tuple(Site.objects.prefetch_related(Prefetch("inventories", queryset=inventories)).order_by("code"))
    if not sites:
        raise BacktestInputError("the database has no sites: run `manage.py seed_sites` first")
    rows = {inv.hardware_model.code: inv.hardware_model for site in sites for inv in site.inventories.all()}
    if not rows:
        raise BacktestInputError("the database's sites have no hardware inventory")
    hardware = tuple(rows[code] for code in sorted(rows))
    index = {hw.code: h for h, hw in enumerate(hardware)}
    inventory = np.zeros((len(sites), len(hardware)))
    for s, site in enumerate(sites):
        for inv in site.inventories.all():
            inventory[s, index[inv.hardware_model.code]] = inv.units_available
    _, commitments = commitments_at(at=to_utc(at), site_codes={site.code for site in sites if site.is_available})
    knobs = settings.ENERGYARB
    return World(
        name="database sites",
        format="energyarb",
        sites=tuple(engine_site(site) for site in sites),
        hardware=tuple(engine_hardware(hw) for hw in hardware),
        inventory_units=inventory,
        cooling_types=tuple(site.cooling_type for site in sites),
        hardware_halls=tuple((hw.cooling_type, hw.kind) for hw in hardware),  # as the live plan's halls
        commitments=commitments,
        settings=engine.Settings(
            switching_cost_usd_per_unit=knobs["SWITCHING_COST_USD_PER_UNIT"],
            carbon_price_usd_per_t=knobs["CARBON_PRICE_USD_PER_T"],
            integer=True,
            time_limit_s=knobs["SOLVER_TIME_LIMIT_S"],
        ),
        locations=tuple(
            SiteLocation(
                time_zone=site.time_zone,
                latitude=float(site.latitude),
                climate_zone=site.climate_zone,
                grid_region=site.grid_region,
                energy_cost_multiplier=float(site.energy_cost_multiplier),
            )
            for site in sites
        ),
    )


def interval_grid(start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The 5-minute interval starts in ``[start, end)``."""
    from sites.simulation import floor_to_step

    first = floor_to_step(to_utc(start), STEP_MINUTES)
    if first < to_utc(start):
        first += timedelta(minutes=STEP_MINUTES)
    count = max(0, math.ceil((to_utc(end) - first) / timedelta(minutes=STEP_MINUTES)))
    return tuple(first + timedelta(minutes=STEP_MINUTES * i) for i in range(count))


def _hold(grid: Sequence[datetime], points: Sequence[tuple[datetime, float]]) -> tuple[np.ndarray, int, int]:
    """Values on ``grid`` from time-ordered observations: the latest at or before each interval (NaN before any).

    Returns the values, how many intervals had no observation of their own, and how many had none at all.
    """
    times = np.array([p[0].timestamp() for p in points], dtype=float)
    values = np.array([p[1] for p in points], dtype=float)
    at = np.array([g.timestamp() for g in grid], dtype=float)
    position = np.searchsorted(times, at, side="right") - 1
    found = position >= 0
    result = np.full(len(grid), np.nan)
    result[found] = values[position[found]]
    own = np.zeros(len(grid), dtype=bool)
    own[found] = times[position[found]] == at[found]
    return result, int((~own).sum()), int((~found).sum())


def history_from_database(world: World, *, start: datetime, end: datetime) -> tuple[History, list[str]]:
    """Stored energy prices, market prices and weather of ``[start, end)`` on the 5-minute grid, with notes.

    An interval without a stored price holds the latest earlier one (what the live optimizer would have acted on,
    looking back at most a day); the notes count them. An interval with no earlier price at all is an error.
    Regional demand follows the simulator's pattern, as optimizer.inputs uses it.
    """
    from django.conf import settings

    from sites.models import EnergyPrice, MarketPrice, WeatherReading
    from sites.simulation import simulate_inference_demand

    grid = interval_grid(start, end)
    if not grid:
        raise BacktestInputError("--start/--end contain no 5-minute interval")
    since, stop = grid[0] - LOOKBACK, grid[-1] + timedelta(minutes=STEP_MINUTES)
    notes: list[str] = []
    energy = np.zeros((len(world.sites), len(grid)))
    temperature = np.full((len(world.sites), len(grid)), np.nan)
    for s, code in enumerate(world.site_codes):
        stored = EnergyPrice.objects.filter(site__code=code, interval_start__gte=since, interval_start__lt=stop)
        points = [
            (t, float(p))
            for t, p in stored.order_by("interval_start").values_list("interval_start", "price_usd_per_mwh")
        ]
        energy[s], held, none = _hold(grid, points)
        if none:
            raise BacktestInputError(f"no stored energy price for {code} at or before {iso(grid[0])}")
        if held:
            notes.append(f"{code}: {held} interval(s) without a stored energy price held the previous one")
        readings = WeatherReading.objects.filter(site__code=code, observed_at__gte=since, observed_at__lt=stop)
        points = [
            (t, float(v)) for t, v in readings.order_by("observed_at").values_list("observed_at", "temperature_c")
        ]
        temperature[s], _, _ = _hold(grid, points)
    market = list(
        MarketPrice.objects.filter(interval_start__gte=since, interval_start__lt=stop)
        .order_by("interval_start")
        .values_list("interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok")
    )
    hashprice, held, none = _hold(grid, [(t, float(h)) for t, h, _ in market])
    token_price, _, _ = _hold(grid, [(t, float(p)) for t, _, p in market])
    if none:
        raise BacktestInputError(f"no stored market price at or before {iso(grid[0])}")
    if held:
        notes.append(f"market: {held} interval(s) without a stored market price held the previous one")
    unknown = int(np.isnan(temperature).any(axis=1).sum())
    if unknown:
        notes.append(f"{unknown} site(s) lack weather for part of the window: PUE at 20 degC there")
    history = History(
        interval_starts=grid,
        energy_price_usd_per_mwh=energy,
        pue=realized_pue(world, temperature),
        hashprice_usd_per_ph_day=hashprice,
        inference_price_usd_per_mtok=token_price,
        inference_demand_mtok_per_h=simulate_inference_demand(
            grid[0], len(grid), seed=settings.ENERGYARB["SIMULATOR_SEED"]
        ),
        temperature_c=temperature,
        hall_factor=realized_hall_factor(world, temperature),
    )
    return history, notes


def hackathon_history_from_database(world: World, *, start: datetime, end: datetime) -> History:
    """Stored hackathon API prices (``HackathonPrice``, from import_prices) of ``[start, end)``, consecutive."""
    from sites.models import HackathonPrice

    rows = list(
        HackathonPrice.objects.filter(interval_start__gte=to_utc(start), interval_start__lt=to_utc(end)).order_by(
            "interval_start"
        )
    )
    if not rows:
        raise BacktestInputError("no stored hackathon prices in --start/--end (import them with import_prices)")
    starts = [to_utc(row.interval_start) for row in rows]
    check_steps(starts, [f"stored hackathon price at {iso(t)}" for t in starts])
    prices = [
        mara.PriceRow(float(r.energy_price), float(r.hash_price), float(r.token_price), iso(t))
        for r, t in zip(rows, starts, strict=True)
    ]
    return mara_history(world, prices, starts)
