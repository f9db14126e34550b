"""The heat-wave scenario: the heat-aware plan against a heat-blind one curtailed to the grid connection."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from sites.simulation import HeatWave

from .. import engine
from ..books import solution_streams
from ..engine.halls import facility_kw, site_it_kw_per_unit
from .world import ScenarioResult, World, _checked, _hour_labels, _start, build_world, kw_by_kind

HEAT_RAMP_HOURS = 2.0  # the heat wave reaches its plateau over two hours (raised cosine)
POWER_MARGIN = 1.0 - 1e-7  # curtailment lands just inside the power row, clear of the solver's tolerance


def curtail_to_power(problem: engine.Problem, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forced curtailment: scale every site's units down, evenly, until its facility kW (each machine at its hall's
    PUE) fits its grid connection.

    This is what happens to a plan made without knowing the heat: at the hotter PUE its facility power exceeds
    the connection, and the site sheds load across the board (thermal throttling, breakers) rather than by
    profit. Returns ``(units, curtailed IT kW [S, T])``.
    """
    kw = np.array([h.power_kw for h in problem.hardware])
    site_kw = np.einsum("sht,sht->st", units, site_it_kw_per_unit(problem))  # in the site's IT kW
    cap = np.array([s.power_capacity_kw for s in problem.sites])[:, None] / problem.pue
    factor = np.where(site_kw > cap, cap / np.where(site_kw > 0, site_kw, 1.0) * POWER_MARGIN, 1.0)
    scaled = units * factor[:, None, :]
    return scaled, np.einsum("sht,h->st", units - scaled, kw)


@dataclass(frozen=True)
class _HeatPlans:
    """The heat wave's three plans on one world: made without the heat, heat-blind (curtailed), heat-aware."""

    world: World
    hot: int
    normal: engine.Problem
    heat: engine.Problem
    blind_plan: engine.Solution
    blind: engine.Solution
    aware: engine.Solution
    curtailed_kw: np.ndarray  # [S, T]
    plan_kw: dict[str, np.ndarray]
    blind_kw: dict[str, np.ndarray]
    aware_kw: dict[str, np.ndarray]

    @property
    def plan_it(self) -> np.ndarray:
        return self.plan_kw["inference"] + self.plan_kw["miner"]

    @property
    def aware_it(self) -> np.ndarray:
        return self.aware_kw["inference"] + self.aware_kw["miner"]


def heat_wave(
    *, site: str | None = None, delta_c: float = 12.0, hours: int = 24, start: datetime | None = None
) -> ScenarioResult:
    """One site gets ``delta_c`` hotter for ``hours``: the heat-aware plan against the heat-blind one.

    heat-blind = the plan made with the normal weather (normal PUE), run in the heat: the excess facility power is
    curtailed evenly (``curtail_to_power``) and the money is accounted at the heat PUE (``engine.evaluate``).
    heat-aware = the engine planning with the heat PUE.
    """
    began = time.perf_counter()
    start = _start(start)
    probe = build_world(start=start, hours=hours)
    # Default: the site that is hottest over the window anyway (a heat wave bites where it is already warm).
    code = site or probe.site_codes[int(np.argmax(probe.temperature_c.max(axis=1)))]
    plans = _plan_heat_wave(probe, code=code, start=start, hours=hours, delta_c=delta_c)
    hot, world = plans.hot, plans.world
    hot_it_blind = plans.blind_kw["inference"][hot] + plans.blind_kw["miner"][hot]
    return ScenarioResult(
        scenario="heat-wave",
        title=f"Heat wave: {code} +{delta_c:g} degC for {hours} h",
        start=start,
        hours=hours,
        rows=_heat_rows(plans),
        summary=_heat_summary(plans, code=code, delta_c=delta_c),
        chart={
            "title": f"{code}: IT load in a +{delta_c:g} degC heat wave",
            "x_label": "hour (UTC)",
            "y_label": "IT kW",
            "x": _hour_labels(world),
            "lines": {
                "plan without heat": plans.plan_it[hot].tolist(),
                "heat-blind (curtailed)": hot_it_blind.tolist(),
                "heat-aware": plans.aware_it[hot].tolist(),
            },
        },
        notes=[
            "before = heat-blind plan (made at normal PUE, curtailed evenly to the grid connection at the heat PUE); "
            "after = heat-aware plan.",
        ],
        streams={"heat-blind": solution_streams(plans.blind), "heat-aware": solution_streams(plans.aware)},
        seconds=time.perf_counter() - began,
    )


