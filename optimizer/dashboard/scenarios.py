"""The Scenarios panel: the latest outcome of each scenario, its headline figures and the series behind its chart."""

from __future__ import annotations

from django.db.models.fields.json import KT

from ..choices import Scenario
from ..models import ScenarioRun
from .formatting import _iso
from .reads import _json, _static_rows

SCENARIO_HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # scenario: (summary key, label, unit) in the order shown; keys a result lacks are skipped.
    "heat-wave": (
        ("site", "Hot site", ""),
        ("profit_kept_usd", "Profit kept by planning for the heat", "USD"),
        ("forced_curtailment_mwh", "Forced curtailment of the heat-blind plan", "MWh"),
        ("cooling_energy_avoided_mwh", "Cooling energy avoided", "MWh"),
        ("pue_heat_peak", "Peak PUE", ""),
    ),
    "follow-the-sun": (
        ("profit_gain_usd", "Profit gained by following demand", "USD"),
        ("revenue_time_aware_usd", "Revenue, time-aware", "USD"),
        ("revenue_time_blind_usd", "Revenue, time-blind", "USD"),
    ),
    "maintenance": (
        ("site", "Site down", ""),
        ("placements_moved", "Placements moved", ""),
        ("premium_uptime_pct", "Premium uptime", "%"),
        ("unserved_kw", "Unserved", "kW"),
        ("credits_owed_usd", "Credits owed", "USD"),
    ),
    "renewable": (
        ("co2_t_avoided", "CO₂ avoided", "t"),
        ("profit_given_up_usd_per_t", "Profit given up per tonne", "USD/t"),
        ("high_renewable_share_pct_before", "High-renewable share before", "%"),
        ("high_renewable_share_pct_after", "High-renewable share after", "%"),
    ),
}


def latest_scenarios() -> list[dict]:
    """The latest run of each scenario (`Scenario` order): headline figures and chart series (one query).

    Only the summary and the chart are read from the stored result, not its before/after table.
    """
    stored = {
        scenario: (title, _json(options), applied, finished_at, username, _json(summary), _json(chart))
        for scenario, title, options, applied, finished_at, username, summary, chart in _static_rows(
            "scenarios",
            lambda: ScenarioRun.objects.order_by().values_list(
                "scenario",
                "title",
                "options",
                "applied",
                "finished_at",
                "requested_by__username",
                KT("result__summary"),
                KT("result__chart"),
            ),
        )
    }
    scenarios = []
    for name, label in Scenario.choices:
        if name not in stored:
            scenarios.append({"scenario": name, "label": label, "has_run": False})
            continue
        title, options, applied, finished_at, username, summary, chart = stored[name]
        summary, chart = summary or {}, chart or {}
        lines = chart.get("lines") or {}
        order = chart.get("line_order") or sorted(lines)  # ScenarioRunManager.record keeps the legend's order
        scenarios.append(
            {
                "scenario": name,
                "label": label,
                "has_run": True,
                "title": title,
                "options": options,
                "applied": applied,
                "finished_at": _iso(finished_at),
                "requested_by": username,
                "headline": [
                    {"key": key, "label": text, "unit": unit, "value": summary[key]}
                    for key, text, unit in SCENARIO_HEADLINES.get(name, ())
                    if key in summary
                ],
                "chart": {
                    "title": chart.get("title", ""),
                    "kind": chart.get("kind", "line"),
                    "x_label": chart.get("x_label", ""),
                    "y_label": chart.get("y_label", ""),
                    "x": chart.get("x", []),
                    "series": [{"label": label, "values": lines[label]} for label in order if label in lines],
                },
            }
        )
    return scenarios
