"""Grid programs of a backtest world (WORLD.json ``grid``): reserves sold, demand-response events, a coincident peak.

Each becomes the engine's grid inputs (``engine.grid``) over whatever periods are planned or scored, by the time
each period covers, so every strategy plans with them where it can (``lp``, ``perfect``) and every allocation is
scored with them (capacity paid on what it ran, events paid and penalised against their baseline, the expected
coincident-peak charge on its load):

    "grid": {
      "reserves": [{"product": "ecrs", "site": "tx", "max_kw": 500, "price_usd_per_mw_h": 12.5}],
      "events": [{"id": "dr-1", "site": "tx", "start": "2025-06-16T20:00:00Z", "end": "2025-06-16T21:00:00Z",
                  "baseline_kw": 1200, "reduction_kw": 300, "payment_usd_per_mwh": 200, "penalty_usd_per_mwh": 300}],
      "coincident_peak": {"sites": ["tx"], "rate_usd_per_kw_year": 60, "peaks_per_year": 4,
                          "intervals": [{"start": "...", "end": "...", "probability": 0.4}]}
    }

kW are facility kW (what the grid meters). A reserve's response time is its product's (``RESPONSE_S``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from ..engine.grid import CoincidentPeak, EventCap, GridInputs, ReserveOffer

# Seconds from dispatch to full response, by product (ERCOT's product rules, grid/seeding.py).
RESPONSE_S = {"rrs": 1, "reg_up": 4, "reg_down": 4, "ecrs": 600, "ers_10": 600, "non_spin": 1800, "ers_30": 1800}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    value: float = 1.0  # an interval's probability of holding a peak


@dataclass(frozen=True)
class WorldEvent:
    id: str
    site: str
    window: Window
    baseline_kw: float
    reduction_kw: float
    payment_usd_per_mwh: float
    penalty_usd_per_mwh: float


@dataclass(frozen=True)
class WorldGrid:
    reserves: tuple[tuple[str, str, float, float], ...] = ()  # product, site, max kW, USD/MW-h
    events: tuple[WorldEvent, ...] = ()
    peak_sites: tuple[str, ...] = ()
    peak_rate_usd_per_kw_year: float = 0.0
    peaks_per_year: int = 4
    peak_intervals: tuple[Window, ...] = ()

    def inputs(self, starts: Sequence[datetime], period_hours: np.ndarray) -> GridInputs:
        """The engine's grid inputs over periods starting at ``starts`` and lasting ``period_hours``."""
        ends = [start + timedelta(hours=float(h)) for start, h in zip(starts, period_hours, strict=True)]
        n_t = len(ends)

        def overlaps(window: Window) -> np.ndarray:
            return np.array([s < window.end and window.start < e for s, e in zip(starts, ends, strict=True)])

        reserves = tuple(
            ReserveOffer(product, site, max_kw, np.full(n_t, price), response_s=float(RESPONSE_S[product]))
            for product, site, max_kw, price in self.reserves
        )
        events = tuple(
            EventCap(
                event=event.id,
                site=event.site,
                periods=overlaps(event.window),
                cap_kw=max(event.baseline_kw - event.reduction_kw, 0.0),
                penalty_usd_per_kwh=event.penalty_usd_per_mwh / 1000.0,
                baseline_kw=event.baseline_kw,
                payment_usd_per_kwh=event.payment_usd_per_mwh / 1000.0,
            )
            for event in self.events
        )
        events = tuple(cap for cap in events if cap.periods.any())
        peak = None
        if self.peak_sites:
            probability = np.zeros(n_t)
            for window in self.peak_intervals:
                probability = np.maximum(probability, np.where(overlaps(window), window.value, 0.0))
            label = "4CP" if self.peaks_per_year == 4 else f"{self.peaks_per_year}CP"
            peak = CoincidentPeak(
                probability, self.peak_rate_usd_per_kw_year, self.peaks_per_year, self.peak_sites, label
            )
        return GridInputs(reserves=reserves, events=events, peak=peak)


