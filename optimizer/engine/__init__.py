"""The pure optimization engine: dataclasses in, dataclasses out, no Django.

Typical use::

    from optimizer.engine import Problem, Site, HardwareModel, Market, Settings, solve
    solution = solve(problem)                              # cold
    solution = solve(next_problem, warm_start=solution)    # rolling horizon, warm

See docs/optimizer.md for the formulation and its units.
"""

from .explain import allocation_violations
from .guard import Verdict, judge_plan
from .problem import REGIONS, Commitment, HardwareModel, Market, Problem, Settings, Site, rolling_periods
from .solution import (
    BindingConstraint,
    CommitmentResult,
    Ledger,
    Shortfall,
    SiteBreakdown,
    Solution,
    Totals,
    WarmStart,
)
from .solve import evaluate, solve, solve_with_scipy
from .starts import ROLLING_PLAN_STOP_WARMUP_SHARE
from .strategies import STRATEGIES, greedy, perfect, run_strategy, seed
from .unit_commitment import UnitLimits

__all__ = [
    "REGIONS",
    "ROLLING_PLAN_STOP_WARMUP_SHARE",
    "STRATEGIES",
    "BindingConstraint",
    "Commitment",
    "CommitmentResult",
    "HardwareModel",
    "Ledger",
    "Market",
    "Problem",
    "Settings",
    "Shortfall",
    "Site",
    "SiteBreakdown",
    "Solution",
    "Totals",
    "UnitLimits",
    "Verdict",
    "WarmStart",
    "allocation_violations",
    "evaluate",
    "greedy",
    "judge_plan",
    "perfect",
    "rolling_periods",
    "run_strategy",
    "seed",
    "solve",
    "solve_with_scipy",
]
