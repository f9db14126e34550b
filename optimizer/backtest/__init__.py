"""Backtest: replay a strategy over realized prices, interval by interval, and measure it against perfect foresight.

The package imports no Django (``database.py`` does, lazily), so the benchmark and most tests run without a
database. Its parts: ``worlds`` (WORLD.json, validated), ``history`` (realized prices: files, simulated),
``replay`` (forecasts, the rolling horizon, strategies, accounting), ``outputs`` (the three files) and
``database`` (seeded sites and stored history). docs/backtest.md has the schema, the columns and the figures.

How each strategy is replayed over N 5-minute intervals:

- ``lp``: at each interval t the forecast sees the history up to and including t (like the live optimizer, which
  acts on the price of the interval in progress) and fills a rolling horizon (``Horizon``: fine 5-minute steps,
  then hourly ones). The engine solves it with whole units, warm-started, with the allocation applied at t - 1
  as its previous units, and the first ``replan_every`` periods are applied.
- ``greedy`` and ``seed`` look at the current period only, so they run once over the window of each interval's
  forecast for itself, which gives exactly what calling them interval by interval would.
- ``perfect``: the engine over the realized window in one integer solve: the upper bound.

Every applied allocation goes through ``dispatch`` (whole units, inventory, offline sites, ramp, power at the
realized PUE) and is scored over the realized window by one accounting, from the same initial state (nothing
running, the first interval's starts free): the engine's ``evaluate`` (units pinned; spot sales and contract
placement optimized) for ``energyarb``, and the hackathon API's own arithmetic (``mara.score_allocation``, per
interval) for ``mara``.
"""

from .history import (
    DEFAULT_TEMPERATURE_C,
    INTERVAL_HOURS,
    STEP_MINUTES,
    History,
    mara_history,
    read_prices,
    realized_pue,
    simulate_history,
    write_prices_csv,
)
from .outputs import ALLOCATION_COLUMNS, write_outputs
from .replay import (
    STRATEGIES,
    BacktestResult,
    Bound,
    Forecast,
    ForecastErrors,
    Horizon,
    Outlook,
    Score,
    dispatch,
    do_nothing_baseline,
    forecast_name,
    perfect_bound,
    persistence_forecast,
    realized_outlook,
    run_backtest,
    score_units,
)
from .worlds import (
    FORMATS,
    SCHEMA,
    BacktestInputError,
    SiteLocation,
    World,
    catalogue_world,
    hackathon_world,
    load_world,
    parse_world,
    with_settings,
    with_warmups,
)

__all__ = [
    "ALLOCATION_COLUMNS",
    "DEFAULT_TEMPERATURE_C",
    "FORMATS",
    "INTERVAL_HOURS",
    "SCHEMA",
    "STEP_MINUTES",
    "STRATEGIES",
    "BacktestInputError",
    "BacktestResult",
    "Bound",
    "Forecast",
    "ForecastErrors",
    "History",
    "Horizon",
    "Outlook",
    "Score",
    "SiteLocation",
    "World",
    "catalogue_world",
    "dispatch",
    "do_nothing_baseline",
    "forecast_name",
    "hackathon_world",
    "load_world",
    "mara_history",
    "parse_world",
    "perfect_bound",
    "persistence_forecast",
    "read_prices",
    "realized_outlook",
    "realized_pue",
    "run_backtest",
    "score_units",
    "simulate_history",
    "with_settings",
    "with_warmups",
    "write_outputs",
    "write_prices_csv",
]
