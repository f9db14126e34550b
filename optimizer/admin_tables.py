"""The run's admin page as tables staff can read: what the run planned on and what it decided, per site.

- `inputs_tables`: the sites as observed (status, energy price, temperature, PUE) and the market, then the horizon
  the engine planned on, site x period (energy price and PUE per planning period, with the model each series came
  from), and the units running before the run, site x hardware.
- `allocation_table`: the applied allocation, site x hardware (units, and IT kW per site).
- `collapsed_json`: the raw JSON behind a <details> toggle, closed.

Everything is escaped by format_html; values come from the run's stored `inputs` (OptimizationRun.inputs, written by
optimizer.inputs) and its Allocation rows, so a page costs no query beyond those rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

TABLE = '<table class="run-table" style="margin-bottom:1em">'


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):  # PUE and small prices to 3 decimals, larger values to cents
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], caption: str = "") -> SafeString:
    """An HTML table (first column as row headers); every value escaped."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in header))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html(
                    "<th>{}</th>{}",
                    _cell(row[0]),
                    format_html_join("", "<td>{}</td>", ((_cell(v),) for v in row[1:])),
                ),
            )
            for row in rows
        ),
    )
    title = format_html("<caption>{}</caption>", caption) if caption else ""
    return format_html("{}{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>", mark_safe(TABLE), title, head, body)


def collapsed_json(value: Any, summary: str) -> SafeString:
    """The raw JSON, closed under a <details> toggle."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str)
    return format_html("<details><summary>{}</summary><pre>{}</pre></details>", summary, text)


def _sites_table(inputs: Mapping[str, Any]) -> SafeString:
    sites = inputs.get("sites") or {}
    rows = [
        (code, s.get("status"), s.get("energy_price_usd_per_mwh"), s.get("price_at"), s.get("temperature_c"),
         s.get("pue"))
        for code, s in sorted(sites.items())
    ]  # fmt: skip
    header = ("Site", "Status", "Energy USD/MWh", "Price at", "Temperature °C", "PUE")
    return table(header, rows, "Sites as observed at the interval decided")


def _market_table(inputs: Mapping[str, Any]) -> SafeString:
    market = inputs.get("market") or {}
    demand = market.get("inference_demand_mtok_per_h") or {}
    rows = [
        ("Hashprice USD per PH/s per day", market.get("hashprice_usd_per_ph_day")),
        ("Token price USD/Mtok", market.get("inference_price_usd_per_mtok")),
        *((f"Inference demand {region}, Mtok/h", value) for region, value in sorted(demand.items())),
    ]
    return table(("Market", market.get("interval_start", "")), rows, "Market")


def _horizon_tables(inputs: Mapping[str, Any]) -> list[SafeString]:
    """Site x period for each per-site series of the forecast record, with the model each site's series came from."""
    record = inputs.get("forecast") or {}
    periods = record.get("periods") or {}
    models = record.get("models") or {}
    tables = []
    for key, label in (("energy_price_usd_per_mwh", "Energy price USD/MWh"), ("pue", "PUE")):
        by_site = periods.get(key) or {}
        if not by_site:
            continue
        count = max(len(values) for values in by_site.values())
        header = ("Site", "Model", *(f"P{t}" for t in range(count)))
        rows = [(code, models.get(f"{key}.{code}", ""), *values) for code, values in sorted(by_site.items())]
        tables.append(table(header, rows, f"{label} per planning period (P0: observed)"))
    return tables


def _units_table(units: Mapping[str, Mapping[str, int]], caption: str) -> SafeString:
    codes = sorted({hw for per_site in units.values() for hw in per_site})
    rows = [(site, *(per_site.get(hw, 0) for hw in codes)) for site, per_site in sorted(units.items())]
    return table(("Site", *codes), rows, caption)


def inputs_tables(inputs: Mapping[str, Any] | None) -> SafeString:
    """What the run planned on, as tables; the raw JSON collapsed below them."""
    if not inputs:
        return format_html("{}", "No inputs recorded.")
    parts = [_sites_table(inputs), _market_table(inputs), *_horizon_tables(inputs)]
    previous = {site: units for site, units in (inputs.get("previous_units") or {}).items() if units}
    if previous:
        parts.append(_units_table(previous, "Units running before this run"))
    note = (inputs.get("forecast") or {}).get("note")
    if note:
        parts.append(format_html("<p>{}</p>", note))
    parts.append(collapsed_json(inputs, "Raw inputs (JSON)"))
    return format_html_join("", "{}", ((part,) for part in parts))


def allocation_table(allocations: Iterable[Any]) -> SafeString:
    """The applied allocation, site x hardware: units running, and the IT kW of each site."""
    units: dict[str, dict[str, int]] = {}
    it_kw: dict[str, float] = {}
    for row in allocations:
        site, hardware = row.site.code, row.hardware_model.code
        units.setdefault(site, {})[hardware] = row.units_running
        it_kw[site] = it_kw.get(site, 0.0) + float(row.it_power_kw)
    if not units:
        return format_html("{}", "Nothing allocated.")
    codes = sorted({hw for per_site in units.values() for hw in per_site})
    rows = [(site, *(units[site].get(hw, 0) for hw in codes), it_kw[site]) for site in sorted(units)]
    return table(("Site", *codes, "IT kW"), rows, "Units running, site x hardware")
