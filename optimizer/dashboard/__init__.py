"""The operations dashboard's read model: every number the page shows, from one bounded set of queries.

`build_dashboard(now=...)` returns a JSON-ready dict (floats rounded for display, times in ISO 8601 UTC). It writes
nothing. Query cost is fixed, whatever the history stored: 12 queries, each bounded by an index and a window
(tests/optimizer/test_dashboard.py counts them):

 1. the newest run (any status, for the reasoning panel; its input snapshot and Claude's proposal are not loaded),
    and only when that run is not the one in force, the newest applied run (one more query);
 2. sites with their latest energy price and temperature and, from the newest applied run's allocations, their
    revenue and energy cost (correlated subqueries, one index probe each per site);
 3. inventories with their hardware model;
 4. the newest market price;
 5. tiers; 6. current placements with their contract, tier and customer (committed kW per site and tier);
    delivered / committed kW-minutes per tier over UPTIME_WINDOW_DAYS (cached for a minute, one query a minute);
 7. succeeded runs of the last RUN_HISTORY_HOURS (revenue and profit chart, profit computed in SQL);
 8. energy prices of the last PRICE_HISTORY_HOURS for every site, every 15 minutes (price chart), and
 9. hourly temperatures of the last PRICE_HISTORY_HOURS (PUE against temperature chart);
10. the latest contracts and 11. customers (the SLA panel);
12. the latest run of each scenario (headline figures and chart series, not its table).

Cost is mostly Python, not PostgreSQL (~3 ms of the ~12 ms): the reads without a per-request input (1, 2, 3, 5, 10,
11, 12) are compiled to SQL once per process (`_static`), rows come as the driver's tuples where the driver
already returns what the ORM would (`core.db.driver_rows`), and no model instance is built except the ten sites,
the newest run and the market price. Nothing is cached across requests except the uptime figure: every other number
is read anew.

Units: power in kW or MW as named; money in USD per hour; temperatures in °C; PUE dimensionless (facility / IT).
"""

from __future__ import annotations

from datetime import datetime

from sla.models import Customer

from ..models import OptimizationRun
from .charts import _chart_rows, _price_history, _pue_temperature
from .contracts import CUSTOMER_CHOICES_LIMIT, _latest_contracts
from .fleet import fleet_state
from .reads import _static_models, _static_rows
from .runs import UNREAD_RUN_FIELDS, run_history, run_summary
from .scenarios import latest_scenarios

__all__ = ["build_dashboard", "fleet_state", "run_history", "run_summary"]


def build_dashboard(*, now: datetime) -> dict:
    """Everything the dashboard shows, as one JSON-ready dict (see the module docstring for its queries)."""
    latest_run = next(
        iter(
            _static_models(
                "latest-run",
                lambda: OptimizationRun.objects.defer(*UNREAD_RUN_FIELDS).order_by("-queued_at", "-id")[:1],
            )
        ),
        None,
    )
    state = fleet_state(now=now, latest_run=latest_run)
    state.pop("applied_run")
    site_rows = state["sites"]
    hardware = state["hardware"]
    price_rows, temperature_rows = _chart_rows([row["id"] for row in site_rows], now)
    return {
        **state,
        "latest_run": run_summary(latest_run),
        "charts": {
            "runs": run_history(now=now),
            "energy_prices": _price_history(site_rows, price_rows),
            "pue_temperature": _pue_temperature(site_rows, temperature_rows),
            "allocation": {
                "sites": [row["name"] for row in site_rows],
                "series": [
                    {
                        "hardware": model["code"],
                        "label": model["name"],
                        "kind": model["kind"],
                        "it_kw": [
                            next((a["it_kw"] for a in row["allocation"] if a["hardware"] == model["code"]), 0.0)
                            for row in site_rows
                        ],
                    }
                    for model in hardware
                ],
            },
        },
        "contracts": _latest_contracts(),
        "customers": [
            {"id": pk, "name": name}
            for pk, name in _static_rows(
                "customers",
                lambda: Customer.objects.order_by("name", "id").values_list("id", "name")[:CUSTOMER_CHOICES_LIMIT],
            )
        ],
        "scenarios": latest_scenarios(),
    }
