"""Cooling overhead as a function of outdoor temperature: PUE per cooling type.

Pure numpy (no Django). PUE (power usage effectiveness) = facility power / IT power, so the
cooling and distribution overhead is ``it_kw * (pue - 1)``. Each cooling type keeps a flat
base PUE up to a threshold temperature, above which the overhead grows as a power law that
passes through a calibrated PUE at 40 degC:

    PUE(T) = base                                              for T <= T0
    PUE(T) = base + (pue_at_40c - base) * ((T - T0) / (40 - T0)) ** exponent   for T > T0

The curve is continuous, flat-then-rising and therefore monotone non-decreasing in T. Air
cooling (exponent 2) rises steeply with heat; liquid cooling (hydro, immersion) has a small
span so it stays within 1.03-1.10 over -20..45 degC. Below T0 the PUE does not fall further:
free cooling is already saturated and fans/pumps have a floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

REFERENCE_TEMPERATURE_C = 40.0  # temperature at which ``pue_at_40c`` is calibrated


@dataclass(frozen=True)
class CoolingParameters:
    """Parameters of one cooling type's PUE curve (see module docstring for the formula)."""

    base_pue: float  # PUE at and below the threshold (dimensionless, >= 1)
    threshold_c: float  # T0: outdoor temperature where overhead starts to rise, degC
    pue_at_40c: float  # PUE at 40 degC outdoor temperature
    exponent: float  # curvature of the rise: 2 = quadratic (air), 1.5 = gentler (liquid)

    def __post_init__(self) -> None:
        if not 1.0 <= self.base_pue <= self.pue_at_40c:
            raise ValueError("need 1 <= base_pue <= pue_at_40c")
        if self.threshold_c >= REFERENCE_TEMPERATURE_C:
            raise ValueError("threshold_c must be below 40 degC")
        if self.exponent < 1.0:
            raise ValueError("exponent must be >= 1")


# Keys are the ``sites.choices.CoolingType`` values. Values are typical published ranges:
# air-cooled halls PUE ~1.1-1.3 in cool weather and 1.6-2.0 in 40 degC heat; direct liquid and
# immersion 1.03-1.10 year round.
COOLING_PARAMETERS: dict[str, CoolingParameters] = {
    # Outside air through filters; needs mechanical assist once it is warm.
    "free_air": CoolingParameters(base_pue=1.08, threshold_c=18.0, pue_at_40c=1.75, exponent=2.0),
    # Air with chillers (CRAH + compressors).
    "air": CoolingParameters(base_pue=1.20, threshold_c=20.0, pue_at_40c=1.85, exponent=2.0),
    # Chillers with economizers and hot-aisle containment.
    "advanced_ac": CoolingParameters(base_pue=1.25, threshold_c=22.0, pue_at_40c=1.55, exponent=1.5),
    # CRAC units with tight set points (always some compressor load).
    "precision_ac": CoolingParameters(base_pue=1.35, threshold_c=22.0, pue_at_40c=1.65, exponent=1.5),
    # Adiabatic/evaporative: effective in heat until the wet-bulb limit.
    "evaporative": CoolingParameters(base_pue=1.12, threshold_c=24.0, pue_at_40c=1.40, exponent=2.0),
    # Chilled water from a district network: buffered against outdoor swings.
    "district": CoolingParameters(base_pue=1.15, threshold_c=25.0, pue_at_40c=1.30, exponent=1.5),
    # Water-cooled hydro miners: dry coolers, pumps only.
    "hydro": CoolingParameters(base_pue=1.04, threshold_c=20.0, pue_at_40c=1.08, exponent=1.5),
    # Two-phase/single-phase immersion tanks.
    "immersion": CoolingParameters(base_pue=1.03, threshold_c=25.0, pue_at_40c=1.06, exponent=1.5),
    # A hall of air-cooled ASIC miners: outside air pushed through by the miners' own fans and exhaust fans, no
    # chillers (miners run to 40 degC+ inlet); only fans and distribution losses: 1.03-1.10.
    "mining_air": CoolingParameters(base_pue=1.03, threshold_c=25.0, pue_at_40c=1.10, exponent=1.5),
}

# Cooling types a site's air-cooled IT hall can have (the others are liquid loops or mining halls).
AIR_HALL_TYPES = ("free_air", "air", "advanced_ac", "precision_ac", "evaporative", "district")
LIQUID_TYPES = ("hydro", "immersion")

COOLING_TYPES: tuple[str, ...] = tuple(COOLING_PARAMETERS)


