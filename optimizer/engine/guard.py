"""Whether a plan may replace the allocation in force: never a time-limited plan, never a worse one.

A solve that ends at its time limit returns its incumbent, which can be anything down to "run nothing, every
contract unserved" (issue 13: such a plan, 3 M USD/h of penalties, was applied). And a plan can score worse than
simply keeping what runs now (a heuristic strategy, an incumbent far from the bound). ``judge_plan`` compares the
plan with the allocation in force kept over the whole horizon, scored by ``evaluate`` on the same problem, and says
whether to apply it and why not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .problem import Problem
from .solution import Solution
from .solve import evaluate

TOLERANCE_USD = 0.01  # profits within a cent over the horizon are equal


@dataclass(frozen=True)
class Verdict:
    """Apply the plan or keep the allocation in force; ``reason`` says why a plan is not applied."""

    apply: bool
    reason: str = ""
    plan_usd: float = float("nan")  # the plan's profit over the horizon
    keep_usd: float | None = None  # profit of keeping the allocation in force (None: not scored)

    def as_dict(self) -> dict[str, object]:
        return {
            "apply": self.apply,
            "reason": self.reason,
            "plan_usd": None if np.isnan(self.plan_usd) else round(self.plan_usd, 2),
            "keep_usd": None if self.keep_usd is None else round(self.keep_usd, 2),
        }


def keep_allocation(problem: Problem) -> np.ndarray | None:
    """The allocation in force (``previous_units``) held over every period, ``[S, H, T]``; None without one."""
    if problem.previous_units is None:
        return None
    n_t = problem.period_hours.shape[0]
    return np.repeat(np.asarray(problem.previous_units, dtype=float)[:, :, None], n_t, axis=2)


def judge_plan(problem: Problem, solution: Solution) -> Verdict:
    """Apply ``solution`` only if it is a finished plan that earns at least what keeping the allocation in force
    earns over the same horizon. Keeping is scored only when it is feasible (a site gone offline, or power lost
    to a hotter PUE, makes the allocation in force impossible to keep: then the new plan is the only plan)."""
    if solution.status == "time_limit":
        return Verdict(
            False,
            f"The solver stopped at its time limit (gap {solution.mip_gap:.2%}): a time-limited plan is never "
            "applied; the allocation in force stays.",
            solution.objective_usd,
        )
    if not solution.ok:
        return Verdict(False, f"The solver found no plan ({solution.status}); the allocation in force stays.")
    units = keep_allocation(problem)
    if units is None:
        return Verdict(True, plan_usd=solution.objective_usd)
    kept = evaluate(problem, units)
    if not kept.ok:
        return Verdict(True, plan_usd=solution.objective_usd)
    if kept.objective_usd > solution.objective_usd + TOLERANCE_USD:
        hours = float(problem.period_hours.sum())
        return Verdict(
            False,
            f"The plan earns ${solution.objective_usd / hours:,.2f}/h over the horizon, less than keeping the "
            f"allocation in force (${kept.objective_usd / hours:,.2f}/h): it is not applied.",
            solution.objective_usd,
            kept.objective_usd,
        )
    return Verdict(True, plan_usd=solution.objective_usd, keep_usd=kept.objective_usd)
