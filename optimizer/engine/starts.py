"""What a start costs and how many units may start: per machine and per hour, not one figure per period.

- **Start cost** ``[T, H]`` USD per unit started in period t: the unit's warm-up (``HardwareModel.warmup_minutes``:
  a miner boots and finds its pool in a few minutes, a GPU node loads a 70B model for about ten) is time it draws
  power without producing, so a start loses ``warm-up hours x what one running unit earns per hour`` at that
  period's hashprice or token price. It is charged on the starts column of the formulation, on top of the flat
  ``switching_cost_usd_per_unit`` (wear, per start or stop). Without history the first period starts free, as the
  switching cost does.
- **Stop charge** (``settings.stop_warmup_share``): a rolling plan also charges each stop that share of the
  warm-up its restart will cost (``ROLLING_PLAN_STOP_WARMUP_SHARE``), so it keeps an idle unit warm unless its
  energy over the horizon costs more than the restart. The charge is an objective term only, not money: the ledger
  keeps it apart (``stop_charge_usd``), out of the switching cost and the books. A stop and restart both inside
  the horizon then pay two warm-ups: the plan errs toward keeping units warm.
- **Start limit** ``[T, S, H]`` units that may start in period t: ``ramp_limit_fraction`` counts per period (the old
  rule), ``ramp_limit_fraction_per_hour`` per hour, so a 5-minute period starts a twelfth of what an hourly one
  may (at least one unit either way); where both are set the tighter holds.
Pure numpy, no Django.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .problem import Problem

SECONDS_PER_HOUR = 3600.0
TOKENS_PER_MTOK = 1e6
# A rolling plan (the live optimizer, the backtest's lp) also charges each stop the warm-up of the restart it makes
# necessary: on a forecast held flat over the horizon a stop never shows its restart, so with free stops every dip
# of demand stopped warm GPU nodes that the next tick restarted at a full warm-up each. A start keeps its own
# warm-up (a cold fleet pays it); accounting (evaluate, the backtest's score) charges starts only.
ROLLING_PLAN_STOP_WARMUP_SHARE = 1.0


def unit_value_usd_per_h(problem: Problem) -> np.ndarray:
    """``[T, H]`` what one running unit earns per hour before energy: mining, or every token sold at the spot price."""
    hash_ph = np.array([h.hashrate_th_s if h.kind == "miner" else 0.0 for h in problem.hardware]) / 1000.0
    mtok_h = np.array([h.tokens_per_s if h.kind == "inference" else 0.0 for h in problem.hardware])
    mtok_h = mtok_h * SECONDS_PER_HOUR / TOKENS_PER_MTOK
    market = problem.market
    value: np.ndarray = (
        hash_ph[None, :] * market.hashprice_usd_per_ph_day[:, None] / 24.0
        + mtok_h[None, :] * market.inference_price_usd_per_mtok[:, None]
    )
    return value


def start_cost_usd_per_unit(problem: Problem) -> np.ndarray:
    """``[T, H]`` USD lost by one unit started in period t while it warms up (0 in period 0 without history)."""
    warmup_h = np.array([h.warmup_minutes for h in problem.hardware]) / 60.0
    cost = unit_value_usd_per_h(problem) * warmup_h[None, :]
    if problem.previous_units is None:
        cost[0] = 0.0
    return cost


def start_and_stop_costs(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """``[T, H]`` USD charged per unit started (its warm-up) and per unit stopped (``settings.stop_warmup_share`` of
    the warm-up its restart will cost)."""
    cost = start_cost_usd_per_unit(problem)
    return cost, cost * problem.settings.stop_warmup_share


def has_start_costs(problem: Problem) -> bool:
    return any(h.warmup_minutes > 0 for h in problem.hardware)


def has_start_limits(problem: Problem) -> bool:
    settings = problem.settings
    return settings.ramp_limit_fraction is not None or settings.ramp_limit_fraction_per_hour is not None


def start_limits(problem: Problem) -> np.ndarray | None:
    """``[T, S, H]`` units that may start in each period (inf where no limit applies), or None without ramp limits."""
    settings = problem.settings
    if not has_start_limits(problem):
        return None
    n_sites, n_hw, n_t = problem.shape
    limit = np.full((n_t, n_sites, n_hw), np.inf)
    inventory = problem.inventory_units[None, :, :]
    if settings.ramp_limit_fraction is not None:
        limit = np.minimum(limit, np.maximum(settings.ramp_limit_fraction * inventory, 1.0))
    if settings.ramp_limit_fraction_per_hour is not None:
        per_period = settings.ramp_limit_fraction_per_hour * inventory * problem.period_hours[:, None, None]
        limit = np.minimum(limit, np.maximum(per_period, 1.0))
    return limit
