"""PUE by hall: a site holds several halls (fan-cooled mining, chilled GPU rooms, immersion tanks), each with its
own cooling overhead, so one kW of IT load draws a different facility kW depending on the machine.

``Problem.hall_pue`` ([S, H, T], facility kW per IT kW of hardware h at site s) is optional: without it every
machine at a site runs at the site's ``pue`` ([S, T]). Every place of the engine that turns IT kW into facility
kW (energy cost, the power row, rounding, the heuristics, unit limits, grid caps, the ledger) reads it through
the two functions below, so the formulation stays the one model.

The power row keeps its form ``sum_h kW'_{s,h,t} x <= capacity_s / PUE_{s,t}`` in site-IT kW, where
``kW' = kW_h x hall PUE / site PUE`` is a unit's draw expressed in the site's IT kW. Without halls (or with halls
that all run at the site's PUE) ``kW' = kW_h``: the matrix is the same as before and warm starts are unchanged.
Pure numpy, no Django.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .problem import Problem


def unit_pue(problem: Problem) -> np.ndarray:
    """``[S, H, T]`` facility kW per IT kW of each machine's hall (the site's PUE where no hall is given)."""
    if problem.hall_pue is not None:
        return problem.hall_pue
    n_sites, n_hw, n_t = problem.shape
    return np.broadcast_to(problem.pue[:, None, :], (n_sites, n_hw, n_t))


def has_halls(problem: Problem) -> bool:
    """True when some machine's hall PUE differs from its site's (the power row's coefficients change)."""
    return problem.hall_pue is not None and not np.allclose(problem.hall_pue, problem.pue[:, None, :], rtol=0, atol=0)


def site_it_kw_per_unit(problem: Problem) -> np.ndarray:
    """``[S, H, T]`` one running unit's draw in the site's IT kW: ``kW_h x hall PUE / site PUE`` (``kW_h`` without
    halls). Compared with ``capacity / site PUE`` it says whether the site's grid connection carries the units."""
    kw = np.array([h.power_kw for h in problem.hardware])
    if not has_halls(problem):
        n_sites, n_hw, n_t = problem.shape
        return np.broadcast_to(kw[None, :, None], (n_sites, n_hw, n_t))
    per_unit: np.ndarray = kw[None, :, None] * unit_pue(problem) / problem.pue[:, None, :]
    return per_unit


def facility_kw(problem: Problem, units: np.ndarray) -> np.ndarray:
    """``[S, T]`` facility kW drawn by ``units`` ``[S, H, T]`` (each machine at its hall's PUE)."""
    kw = np.array([h.power_kw for h in problem.hardware])
    drawn: np.ndarray = np.einsum("sht,h,sht->st", units, kw, unit_pue(problem))
    return drawn


def inference_pue(problem: Problem) -> np.ndarray:
    """``[S, T]`` facility kW per IT kW of a commitment at each site: the PUE of the halls its inference hardware
    runs in, weighted by the inference kW installed there (the site's PUE at a site without inference hardware).
    A contract moved to a site pays this, not the site's own PUE: GPU nodes at an immersion site sit in a chilled
    hall."""
    kw = np.array([h.power_kw if h.kind == "inference" else 0.0 for h in problem.hardware])
    weight = problem.inventory_units * kw[None, :]  # [S, H] inference kW installed
    total = weight.sum(axis=1)
    weighted = np.einsum("sh,sht->st", weight, unit_pue(problem))
    result: np.ndarray = np.where(total[:, None] > 0, weighted / np.where(total > 0, total, 1.0)[:, None], problem.pue)
    return result