def parse_grid(value: object, site_codes: Sequence[str]) -> WorldGrid:
    """``$.grid`` of an energyarb world; every error names the JSON path."""
    from .history import to_utc  # history and worlds import this module
    from .worlds import BacktestInputError, _array, _choice, _integer, _number, _object, _string

    root = _object(value, "$.grid", optional=("reserves", "events", "coincident_peak"))

    def site(item: object, where: str) -> str:
        return _choice(item, where, tuple(site_codes))

    def moment(item: object, where: str) -> datetime:
        try:
            return to_utc(datetime.fromisoformat(_string(item, where).replace("Z", "+00:00")))
        except ValueError:
            raise BacktestInputError(f"{where}: not an ISO 8601 time: {item!r}") from None

    def window(spec: dict, where: str, value: float = 1.0) -> Window:
        start, end = moment(spec["start"], f"{where}.start"), moment(spec["end"], f"{where}.end")
        if end <= start:
            raise BacktestInputError(f"{where}.end: must be after its start")
        return Window(start, end, value)

    reserves = []
    for i, item in enumerate(_array(root.get("reserves", []), "$.grid.reserves")):
        where = f"$.grid.reserves[{i}]"
        spec = _object(item, where, required=("product", "site", "max_kw", "price_usd_per_mw_h"), optional=())
        reserves.append(
            (
                _choice(spec["product"], f"{where}.product", tuple(RESPONSE_S)),
                site(spec["site"], f"{where}.site"),
                _number(spec["max_kw"], f"{where}.max_kw", minimum=0),
                _number(spec["price_usd_per_mw_h"], f"{where}.price_usd_per_mw_h", minimum=0),
            )
        )
    events = []
    event_keys = ("id", "site", "start", "end", "baseline_kw", "reduction_kw")
    for i, item in enumerate(_array(root.get("events", []), "$.grid.events")):
        where = f"$.grid.events[{i}]"
        spec = _object(item, where, required=event_keys, optional=("payment_usd_per_mwh", "penalty_usd_per_mwh"))
        events.append(
            WorldEvent(
                id=_string(spec["id"], f"{where}.id"),
                site=site(spec["site"], f"{where}.site"),
                window=window(spec, where),
                baseline_kw=_number(spec["baseline_kw"], f"{where}.baseline_kw", minimum=0),
                reduction_kw=_number(spec["reduction_kw"], f"{where}.reduction_kw", minimum=0),
                payment_usd_per_mwh=_number(spec.get("payment_usd_per_mwh", 0), f"{where}.payment_usd_per_mwh", 0),
                penalty_usd_per_mwh=_number(spec.get("penalty_usd_per_mwh", 0), f"{where}.penalty_usd_per_mwh", 0),
            )
        )
    grid = WorldGrid(reserves=tuple(reserves), events=tuple(events))
    if "coincident_peak" not in root:
        return grid
    where = "$.grid.coincident_peak"
    spec = _object(
        root["coincident_peak"],
        where,
        required=("sites", "rate_usd_per_kw_year", "intervals"),
        optional=("peaks_per_year",),
    )
    intervals = []
    for i, item in enumerate(_array(spec["intervals"], f"{where}.intervals")):
        at = f"{where}.intervals[{i}]"
        part = _object(item, at, required=("start", "end", "probability"), optional=())
        intervals.append(window(part, at, _number(part["probability"], f"{at}.probability", 0, maximum=1)))
    return WorldGrid(
        reserves=grid.reserves,
        events=grid.events,
        peak_sites=tuple(
            site(s, f"{where}.sites[{i}]") for i, s in enumerate(_array(spec["sites"], f"{where}.sites", 1))
        ),
        peak_rate_usd_per_kw_year=_number(spec["rate_usd_per_kw_year"], f"{where}.rate_usd_per_kw_year", minimum=0),
        peaks_per_year=_integer(spec.get("peaks_per_year", 4), f"{where}.peaks_per_year", minimum=1),
        peak_intervals=tuple(intervals),
    )
