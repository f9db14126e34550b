"""Day-ahead markets in the replay: prices cleared the day before are known, not forecast.

A site whose grid region clears day-ahead (``sites.simulation.GRID_REGIONS[...].day_ahead``: EPEX DE-LU, Nord Pool
NO1, JEPX Tokyo) knows its energy prices up to the end of the next local day once that day's auction has closed
(``day_ahead_known_until``); the replay's outlook takes the realized prices for the periods that end by then, as an
operator bidding into those markets would plan. Real-time markets keep the forecast.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sites.simulation import GRID_REGIONS
from sites.simulation.prices import day_ahead_known_until

from .history import History
from .worlds import World


def day_ahead_sites(world: World) -> list[tuple[int, str]]:
    """(site index, time zone) of the world's sites on day-ahead markets (simulated worlds with locations)."""
    found = []
    for index, location in enumerate(world.locations or ()):
        if location is None:
            continue
        region = GRID_REGIONS.get(location.grid_region)
        if region is not None and region.day_ahead:
            found.append((index, location.time_zone))
    return found


def with_day_ahead_known(world: World, history: History, t: int, bounds: np.ndarray, outlook):
    """The outlook made at interval `t`, with day-ahead sites' energy prices known where they have cleared.

    A period [t + bounds[k], t + bounds[k + 1]) ending by the site's known-until moment (and inside the history)
    takes the mean realized price over its intervals.
    """
    sites = day_ahead_sites(world)
    if not sites:
        return outlook
    starts, total = history.interval_starts, len(history)
    prices = np.array(outlook.energy_price_usd_per_mwh, dtype=float, copy=True)
    realized = history.energy_price_usd_per_mwh
    for s, time_zone in sites:
        known_until = day_ahead_known_until(starts[t], time_zone)
        for k in range(len(bounds) - 1):
            lo, hi = t + int(bounds[k]), t + int(bounds[k + 1])
            if hi > total or starts[hi - 1] >= known_until:
                break
            prices[s, k] = realized[s, lo:hi].mean()
    return replace(outlook, energy_price_usd_per_mwh=prices)
