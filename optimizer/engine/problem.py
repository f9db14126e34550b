"""Input dataclasses of the optimization engine: what the world looks like over the planning horizon.

Everything here is plain Python and numpy (no Django), so the engine can be called from a Django service, the
backtest, the benchmark and the tests alike. Per-period data are numpy arrays indexed ``[site, period]`` or
``[period]``; units are in the field names. ``Problem.__post_init__`` coerces and validates every array once, so
the formulation can trust shapes and ranges and an invalid input fails loudly with a ``ValueError`` naming the
field, instead of producing a silently wrong plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .grid import GridInputs

from .unit_commitment import UnitLimits

REGIONS = ("apac", "europe", "americas")
KINDS = ("miner", "inference")


@dataclass(frozen=True)
class Site:
    """A data center: its grid connection, its carbon profile and whether it may run at all."""

    code: str
    power_capacity_kw: float  # facility kW the grid connection allows (IT kW x PUE must stay below it)
    region: str  # 'apac' | 'europe' | 'americas': the inference demand it serves
    renewable_share: float = 0.0  # 0..1 of its energy that emits nothing
    grid_carbon_kg_per_mwh: float = 0.0  # emissions of the non-renewable share
    available: bool = True  # False = maintenance or offline: every unit there is held at zero


@dataclass(frozen=True)
class HardwareModel:
    """A machine type: its IT power draw and what one unit produces."""

    code: str
    kind: str  # 'miner' | 'inference'
    power_kw: float  # IT kW per running unit
    hashrate_th_s: float = 0.0  # miners: TH/s per unit
    tokens_per_s: float = 0.0  # inference: tokens per second per unit
    # Minutes a started unit draws power before it produces (a miner's boot, a GPU node's model load): each start
    # costs what the unit would have earned meanwhile, on top of the settings' switching cost (formulation.py).
    warmup_minutes: float = 0.0


@dataclass(frozen=True)
class Commitment:
    """An SLA contract: IT kW of inference hardware kept running for one customer.

    ``n_minus_1`` (Premium) asks for a placement that still serves ``capacity_kw`` after losing any single site;
    ``min_sites`` caps the share of any one site at ``capacity_kw / min_sites`` (N-1: ``capacity_kw / (min_sites -
    1)``, so that ``min_sites`` sites can carry it, as admission places it).
    """

    id: str | int
    tier: str
    capacity_kw: float
    price_usd_per_kwh: float  # revenue per committed kWh actually served
    penalty_usd_per_kwh: float  # credit owed per committed kWh not served (and per kWh short of N-1)
    n_minus_1: bool = False
    allowed_sites: tuple[str, ...] | None = None  # None = any site
    min_sites: int = 1
    # What a kWh short of N-1 costs in the objective (a steering price: the customer is served and owed nothing).
    # None = penalty_usd_per_kwh. The live optimizer holds N-1 as a term of Premium: half of what an unserved kWh
    # costs (price + penalty), far above a standby's energy, yet low enough that a contract whose N-1 cannot be
    # had is still served (docs/economics.md, "N-1").
    n_minus_1_usd_per_kwh: float | None = None

    @property
    def n_minus_1_price(self) -> float:
        return self.penalty_usd_per_kwh if self.n_minus_1_usd_per_kwh is None else self.n_minus_1_usd_per_kwh


@dataclass(frozen=True, eq=False)
class Market:
    """Market values per period, shared by every site."""

    hashprice_usd_per_ph_day: np.ndarray  # [T] USD per PH/s per day
    inference_price_usd_per_mtok: np.ndarray  # [T] USD per million tokens sold on the spot market
    # region -> [T] million tokens per hour the region will buy; a region left out has no limit.
    inference_demand_mtok_per_h: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """Economic knobs and solver controls of one run."""

    switching_cost_usd_per_unit: float = 0.0  # charged per unit started or stopped between periods
    carbon_price_usd_per_t: float = 0.0  # USD per tonne CO2 of non-renewable energy
    integer: bool = False  # True: integer unit counts (MILP), False: continuous (LP)
    mip_rel_gap: float = 0.001  # 0.1 % relative gap for the MILP
    ramp_limit_fraction: float | None = None  # max units started per period, as a fraction of inventory
    # max units started per hour, as a fraction of inventory: a period of h hours starts at most max(f x inv x h, 1)
    ramp_limit_fraction_per_hour: float | None = None
    time_limit_s: float = 60.0
    # Share of the warm-up a rolling plan also charges each stop (starts.py): a stop makes the next warm-up
    # necessary, which a horizon of held forecasts never shows.
    stop_warmup_share: float = 0.0


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything one solve needs. Arrays: S sites, H hardware models, T periods."""

    sites: tuple[Site, ...]
    hardware: tuple[HardwareModel, ...]
    inventory_units: np.ndarray  # [S, H] units installed at each site
    period_hours: np.ndarray  # [T] duration of each period (fine near term, coarse later)
    pue: np.ndarray  # [S, T] facility kW per IT kW (>= 1) of the site's own hall
    energy_price_usd_per_mwh: np.ndarray  # [S, T] may be negative: then running load earns money
    market: Market
    commitments: tuple[Commitment, ...] = ()
    previous_units: np.ndarray | None = None  # [S, H] allocation running now (switching cost, ramp)
    settings: Settings = field(default_factory=Settings)
    period_starts: tuple[datetime, ...] | None = None  # for explanations only
    unit_limits: UnitLimits | None = None  # what dispatch may do (minimum on/off, restart caps): unit_commitment.py
    grid: GridInputs | None = None  # grid.GridInputs: reserves, event caps, coincident peaks (optimizer/engine/grid.py)
    hall_pue: np.ndarray | None = None  # [S, H, T] PUE of each machine's hall; None = the site's pue (halls.py)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: coerce once, here
        set_(self, "sites", tuple(self.sites))
        set_(self, "hardware", tuple(self.hardware))
        set_(self, "commitments", tuple(self.commitments))
        n_sites, n_hw = len(self.sites), len(self.hardware)
        hours = _array("period_hours", self.period_hours, None)
        n_periods = hours.shape[0] if hours.ndim == 1 else -1
        if hours.ndim != 1 or n_periods == 0 or np.any(hours <= 0):
            raise ValueError("period_hours must be a non-empty 1-D array of positive durations")
        set_(self, "period_hours", hours)
        set_(self, "inventory_units", _array("inventory_units", self.inventory_units, (n_sites, n_hw)))
        set_(self, "pue", _array("pue", self.pue, (n_sites, n_periods)))
        if self.hall_pue is not None:
            set_(self, "hall_pue", _array("hall_pue", self.hall_pue, (n_sites, n_hw, n_periods)))
        prices = _array("energy_price_usd_per_mwh", self.energy_price_usd_per_mwh, (n_sites, n_periods))
        set_(self, "energy_price_usd_per_mwh", prices)
        if self.previous_units is not None:
            set_(self, "previous_units", _array("previous_units", self.previous_units, (n_sites, n_hw)))
            if np.any(self.previous_units < 0):
                raise ValueError("previous_units must be >= 0")
        market = self.market
        demand = {
            region: _array(f"inference_demand_mtok_per_h[{region}]", values, (n_periods,))
            for region, values in dict(market.inference_demand_mtok_per_h).items()
        }
        set_(
            self,
            "market",
            Market(
                hashprice_usd_per_ph_day=_array(
                    "hashprice_usd_per_ph_day", market.hashprice_usd_per_ph_day, (n_periods,)
                ),
                inference_price_usd_per_mtok=_array(
                    "inference_price_usd_per_mtok", market.inference_price_usd_per_mtok, (n_periods,)
                ),
                inference_demand_mtok_per_h=demand,
            ),
        )
        self._validate(demand)

    def _validate(self, demand: Mapping[str, np.ndarray]) -> None:
        codes = [s.code for s in self.sites]
        if not codes or len(set(codes)) != len(codes):
            raise ValueError("sites must be non-empty with unique codes")
        hw_codes = [h.code for h in self.hardware]
        if not hw_codes or len(set(hw_codes)) != len(hw_codes):
            raise ValueError("hardware must be non-empty with unique codes")
        for site in self.sites:
            if site.region not in REGIONS:
                raise ValueError(f"site {site.code}: region must be one of {REGIONS}")
            if site.power_capacity_kw < 0 or not 0 <= site.renewable_share <= 1 or site.grid_carbon_kg_per_mwh < 0:
                raise ValueError(f"site {site.code}: capacity, renewable share or carbon intensity out of range")
        for hw in self.hardware:
            outputs = (hw.hashrate_th_s, hw.tokens_per_s, hw.warmup_minutes)
            if hw.kind not in KINDS or hw.power_kw <= 0 or min(outputs) < 0:
                raise ValueError(f"hardware {hw.code}: kind must be in {KINDS} and outputs/power positive")
        if np.any(self.inventory_units < 0):
            raise ValueError("inventory_units must be >= 0")
        if np.any(self.pue < 1) or (self.hall_pue is not None and np.any(self.hall_pue < 1)):
            raise ValueError("pue and hall_pue must be >= 1")
        if np.any(self.market.hashprice_usd_per_ph_day < 0) or np.any(self.market.inference_price_usd_per_mtok < 0):
            raise ValueError("hashprice and inference price must be >= 0")
        for region, values in demand.items():
            if region not in REGIONS or np.any(values < 0):
                raise ValueError(f"inference demand: unknown region {region!r} or negative demand")
        ids = [str(c.id) for c in self.commitments]
        if len(set(ids)) != len(ids):
            raise ValueError("commitment ids must be unique")
        for c in self.commitments:
            if (
                c.capacity_kw < 0
                or min(c.price_usd_per_kwh, c.penalty_usd_per_kwh, c.n_minus_1_price) < 0
                or c.min_sites < 1
            ):
                raise ValueError(f"commitment {c.id}: capacity, price, penalty must be >= 0 and min_sites >= 1")
            unknown = set(c.allowed_sites or ()) - set(codes)
            if unknown:
                raise ValueError(f"commitment {c.id}: unknown allowed sites {sorted(unknown)}")
        settings = self.settings
        for ramp in (settings.ramp_limit_fraction, settings.ramp_limit_fraction_per_hour):
            if ramp is not None and ramp < 0:
                raise ValueError("ramp_limit_fraction and ramp_limit_fraction_per_hour must be >= 0")
        if not 0.0 <= settings.stop_warmup_share <= 1.0:
            raise ValueError("stop_warmup_share must be between 0 and 1")
        if settings.switching_cost_usd_per_unit < 0 or settings.carbon_price_usd_per_t < 0:
            raise ValueError("switching cost and carbon price must be >= 0")

    @cached_property
    def site_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.sites)

    @cached_property
    def hardware_codes(self) -> tuple[str, ...]:
        return tuple(h.code for h in self.hardware)

    @cached_property
    def carbon_t_per_mwh(self) -> np.ndarray:
        """[S] tonnes of CO2 per facility MWh drawn at each site: (1 - renewable share) x grid kg/MWh / 1000."""
        return np.array([(1.0 - s.renewable_share) * s.grid_carbon_kg_per_mwh / 1000.0 for s in self.sites])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(S sites, H hardware models, T periods)."""
        return len(self.sites), len(self.hardware), self.period_hours.shape[0]


def _array(name: str, values: object, shape: tuple[int, ...] | None) -> np.ndarray:
    array = np.array(values, dtype=np.float64)  # a copy: the caller's arrays stay theirs
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if np.any(np.isnan(array)):
        raise ValueError(f"{name} contains NaN")
    array.flags.writeable = False
    return array


def rolling_periods(
    start: datetime,
    *,
    fine_steps: int = 12,
    fine_minutes: int = 5,
    horizon_hours: float = 24.0,
    coarse_hours: float = 1.0,
) -> tuple[np.ndarray, tuple[datetime, ...]]:
    """Periods of a rolling horizon: ``fine_steps`` steps of ``fine_minutes`` near term, then coarse steps.

    The fine steps are the decisions about to be applied; the coarse tail only has to be good enough to value
    switching and ramping correctly, so it is cheap. Returns ``(period_hours[T], period_starts)``; the last coarse
    period is shortened so the horizon ends exactly at ``start + horizon_hours``.
    """
    hours: list[float] = [fine_minutes / 60.0] * fine_steps
    remaining = horizon_hours - sum(hours)
    while remaining > 1e-9:
        step = min(coarse_hours, remaining)
        hours.append(step)
        remaining -= step
    starts: list[datetime] = []
    elapsed = 0.0
    for h in hours:
        starts.append(start + timedelta(hours=elapsed))
        elapsed += h
    return np.array(hours), tuple(starts)


def index_of(codes: Sequence[str], code: str) -> int:
    """Position of ``code`` in ``codes``, with a clear error for an unknown code."""
    try:
        return list(codes).index(code)
    except ValueError:
        raise KeyError(f"unknown code {code!r}") from None
