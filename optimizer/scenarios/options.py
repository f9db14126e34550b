"""One validation of a scenario's options for every entry point: `manage.py scenario`, POST /api/scenarios/ and
the admin's Scenarios page all reach `run_scenario`, which checks them here first.

The command once checked less than the API and the admin form: `--carbon-price nan` ran past the solver's time
limit, `--delta-c inf` ended in a traceback, `--hours 100000` took 8 GB before saying "no plan", and
`--delta-c -300` ran silently. The bounds are the API's (its serializer documents them in the schema).
"""

from __future__ import annotations

import math
import re

from .world import ScenarioError

OPTIONS_BY_SCENARIO: dict[str, tuple[str, ...]] = {
    "heat-wave": ("site", "delta_c", "hours"),
    "follow-the-sun": ("hours",),
    "maintenance": ("site", "hours"),
    "renewable": ("carbon_price_usd_per_t", "hours"),
}
DELTA_C = (-30.0, 40.0)  # degC added to a site's temperature
HOURS = (1, 168)  # one hour to one week
CARBON_PRICE_USD_PER_T = (0.0, 10_000.0)
SITE_CODE = re.compile(r"^[-a-zA-Z0-9_]{1,40}$")


def validate_options(name: str, options: dict, *, apply: bool = False) -> dict:
    """The options `name` takes, checked (finite numbers in range, a site code, whole hours); raise ScenarioError
    naming every option that is wrong, or that `name` does not take."""
    if name not in OPTIONS_BY_SCENARIO:
        raise ScenarioError(f"unknown scenario {name!r}; choose one of {', '.join(OPTIONS_BY_SCENARIO)}")
    errors = [f"{name} does not take {key}" for key in sorted(set(options) - set(OPTIONS_BY_SCENARIO[name]))]
    if apply and name != "maintenance":
        errors.append("only maintenance can be applied")
    checks = {"delta_c": (DELTA_C, "degC"), "carbon_price_usd_per_t": (CARBON_PRICE_USD_PER_T, "USD per t")}
    for key, ((lo, hi), unit) in checks.items():
        if key in options and not _number_between(options[key], lo, hi):
            errors.append(f"{key} must be a finite number from {lo:g} to {hi:g} {unit}, got {options[key]!r}")
    hours = options.get("hours")
    if hours is not None and (
        isinstance(hours, bool) or not isinstance(hours, int) or not HOURS[0] <= hours <= HOURS[1]
    ):
        errors.append(f"hours must be a whole number from {HOURS[0]} to {HOURS[1]}, got {hours!r}")
    site = options.get("site")
    if site is not None and not (isinstance(site, str) and SITE_CODE.match(site)):
        errors.append(f"site must be a site code, got {site!r}")
    if errors:
        raise ScenarioError("; ".join(errors) + ".")
    return dict(options)


def _number_between(value, lo: float, hi: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