def _plan_heat_wave(probe: World, *, code: str, start: datetime, hours: int, delta_c: float) -> _HeatPlans:
    """Solve the world with the heat wave at ``code`` both ways (see `heat_wave`)."""
    wave = HeatWave(start=start, end=start + timedelta(hours=hours), delta_c=delta_c, ramp_hours=HEAT_RAMP_HOURS)
    world = build_world(start=start, hours=hours, heat_waves={code: wave})
    normal = world.problem(temperature_c=probe.temperature_c)  # same weather without the bump
    heat = world.problem()
    blind_plan = _checked(engine.solve(normal), "heat-blind")
    blind_units, curtailed_kw = curtail_to_power(heat, blind_plan.units)
    blind = _checked(engine.evaluate(heat, blind_units), "heat-blind accounting")
    aware = _checked(engine.solve(heat), "heat-aware")
    return _HeatPlans(
        world=world,
        hot=probe.index(code),
        normal=normal,
        heat=heat,
        blind_plan=blind_plan,
        blind=blind,
        aware=aware,
        curtailed_kw=curtailed_kw,
        plan_kw=kw_by_kind(normal, blind_plan.units),
        blind_kw=kw_by_kind(heat, blind_units),
        aware_kw=kw_by_kind(heat, aware.units),
    )


def _heat_rows(plans: _HeatPlans) -> list[dict]:
    """One row per site: PUE, inference and mining kW, curtailment and profit, heat-blind (before) and aware."""
    pue_normal, pue_heat = plans.normal.pue, plans.heat.pue
    blind_kw, aware_kw = plans.blind_kw, plans.aware_kw
    return [
        {
            "site": name,
            "pue_before": float(pue_normal[s].mean()),
            "pue_after": float(pue_heat[s].mean()),
            "inference_kw_before": float(blind_kw["inference"][s].mean()),
            "inference_kw_after": float(aware_kw["inference"][s].mean()),
            "mining_kw_before": float(blind_kw["miner"][s].mean()),
            "mining_kw_after": float(aware_kw["miner"][s].mean()),
            "curtailed_kw_before": float(plans.curtailed_kw[s].mean()),
            "profit_usd_before": plans.blind.site_breakdown[s].profit_usd,
            "profit_usd_after": plans.aware.site_breakdown[s].profit_usd,
        }
        for s, name in enumerate(plans.world.site_codes)
    ]


def _heat_summary(plans: _HeatPlans, *, code: str, delta_c: float) -> dict:
    """The hot site's figures: temperature, PUE, kW moved, curtailment, cooling avoided, and the three profits."""
    hot, d = plans.hot, plans.heat.period_hours
    pue_normal, pue_heat = plans.normal.pue, plans.heat.pue
    plan_kw, aware_kw = plans.plan_kw, plans.aware_kw
    # Cooling energy = facility kW - IT kW (each machine at its hall's PUE) x h. The heat-blind plan would have
    # needed its IT load's cooling at the heat PUE; the heat-aware plan needs only its own.
    plan_cooling = facility_kw(plans.heat, plans.blind_plan.units) - plans.plan_it
    aware_cooling = facility_kw(plans.heat, plans.aware.units) - plans.aware_it
    cooling_avoided = float(((plan_cooling[hot] - aware_cooling[hot]) * d).sum() / 1000.0)
    blind_profit, aware_profit = plans.blind.totals.profit_usd, plans.aware.totals.profit_usd
    return {
        "site": code,
        "delta_c": delta_c,
        "peak_temperature_c": float(plans.world.temperature_c[hot].max()),
        "pue_normal_mean": float(pue_normal[hot].mean()),
        "pue_heat_peak": float(pue_heat[hot].max()),
        "inference_moved_kw": float((plan_kw["inference"][hot] - aware_kw["inference"][hot]).mean()),
        "mining_moved_kw": float((plan_kw["miner"][hot] - aware_kw["miner"][hot]).mean()),
        "forced_curtailment_mwh": float((plans.curtailed_kw * d).sum() / 1000.0),
        "cooling_energy_avoided_mwh": cooling_avoided,
        "profit_no_heat_usd": plans.blind_plan.totals.profit_usd,
        "profit_heat_blind_usd": blind_profit,
        "profit_heat_aware_usd": aware_profit,
        "profit_kept_usd": aware_profit - blind_profit,
    }
