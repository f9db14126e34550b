"""Market price simulators: energy (USD/MWh), hashprice (USD per PH/s per day), inference.

Pure numpy (no Django), vectorized, deterministic for a given seed: every site and purpose gets
its own numpy Generator derived from the seed and a text key by BLAKE2b (``stream_rng``), so a
site's series does not depend on which other sites are simulated with it.

Energy price model (per site, at regular UTC intervals; details and measured statistics in
docs/simulation.md):

    price = base * multiplier * shape(local hour) * season(day) * week(weekday)
            * exp(noise - volatility^2 / 2)
    noise = volatility * (sqrt(0.6) slow + sqrt(0.4) fast) - coupling * surplus

``slow`` is a Gaussian AR(1) (e-folding 36 h: fuel/weather regimes), ``fast`` an AR(1) driven
by Student-t(4) shocks (e-folding 45 min: heavy-tailed, autocorrelated noise), ``surplus`` a
Gaussian AR(1) (e-folding 4 h) of renewable surplus. When ``surplus`` crosses an hour-dependent
threshold the price turns negative (down to the profile's floor); a Poisson process of
scarcity events raises the price to heavy-tailed heights, capped at ``spike_cap_usd_per_mwh``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from scipy.special import ndtri

from sites.catalogue import list_price_usd_per_mtok
from sites.simulation.weather import (
    BLOCK_STEPS,
    DAYS_PER_YEAR,
    LocalCalendar,
    circular_bump,
    grid_index,
    local_calendar,
    persistent_noise,
    stream_rng,
    utc_seconds,
)

MINUTES_PER_YEAR = DAYS_PER_YEAR * 24 * 60

# Energy noise and event constants (units in names; rationale in docs/simulation.md).
SLOW_TIMESCALE_MINUTES = 36 * 60  # e-folding of multi-day price regimes
FAST_TIMESCALE_MINUTES = 45  # e-folding of short-lived, heavy-tailed deviations
SURPLUS_TIMESCALE_MINUTES = 4 * 60  # e-folding of renewable surplus episodes
SLOW_VARIANCE_SHARE = 0.6  # share of log-price noise variance in the slow component
STUDENT_T_DF = 4  # degrees of freedom of fast shocks (variance df / (df - 2) = 2)
WEEKEND_FACTOR = 0.88  # weekend demand relative to weekdays
NEGATIVE_SHARE_PER_RENEWABLE = 0.12  # negative-interval share per unit renewable above 0.35
NEGATIVE_DEPTH_SCALE = 1.5  # surplus excess (in sd) for 63 % of the way to the floor
SPIKE_THRESHOLD_USD_PER_MWH = 250.0  # scarcity events start at this price
SPIKE_PARETO_ALPHA = 1.2  # tail index of spike heights (smaller = heavier)
SPIKE_MIN_MINUTES = 10.0  # every scarcity event lasts at least this long
SPIKE_MEAN_EXTRA_MINUTES = 35.0  # plus an exponential duration with this mean
SPIKE_MAX_MINUTES = 6 * 60  # durations are cut here (bounds how far back events are looked for)


@dataclass(frozen=True)
class GridRegion:
    """Market character of a grid region, used to derive site price profiles."""

    base_usd_per_mwh: float  # typical wholesale level before the site's cost multiplier
    volatility: float  # standard deviation of log-price noise
    spike_rate_per_year: float  # expected scarcity events per year
    negative_floor_usd_per_mwh: float  # lowest negative price (<= 0)
    negative_propensity: float  # scales how often renewable surplus drives prices negative
    solar_share: float  # 0..1, depth of the midday solar dip
    seasonal_amplitude: float  # relative amplitude of the yearly cycle
    summer_peak: bool  # True where air-conditioning load makes summer the expensive season
    settlement_minutes: int = 5  # length of one price interval of the market (5 = real-time dispatch)
    day_ahead: bool = False  # prices clear the day before delivery (known from the gate closure on)


# Market types: Nord Pool (NO1) and EPEX (DE-LU) clear day-ahead in 15-minute products (since 2025-10-01), JEPX
# (Tokyo) day-ahead in half hours; Singapore's USEP is a half-hourly real-time price; the others real-time.
# Keys are energyarb's grid-region codes (``Site.grid_region``, as in sites/catalogue.py).
GRID_REGIONS: dict[str, GridRegion] = {
    "IS-LANDSNET": GridRegion(55.0, 0.15, 2.0, -20.0, 0.2, 0.00, 0.10, False),  # Iceland
    "CA-BC": GridRegion(55.0, 0.25, 3.0, -30.0, 0.3, 0.03, 0.08, False),  # British Columbia
    "NO1": GridRegion(60.0, 0.35, 4.0, -50.0, 0.4, 0.03, 0.20, False, 15, True),  # Nord Pool, Oslo
    "SG-USEP": GridRegion(60.0, 0.30, 8.0, -20.0, 0.0, 0.08, 0.03, True, 30),  # Singapore
    # ERCOT, DE-LU and NEM-NSW are calibrated against real prices (bench/calibration.py, docs/simulation.md).
    "ERCOT": GridRegion(22.0, 0.78, 70.0, -60.0, 5.0, 0.35, 0.15, True),  # Texas, real-time hub average 2024
    "IE-SEM": GridRegion(85.0, 0.40, 10.0, -80.0, 1.0, 0.05, 0.12, False),  # Ireland
    "JP-TOKYO": GridRegion(70.0, 0.35, 10.0, -20.0, 0.0, 0.25, 0.10, True, 30, True),  # JEPX Tokyo
    "NEM-NSW": GridRegion(115.0, 0.15, 25.0, -100.0, 3.5, 0.55, 0.0, True),  # NEM NSW1, September 2022 only
    "CL-SEN": GridRegion(65.0, 0.45, 6.0, -50.0, 1.0, 0.60, 0.05, False),  # Chile
    "DE-LU": GridRegion(72.0, 0.28, 8.0, -100.0, 3.5, 0.45, 0.15, False, 15, True),  # EPEX DE-LU day-ahead, H1 2024
    "generic": GridRegion(60.0, 0.35, 10.0, -50.0, 1.0, 0.20, 0.10, False),
}

# Fallback when a site's grid region is not in GRID_REGIONS.
TIME_ZONE_GRID_REGIONS: dict[str, str] = {
    "Atlantic/Reykjavik": "IS-LANDSNET",
    "America/Vancouver": "CA-BC",
    "Europe/Oslo": "NO1",
    "Asia/Singapore": "SG-USEP",
    "America/Chicago": "ERCOT",
    "Europe/Dublin": "IE-SEM",
    "Asia/Tokyo": "JP-TOKYO",
    "Australia/Sydney": "NEM-NSW",
    "America/Santiago": "CL-SEN",
    "Europe/Berlin": "DE-LU",
}


@dataclass(frozen=True)
class SitePriceProfile:
    """Everything the energy price simulator needs to know about one site's market."""

    code: str  # site code; also keys the site's random stream
    time_zone: str  # IANA name; the daily shape follows local time, DST included
    latitude: float  # degrees north; the season is inverted south of the equator
    grid_region: str  # informative (a GRID_REGIONS key when derived)
    base_usd_per_mwh: float  # regional wholesale level, USD/MWh
    energy_cost_multiplier: float = 1.0  # site tariff factor applied to the regional level
    solar_share: float = 0.0  # 0..1: depth of the midday dip and timing of surplus
    renewable_share: float = 0.0  # 0..1: drives how often prices go negative
    volatility: float = 0.35  # sd of log-price noise
    spike_rate_per_year: float = 10.0  # expected scarcity events per year
    negative_floor_usd_per_mwh: float = -50.0  # lowest price, USD/MWh (<= 0)
    negative_propensity: float = 1.0  # market factor on the negative share (0 = never)
    seasonal_amplitude: float = 0.10  # relative yearly swing
    summer_peak: bool = False  # expensive season: summer (True) or winter (False)
    settlement_minutes: int = 5  # one price per this many minutes (block mean of the underlying 5-minute process)
    day_ahead: bool = False  # cleared the day before: known at the gate closure (DAY_AHEAD_GATE_CLOSURE_HOUR_UTC)

    def __post_init__(self) -> None:
        if self.settlement_minutes < 1 or 1440 % self.settlement_minutes:
            raise ValueError("settlement_minutes must divide a day")
        for name in ("solar_share", "renewable_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.base_usd_per_mwh <= 0 or self.energy_cost_multiplier <= 0:
            raise ValueError("base_usd_per_mwh and energy_cost_multiplier must be > 0")
        if self.negative_floor_usd_per_mwh > 0:
            raise ValueError("negative_floor_usd_per_mwh must be <= 0")
        if self.volatility < 0 or self.spike_rate_per_year < 0 or self.negative_propensity < 0:
            raise ValueError("volatility, spike_rate_per_year and negative_propensity must be >= 0")

    @property
    def target_negative_share(self) -> float:
        """Expected share of intervals with a negative price (0..0.15)."""
        excess = max(0.0, self.renewable_share - 0.35)
        share = self.negative_propensity * NEGATIVE_SHARE_PER_RENEWABLE * excess
        return float(min(share, 0.15))


def derive_site_price_profile(
    *,
    code: str,
    time_zone: str,
    latitude: float,
    renewable_share: float,
    energy_cost_multiplier: float = 1.0,
    grid_region: str | None = None,
) -> SitePriceProfile:
    """A SitePriceProfile from a site's facts, using its grid region's character.

    ``grid_region`` is looked up in GRID_REGIONS (case-insensitively); when it is missing or
    unknown the time zone's region (TIME_ZONE_GRID_REGIONS) is used, else ``generic``, whose
    solar share falls with latitude. The profile records the region actually used. Override
    any field afterwards with ``dataclasses.replace``.
    """
    known = {key.upper(): key for key in GRID_REGIONS}
    region_key = known.get((grid_region or "").upper()) or TIME_ZONE_GRID_REGIONS.get(time_zone, "generic")
    region = GRID_REGIONS[region_key]
    character = asdict(region)  # GridRegion fields share SitePriceProfile's names
    if region_key == "generic":
        character["solar_share"] = 0.3 * max(0.0, 1.0 - abs(latitude) / 60.0)
    return SitePriceProfile(
        code=code,
        time_zone=time_zone,
        latitude=latitude,
        grid_region=region_key,
        energy_cost_multiplier=energy_cost_multiplier,
        renewable_share=renewable_share,
        **character,
    )


def _raw_daily_shape(hour: np.ndarray, solar_share: float) -> np.ndarray:
    """Relative demand-driven price by local hour before normalisation (dimensionless)."""
    return (
        1.0
        + 0.15 * circular_bump(hour, 8.0, 1.5)  # morning ramp
        + 0.45 * circular_bump(hour, 19.0, 2.0)  # evening peak
        - 0.25 * circular_bump(hour, 3.5, 3.0)  # night trough
        - 0.9 * solar_share * circular_bump(hour, 13.0, 2.5)  # midday solar dip
    )


def _by_minute_of_day(table: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Look up a 1,440-entry per-minute table at fractional local hours (whole minutes)."""
    return table[np.rint(np.asarray(hour) * 60.0).astype(np.int64) % 1440]


_MINUTES_OF_DAY_H = np.arange(1440) / 60.0  # local hour at each minute of the day


def daily_shape(hour: np.ndarray, solar_share: float) -> np.ndarray:
    """Price shape by local hour, normalised to a mean of 1 over the day (per-minute table)."""
    table = _raw_daily_shape(_MINUTES_OF_DAY_H, solar_share)
    return _by_minute_of_day(table / table.mean(), hour)


def _negative_hour_weights(hour: np.ndarray, solar_share: float) -> np.ndarray:
    """When surplus is likely (mean 1 over the day): solar at midday, wind at night."""
    h = _MINUTES_OF_DAY_H
    table = solar_share * circular_bump(h, 13.0, 2.5) + (1.0 - solar_share) * 0.6 * circular_bump(h, 3.0, 3.0) + 0.05
    return _by_minute_of_day(table / table.mean(), hour)


@dataclass(frozen=True)
class EnergyPriceSeries:
    """A simulated energy price series with the masks of its extreme events."""

    usd_per_mwh: np.ndarray  # price per interval, USD/MWh
    spike_mask: np.ndarray  # True where a scarcity event set the price
    negative_mask: np.ndarray  # True where renewable surplus made the price negative

    @property
    def spike_count(self) -> int:
        """Number of scarcity events (runs of consecutive spike intervals)."""
        return count_runs(self.spike_mask)


def count_runs(mask: np.ndarray) -> int:
    """Number of runs of consecutive True values in a boolean array."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return 0
    return int(mask[0]) + int(np.count_nonzero(mask[1:] & ~mask[:-1]))


def _demand_factor(profile: SitePriceProfile, calendar: LocalCalendar) -> np.ndarray:
    """Deterministic relative price level (daily shape x season x weekday), mean ~1."""
    shape = daily_shape(calendar.hour, profile.solar_share)
    peak_day = 15 if profile.summer_peak == (profile.latitude < 0) else 196  # mid-Jan or mid-Jul
    season_phase = 2.0 * np.pi * (calendar.day_of_year - peak_day) / DAYS_PER_YEAR
    season = 1.0 + profile.seasonal_amplitude * np.cos(season_phase)
    week = np.where(calendar.weekday >= 5, WEEKEND_FACTOR, 1.0) / ((5 + 2 * WEEKEND_FACTOR) / 7)
    return shape * season * week


def _spike_span(first: int, periods: int, step_minutes: int) -> tuple[int, int]:
    """Grid range [lo, hi) of whole spike blocks that can affect the window [first, first + periods).

    From the block holding the earliest event still running at the window start (events last
    at most SPIKE_MAX_MINUTES) through the end of the block holding the window's last step.
    """
    max_steps = int(np.ceil(SPIKE_MAX_MINUTES / step_minutes))
    lo = ((first - max_steps) // BLOCK_STEPS) * BLOCK_STEPS
    hi = ((first + periods - 1) // BLOCK_STEPS + 1) * BLOCK_STEPS
    return lo, hi


def _spike_prices(profile: SitePriceProfile, lo: int, demand: np.ndarray, step_minutes: int, seed: int) -> np.ndarray:
    """Scarcity-event prices (USD/MWh, 0 outside events) over the grid range starting at ``lo``.

    ``demand`` covers whole blocks of BLOCK_STEPS from ``lo``. Each block draws its own events
    from its own stream: a Poisson count, starts weighted by demand^4 (events favour peak
    hours), durations of 10 min + Exp(35 min) cut at 6 h, Pareto heights. A window therefore
    sees the same events whatever its bounds.
    """
    events_per_block = profile.spike_rate_per_year * BLOCK_STEPS * step_minutes / MINUTES_PER_YEAR
    values = np.zeros(len(demand))
    for offset in range(0, len(demand), BLOCK_STEPS):
        block = str((lo + offset) // BLOCK_STEPS)
        rng = stream_rng(seed, "energy-spikes", profile.code, f"{step_minutes}m", block)
        count = rng.poisson(events_per_block)
        if not count:
            continue
        weights = demand[offset : offset + BLOCK_STEPS] ** 4
        starts = offset + rng.choice(BLOCK_STEPS, size=count, p=weights / weights.sum())
        minutes = np.minimum(SPIKE_MIN_MINUTES + rng.exponential(SPIKE_MEAN_EXTRA_MINUTES, count), SPIKE_MAX_MINUTES)
        lengths = np.maximum(1, np.ceil(minutes / step_minutes)).astype(np.int64)
        heights = SPIKE_THRESHOLD_USD_PER_MWH * (1.0 + rng.pareto(SPIKE_PARETO_ALPHA, count))
        event = np.repeat(np.arange(count), lengths)
        index = starts[event] + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        # Within an event the price wobbles between 70 % and 100 % of its height.
        wobble = np.maximum(heights[event] * (0.7 + 0.3 * rng.random(index.size)), SPIKE_THRESHOLD_USD_PER_MWH)
        inside = index < len(values)
        np.maximum.at(values, index[inside], wobble[inside])
    return values


DAY_AHEAD_GATE_CLOSURE_HOUR_UTC = 10  # 12:00 CET / 11:00 local for EPEX and Nord Pool; JEPX closes at 10:00 JST


def day_ahead_known_until(moment: datetime, time_zone: str) -> datetime:
    """Until when a day-ahead market's prices are known at `moment`: the end of the next local day once that day's
    auction has closed (DAY_AHEAD_GATE_CLOSURE_HOUR_UTC), else the end of today (local)."""
    local = moment.astimezone(ZoneInfo(time_zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    closed = moment.astimezone(UTC).hour >= DAY_AHEAD_GATE_CLOSURE_HOUR_UTC
    days = 2 if closed else 1
    end = (midnight + timedelta(days=days)).replace(tzinfo=None)
    return end.replace(tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def simulate_energy_price_series(
    profile: SitePriceProfile,
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    spike_cap_usd_per_mwh: float = 5000.0,
) -> EnergyPriceSeries:
    """Energy prices (USD/MWh) plus spike/negative masks at the market's own settlement.

    A market that settles in intervals longer than the step (`profile.settlement_minutes`: 15-minute day-ahead
    products, half-hourly prices) holds one price per interval: the mean of the underlying process
    (`_underlying_series`) over it, on blocks aligned to the UTC epoch so that the series stays window-invariant.
    An interval is a spike (or negative) when its mean price is.
    """
    block = profile.settlement_minutes // step_minutes if profile.settlement_minutes % step_minutes == 0 else 1
    if block <= 1 or periods == 0:
        return _underlying_series(
            profile, start, periods, step_minutes, seed=seed, spike_cap_usd_per_mwh=spike_cap_usd_per_mwh
        )
    first = grid_index(utc_seconds(start, periods, step_minutes), step_minutes)
    lo, hi = (first // block) * block, -(-(first + periods) // block) * block
    aligned = datetime.fromtimestamp(lo * step_minutes * 60, UTC)
    raw = _underlying_series(
        profile, aligned, hi - lo, step_minutes, seed=seed, spike_cap_usd_per_mwh=spike_cap_usd_per_mwh
    )
    means = raw.usd_per_mwh.reshape(-1, block).mean(axis=1)
    spiky = raw.spike_mask.reshape(-1, block).any(axis=1) & (means >= SPIKE_THRESHOLD_USD_PER_MWH)
    window = slice(first - lo, first - lo + periods)
    return EnergyPriceSeries(
        usd_per_mwh=np.repeat(means, block)[window],
        spike_mask=np.repeat(spiky, block)[window],
        negative_mask=np.repeat(means < 0, block)[window],
    )


def _underlying_series(
    profile: SitePriceProfile,
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    spike_cap_usd_per_mwh: float = 5000.0,
) -> EnergyPriceSeries:
    """The underlying price process (USD/MWh) plus spike/negative masks; see the module docstring for the model.

    The base level times the cost multiplier scales the ordinary price; negative prices (down
    to the profile's floor) and scarcity spikes (from SPIKE_THRESHOLD_USD_PER_MWH up to the cap)
    are market extremes expressed directly in site USD/MWh. Window-invariant: the value at an
    instant does not depend on ``start`` or ``periods``.
    """
    if spike_cap_usd_per_mwh < SPIKE_THRESHOLD_USD_PER_MWH:
        raise ValueError(f"spike cap must be >= {SPIKE_THRESHOLD_USD_PER_MWH} USD/MWh")
    utc_s = utc_seconds(start, periods, step_minutes)
    first = grid_index(utc_s, step_minutes)
    spiky = profile.spike_rate_per_year > 0 and periods > 0
    # The calendar covers the spike blocks around the window too (whole blocks), sliced below.
    lo, hi = _spike_span(first, periods, step_minutes) if spiky else (first, first + periods)
    step_s = step_minutes * 60
    calendar = local_calendar(np.arange(lo, hi, dtype=np.int64) * step_s, profile.time_zone)
    extended_demand = _demand_factor(profile, calendar)
    window = slice(first - lo, first - lo + periods)
    demand, local_hour = extended_demand[window], calendar.hour[window]

    # Persistent noise: three unit-variance AR(1) processes on the absolute grid.
    code = profile.code
    slow = persistent_noise(seed, ("energy-slow", code), step_minutes, first, periods, SLOW_TIMESCALE_MINUTES)
    fast = persistent_noise(
        seed, ("energy-fast", code), step_minutes, first, periods, FAST_TIMESCALE_MINUTES, STUDENT_T_DF
    )
    surplus = persistent_noise(seed, ("energy-surplus", code), step_minutes, first, periods, SURPLUS_TIMESCALE_MINUTES)
    sigma = profile.volatility
    coupling = 0.25 * profile.renewable_share  # prices sag as surplus builds
    noise = sigma * (np.sqrt(SLOW_VARIANCE_SHARE) * slow + np.sqrt(1 - SLOW_VARIANCE_SHARE) * fast)
    noise = np.clip(noise - coupling * surplus, -3.0, 3.0)  # guard against t-tail blow-ups
    level = profile.base_usd_per_mwh * profile.energy_cost_multiplier  # USD/MWh
    prices = level * demand * np.exp(noise - 0.5 * (sigma**2 + coupling**2))

    # Negative prices: surplus above an hour-dependent threshold, set so that
    # P(surplus > threshold | hour) = target share * hour weight (surplus is N(0, 1)).
    negative_mask = np.zeros(periods, dtype=bool)
    if profile.target_negative_share > 0 and profile.negative_floor_usd_per_mwh < 0:
        weights = _negative_hour_weights(local_hour, profile.solar_share)
        probability = np.clip(profile.target_negative_share * weights, 0.0, 0.5)
        with np.errstate(divide="ignore"):
            threshold = ndtri(1.0 - probability)  # +inf where probability is 0
        excess = surplus - threshold
        negative_mask = excess > 0
        depth = 1.0 - np.exp(-excess[negative_mask] / NEGATIVE_DEPTH_SCALE)  # 0..1 of the floor
        prices[negative_mask] = profile.negative_floor_usd_per_mwh * depth

    # Scarcity spikes override ordinary and negative prices.
    spike_mask = np.zeros(periods, dtype=bool)
    if spiky:
        spikes = _spike_prices(profile, lo, extended_demand, step_minutes, seed)[window]
        spike_mask = spikes > 0
        prices[spike_mask] = np.maximum(prices[spike_mask], spikes[spike_mask])
        negative_mask &= ~spike_mask

    prices = np.clip(prices, profile.negative_floor_usd_per_mwh, spike_cap_usd_per_mwh)
    return EnergyPriceSeries(usd_per_mwh=prices, spike_mask=spike_mask, negative_mask=negative_mask)


def simulate_energy_prices(
    profile: SitePriceProfile,
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    spike_cap_usd_per_mwh: float = 5000.0,
) -> np.ndarray:
    """Energy price (USD/MWh) at each interval start; deterministic for (seed, profile.code)."""
    return simulate_energy_price_series(
        profile, start, periods, step_minutes, seed=seed, spike_cap_usd_per_mwh=spike_cap_usd_per_mwh
    ).usd_per_mwh


def simulate_fleet_prices(
    profiles: Sequence[SitePriceProfile],
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    spike_cap_usd_per_mwh: float = 5000.0,
) -> np.ndarray:
    """Energy prices for several sites, shape (len(profiles), periods), USD/MWh.

    Row i equals ``simulate_energy_prices(profiles[i], ...)`` with the same seed: each site has
    its own stream. A 10-site year of 5-minute data takes well under a second (see
    bench/simulation_stats.py).
    """
    result = np.empty((len(profiles), periods))
    for row, profile in enumerate(profiles):
        result[row] = simulate_energy_prices(
            profile, start, periods, step_minutes, seed=seed, spike_cap_usd_per_mwh=spike_cap_usd_per_mwh
        )
    return result


def simulate_hashprice(
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    level_usd_per_ph_day: float = 50.0,
    low: float = 35.0,
    high: float = 65.0,
    timescale_days: float = 14.0,
) -> np.ndarray:
    """Hashprice in USD per PH/s per day: a mean-reverting walk kept within [low, high].

    Ornstein-Uhlenbeck around ``level_usd_per_ph_day`` (e-folding ``timescale_days``, stationary
    sd (high - low) / 6, i.e. daily moves of ~2 USD), sampled exactly via AR(1) and reflected
    at the bounds (a triangle-wave fold keeps the path continuous and inside [low, high]).
    """
    if not low < level_usd_per_ph_day < high:
        raise ValueError("need low < level_usd_per_ph_day < high")
    first = grid_index(utc_seconds(start, periods, step_minutes), step_minutes)
    sd = (high - low) / 6.0  # USD per PH/s per day
    walk = level_usd_per_ph_day + sd * persistent_noise(
        seed, ("hashprice",), step_minutes, first, periods, timescale_days * 24 * 60
    )
    width = high - low
    folded = np.mod(walk - low, 2.0 * width)
    return low + np.where(folded <= width, folded, 2.0 * width - folded)


@dataclass(frozen=True)
class InferenceRegion:
    """A region of inference demand with its business-hours clock."""

    time_zone: str  # fixed-offset IANA zone (Etc/GMT-8 means UTC+8)
    peak_million_tokens_per_hour: float  # weekday business-hours peak


# Peaks are sized against the seeded fleet's inference capacity per region (APAC 450 GPU nodes ~19,400, Europe
# 520 ~22,500, Americas 330 ~14,300 million tokens/hour with every node running at 43.2 Mtok/h): at a region's
# peak about 60 % of its nodes find buyers, overnight about 12 %, so inference and mining really compete for
# power through the day.
INFERENCE_REGIONS: dict[str, InferenceRegion] = {
    "apac": InferenceRegion("Etc/GMT-8", 11800.0),  # UTC+8
    "europe": InferenceRegion("Etc/GMT-1", 13000.0),  # UTC+1
    "americas": InferenceRegion("Etc/GMT+6", 8600.0),  # UTC-6
}
INFERENCE_WEEKEND_FACTOR = 0.5  # weekend demand relative to weekdays
INFERENCE_PEAK_HOUR = 13.5  # local hour of peak demand (business hours 9-18)


def _business_activity(hour: np.ndarray) -> np.ndarray:
    """Share of peak demand by local hour: 20 % overnight, 100 % at 13:30."""
    return 0.2 + 0.8 * circular_bump(hour, INFERENCE_PEAK_HOUR, 3.2)


def simulate_inference_demand(
    start: datetime, periods: int, step_minutes: int = 5, *, seed: int
) -> dict[str, np.ndarray]:
    """Inference demand in million tokens per hour for 'apac', 'europe' and 'americas'.

    Each region follows its own business hours (peak 13:30 local: ~05:30 UTC in APAC,
    12:30 in Europe, 19:30 in the Americas), weekends at half, with AR(1) log noise (sd 0.08,
    e-folding 2 h).
    """
    utc_s = utc_seconds(start, periods, step_minutes)
    first = grid_index(utc_s, step_minutes)
    demand = {}
    for name, region in INFERENCE_REGIONS.items():
        calendar = local_calendar(utc_s, region.time_zone)
        week = np.where(calendar.weekday >= 5, INFERENCE_WEEKEND_FACTOR, 1.0)
        noise = 0.08 * persistent_noise(seed, ("inference", name), step_minutes, first, periods, 120.0)
        demand[name] = (
            region.peak_million_tokens_per_hour
            * _business_activity(calendar.hour)
            * week
            * np.exp(noise - 0.5 * 0.08**2)
        )
    return demand


LIST_PRICE_QUARTER_SD = 0.05  # log-sd of a quarter's list price around the level (providers reprice quarterly)
SECONDS_PER_QUARTER = DAYS_PER_YEAR / 4 * 86_400


def simulate_inference_price(
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    level_usd_per_million_tokens: float | None = None,
) -> np.ndarray:
    """Token list price in USD per million tokens: constant within a quarter, like a provider's price list.

    Serverless inference is sold on published list prices that change a few times a year, not with the hour
    (sites/catalogue.py SOURCES "token_prices"). The level is the list price of the fleet's model class
    (``sites.catalogue.list_price_usd_per_mtok()``, 0.88 for the 70B class); each quarter (of 365.2425 / 4 days
    from the Unix epoch) keeps it times exp(0.05 z - 0.05^2 / 2), z drawn per seed and quarter. What moves with
    the time of day is the demand (``simulate_inference_demand``), not the price.
    """
    if level_usd_per_million_tokens is None:
        level_usd_per_million_tokens = float(list_price_usd_per_mtok())
    utc_s = utc_seconds(start, periods, step_minutes)
    quarters = np.floor(utc_s / SECONDS_PER_QUARTER).astype(np.int64)
    factors = {
        int(q): float(
            np.exp(
                LIST_PRICE_QUARTER_SD * stream_rng(seed, "token-list-price", str(int(q))).standard_normal()
                - LIST_PRICE_QUARTER_SD**2 / 2
            )
        )
        for q in np.unique(quarters)
    }
    return level_usd_per_million_tokens * np.array([factors[int(q)] for q in quarters], dtype=float)
