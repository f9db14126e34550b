"""What dispatch may do to the machines, as bounds on the units the engine plans (hysteresis of the fleet).

Dispatch never stops a unit before its minimum on time, never starts one before its minimum off time, and never
starts one that has used its restarts of the day. The engine must not plan what dispatch may not do, so the fleet
states, per site, hardware and period:
- ``min_units`` [S, H, T]: units that must still run (started less than their minimum on time before the
  period begins): a lower bound on x;
- ``max_units`` [S, H, T]: units that may run (running now, or stopped and free to start by the period's start,
  with a restart left): an upper bound on x.
Pure numpy; applied to the column bounds of the formulation by `apply_unit_limits` (one call).
A must-run floor that the site's grid connection could not carry (PUE higher than when they started) is scaled
down to what fits, so the bounds alone never make a plan infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .halls import site_it_kw_per_unit

if TYPE_CHECKING:
    from .problem import Problem


@dataclass(frozen=True, eq=False)
class UnitLimits:
    min_units: np.ndarray  # [S, H, T]
    max_units: np.ndarray  # [S, H, T]

    def check(self, shape: tuple[int, int, int]) -> None:
        for name in ("min_units", "max_units"):
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"unit_limits.{name} must have shape {shape}, not {value.shape}")
            if np.any(value < 0) or not np.all(np.isfinite(value) | (value == np.inf)):
                raise ValueError(f"unit_limits.{name} must be >= 0")
        if np.any(self.min_units > self.max_units):
            raise ValueError("unit_limits.min_units cannot exceed max_units")


def apply_unit_limits(problem: Problem, lower: np.ndarray, upper: np.ndarray, x_slice: slice) -> None:
    """Tighten the bounds of x ([T, S, H] flattened at ``x_slice``) by ``problem.unit_limits`` in place."""
    limits = getattr(problem, "unit_limits", None)
    if limits is None:
        return
    n_sites, n_hw, n_t = problem.shape
    limits.check((n_sites, n_hw, n_t))
    up = upper[x_slice].reshape(n_t, n_sites, n_hw)
    low = lower[x_slice].reshape(n_t, n_sites, n_hw)
    floor = limits.min_units.transpose(2, 0, 1).astype(float)
    ceiling = limits.max_units.transpose(2, 0, 1).astype(float)
    # What the grid connection carries at each period's PUE, in IT kW; scale the floor into it.
    unit_kw = site_it_kw_per_unit(problem).transpose(2, 0, 1)  # [T, S, H] site IT kW, each at its hall's PUE
    capacity_it_kw = np.array([s.power_capacity_kw for s in problem.sites])[None, :] / problem.pue.T  # [T, S]
    floor_kw = (floor * unit_kw).sum(axis=2)
    scale = np.minimum(1.0, capacity_it_kw / np.maximum(floor_kw, 1e-9))
    floor = np.floor(floor * scale[:, :, None])
    new_up = np.minimum(up, ceiling)
    upper[x_slice] = new_up.ravel()
    lower[x_slice] = np.minimum(np.maximum(low, floor), new_up).ravel()