def cooling_parameters(cooling_type: str) -> CoolingParameters:
    """The PUE curve parameters of ``cooling_type``; ValueError naming the valid types if unknown."""
    try:
        return COOLING_PARAMETERS[cooling_type]
    except KeyError:
        raise ValueError(f"unknown cooling type {cooling_type!r}; expected one of {', '.join(COOLING_TYPES)}") from None


@overload
def pue(cooling_type: str, temperature_c: float) -> float: ...
@overload
def pue(cooling_type: str, temperature_c: np.ndarray) -> np.ndarray: ...
def pue(cooling_type: str, temperature_c: float | np.ndarray) -> float | np.ndarray:
    """PUE (dimensionless, >= 1) of ``cooling_type`` at outdoor ``temperature_c`` (degC).

    Accepts a scalar (returns a float) or any array-like (returns an ndarray of the same shape).
    NaN temperatures give NaN.
    """
    params = cooling_parameters(cooling_type)
    temperature = np.asarray(temperature_c, dtype=float)
    excess = np.maximum(temperature - params.threshold_c, 0.0)  # degC above threshold
    relative = excess / (REFERENCE_TEMPERATURE_C - params.threshold_c)
    result = params.base_pue + (params.pue_at_40c - params.base_pue) * relative**params.exponent
    result = np.where(np.isnan(temperature), np.nan, result)
    return float(result) if result.ndim == 0 else result


def hall_cooling(site_cooling_type: str, hardware_cooling_type: str, hardware_kind: str) -> str:
    """The cooling of the hall a machine runs in (a site holds several halls).

    - liquid-cooled hardware (hydro, immersion) runs in its own loop: its own cooling type;
    - air-cooled miners run in a mining hall without chillers: ``mining_air``;
    - air-cooled inference nodes run in the site's air hall (its cooling type) or, at a site whose own cooling is a
      liquid loop (hydro, immersion), in a chilled hall: ``air``.
    """
    if hardware_cooling_type in LIQUID_TYPES:
        return hardware_cooling_type
    if hardware_kind == "miner":
        return "mining_air"
    return site_cooling_type if site_cooling_type in AIR_HALL_TYPES else "air"


def hall_pue(
    site_cooling_type: str, hardware_cooling_type: str, hardware_kind: str, temperature_c: float | np.ndarray
) -> float | np.ndarray:
    """PUE of the hall a machine runs in at outdoor ``temperature_c`` (see ``hall_cooling``)."""
    return pue(hall_cooling(site_cooling_type, hardware_cooling_type, hardware_kind), temperature_c)


def hall_pue_grid(
    site_cooling_types: Sequence[str | None],
    machines: Sequence[tuple[str, str]],
    temperature_c: np.ndarray,
) -> np.ndarray:
    """``[S, H, N]`` PUE of each machine's hall at each site and step, from temperatures ``[S, N]`` (degC).

    ``machines`` lists each hardware model's ``(cooling_type, kind)``; a site without a cooling type runs at PUE 1.
    Each distinct hall of a site is computed once (a site has at most a few).
    """
    temperature = np.asarray(temperature_c, dtype=float)
    result = np.ones((len(site_cooling_types), len(machines), temperature.shape[-1]))
    for s, site_cooling in enumerate(site_cooling_types):
        if site_cooling is None:
            continue
        curves: dict[str, np.ndarray] = {}
        for h, (machine_cooling, kind) in enumerate(machines):
            hall = hall_cooling(site_cooling, machine_cooling, kind)
            if hall not in curves:
                curves[hall] = np.asarray(pue(hall, temperature[s]), dtype=float)
            result[s, h] = curves[hall]
    return result


def cooling_overhead_kw(it_kw: float | np.ndarray, pue: float | np.ndarray) -> float | np.ndarray:
    """Facility power beyond the IT load, kW: ``it_kw * (pue - 1)``.

    ``it_kw`` >= 0 and ``pue`` >= 1 (scalars or broadcastable arrays).
    """
    it = np.asarray(it_kw, dtype=float)
    ratio = np.asarray(pue, dtype=float)
    if np.any(it < 0):
        raise ValueError("it_kw must be >= 0")
    if np.any(ratio < 1.0):
        raise ValueError("pue must be >= 1")
    overhead = it * (ratio - 1.0)
    return float(overhead) if overhead.ndim == 0 else overhead


__all__ = [
    "COOLING_PARAMETERS",
    "COOLING_TYPES",
    "REFERENCE_TEMPERATURE_C",
    "CoolingParameters",
    "cooling_overhead_kw",
    "cooling_parameters",
    "hall_cooling",
    "hall_pue",
    "hall_pue_grid",
    "pue",
]
