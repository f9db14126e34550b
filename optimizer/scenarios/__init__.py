"""The four demo scenarios as measurable experiments: heat wave, follow-the-sun, maintenance, renewable.

Each scenario copies the current state of the database (sites, status, inventory, hardware, active contracts and
their placements) into engine dataclasses, simulates a stretch of time with the simulators (hourly prices,
temperatures, demand; the same seed as the live simulator), solves it with and without the event, and returns a
``ScenarioResult``: a before/after table, summary numbers and the series behind the chart. Nothing live changes:
the three simulation scenarios never write, and ``maintenance`` runs the SLA failover inside a transaction that is
rolled back unless ``apply=True``. Definitions of every reported figure: docs/scenarios.md.
"""

from __future__ import annotations

from ..choices import Scenario
from .carbon import HIGH_RENEWABLE_SHARE, renewable
from .failover import maintenance
from .heat import HEAT_RAMP_HOURS, POWER_MARGIN, curtail_to_power, heat_wave
from .options import OPTIONS_BY_SCENARIO, validate_options
from .sun import follow_the_sun
from .world import (
    STEP_MINUTES,
    ScenarioError,
    ScenarioResult,
    World,
    build_world,
    co2_t,
    facility_mwh,
    kw_by_kind,
    sold_by_region,
)

__all__ = [
    "HEAT_RAMP_HOURS",
    "HIGH_RENEWABLE_SHARE",
    "OPTIONS_BY_SCENARIO",
    "POWER_MARGIN",
    "SCENARIOS",
    "STEP_MINUTES",
    "ScenarioError",
    "ScenarioResult",
    "World",
    "build_world",
    "co2_t",
    "curtail_to_power",
    "facility_mwh",
    "follow_the_sun",
    "heat_wave",
    "kw_by_kind",
    "maintenance",
    "renewable",
    "run_and_record",
    "run_scenario",
    "sold_by_region",
]

SCENARIOS = tuple(Scenario.values)


def run_scenario(name: str, *, apply: bool = False, actor=None, **options) -> ScenarioResult:
    """Dispatch by name (``SCENARIOS``) after checking the options (`options.validate_options`: every entry point
    passes here); ``apply`` changes live data only for ``maintenance``."""
    options = validate_options(name, options, apply=apply)
    if name == "heat-wave":
        result = heat_wave(**options)
    elif name == "follow-the-sun":
        result = follow_the_sun(**options)
    elif name == "renewable":
        result = renewable(**options)
    elif name == "maintenance":
        return maintenance(apply=apply, actor=actor, **options)
    else:
        raise ScenarioError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return result


def run_and_record(name: str, *, apply: bool = False, actor=None, **options) -> ScenarioResult:
    """`run_scenario`, then keep its result as the scenario's latest run (`ScenarioRun`, the dashboard's
    Scenarios panel), with the options it ran with, who ran it, and when."""
    from django.utils import timezone

    from ..models import ScenarioRun

    started_at = timezone.now()
    result = run_scenario(name, apply=apply, actor=actor, **options)
    ScenarioRun.objects.record(
        result=result,
        options={**options, "apply": apply},
        actor=actor,
        started_at=started_at,
        finished_at=timezone.now(),
    )
    return result
