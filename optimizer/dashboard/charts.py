"""The time-series charts: energy prices per site and PUE against temperature."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np

from core.db import driver_rows
from sites.choices import CoolingType
from sites.simulation import pue

from .formatting import _iso
from .reads import _price_chart_shape, _temperature_chart_shape

PRICE_HISTORY_HOURS = 24
PUE_CURVE_TEMPERATURES_C = tuple(range(-10, 42, 2))


def _chart_rows(site_ids: list[int], now: datetime) -> tuple[list[tuple], list[tuple]]:
    """(site id, epoch seconds, value) rows of the last PRICE_HISTORY_HOURS for the two time-series charts.

    Energy prices (USD/MWh) every PRICE_CHART_STEP_MINUTES and hourly temperatures (°C): each an index range scan
    per site (site, time), ~1,000 and ~250 rows for ten sites. Two queries, not one UNION ALL: PostgreSQL plans
    the union as a parallel append, and starting its workers costs ten times the scans.
    """
    start, end = now - timedelta(hours=PRICE_HISTORY_HOURS), now + timedelta(seconds=1)
    prices = driver_rows(_price_chart_shape().for_window(start, end).filter(site_id__in=site_ids))
    temperatures = driver_rows(_temperature_chart_shape().for_window(start, end).filter(site_id__in=site_ids))
    return prices, temperatures


def _price_history(site_rows: list[dict], rows: list[tuple[int, float, float]]) -> dict:
    """Energy price per site (USD/MWh) every PRICE_CHART_STEP_MINUTES on a shared time axis; gaps are null."""
    times: set[int] = set()
    per_site: dict[int, dict[int, float]] = defaultdict(dict)
    for site_id, epoch, price in rows:
        moment = round(epoch)
        times.add(moment)
        per_site[site_id][moment] = round(price, 2)
    axis = sorted(times)
    return {
        "t": [_iso(datetime.fromtimestamp(moment, UTC)) for moment in axis],
        "series": [
            {"site": row["code"], "name": row["name"], "values": [per_site[row["id"]].get(moment) for moment in axis]}
            for row in site_rows
        ],
    }


@functools.cache
def _pue_curve(cooling_type: str) -> list[list[float]]:
    """[temperature °C, PUE] over PUE_CURVE_TEMPERATURES_C (a pure function of the cooling type)."""
    grid = np.array(PUE_CURVE_TEMPERATURES_C, dtype=float)
    return [[t, round(p, 3)] for t, p in zip(PUE_CURVE_TEMPERATURES_C, pue(cooling_type, grid).tolist(), strict=True)]


def _pue_temperature(site_rows: list[dict], rows: list[tuple[int, float, float]]) -> dict:
    """PUE curves of the fleet's cooling types, every site's hourly readings of the last day, and each site now."""
    readings: dict[int, list[float]] = defaultdict(list)
    for site_id, _, temperature in rows:
        readings[site_id].append(temperature)
    history: list[list[float]] = []
    for row in site_rows:
        temperatures = np.array(readings.get(row["id"], []), dtype=float)
        if temperatures.size:
            values = np.atleast_1d(pue(row["cooling_type"], temperatures))
            history.extend(
                [round(t, 1), round(p, 3)] for t, p in zip(temperatures.tolist(), values.tolist(), strict=True)
            )
    return {
        "curves": [
            {"cooling_type": code, "label": CoolingType(code).label, "points": [*map(list, _pue_curve(code))]}
            for code in sorted({row["cooling_type"] for row in site_rows})
        ],
        "history": history,
        "sites": [
            {"site": row["code"], "name": row["name"], "temperature_c": row["temperature_c"], "pue": row["pue"]}
            for row in site_rows
            if row["temperature_c"] is not None
        ],
    }
