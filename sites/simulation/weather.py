"""Outdoor temperature simulator, plus the clock and random-stream helpers shared by the simulators.

Pure numpy (no Django): temperatures in degrees Celsius at regular UTC intervals, built from
a seasonal cycle (inverted in the southern hemisphere), a daily cycle peaking at 15:00 local
time, persistent weather anomalies (two AR(1) processes, so an hour looks like the hour before
it, never memoryless noise) and optional heat waves added as smooth bumps.

The helpers at the top (UTC grid, local calendar, seeded streams, AR(1) filter) are also used
by ``prices.py``; they live here so the package keeps one module per simulated quantity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
from scipy.signal import lfilter

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.2425

# ---------------------------------------------------------------------------------------------
# Shared helpers: time grid, local calendar, random streams, AR(1)
# ---------------------------------------------------------------------------------------------


def utc_seconds(start: datetime, periods: int, step_minutes: int = 5) -> np.ndarray:
    """Unix seconds (int64) of ``periods`` interval starts from ``start`` every ``step_minutes``.

    ``start`` must be timezone-aware (any zone) and lie on the step grid counted from the Unix
    epoch (for 5-minute steps: hh:00, hh:05, ...; see ``floor_to_step``). The grid is what makes
    every simulator window-invariant: a window is a slice of one realisation per seed.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be a timezone-aware datetime")
    if periods < 0:
        raise ValueError("periods must be >= 0")
    if step_minutes <= 0 or int(step_minutes) != step_minutes:
        raise ValueError("step_minutes must be a positive whole number")
    step_s = int(step_minutes) * 60
    start_s = start.astimezone(UTC).timestamp()
    if start_s % step_s:
        raise ValueError(f"start {start.isoformat()} is not on the {step_minutes}-minute grid; use floor_to_step()")
    return int(start_s) + np.arange(periods, dtype=np.int64) * step_s


def floor_to_step(moment: datetime, step_minutes: int = 5) -> datetime:
    """The interval start (aware, UTC) containing ``moment`` on the ``step_minutes`` grid."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be a timezone-aware datetime")
    step_s = int(step_minutes) * 60
    return datetime.fromtimestamp(int(moment.timestamp() // step_s) * step_s, UTC)


def simulation_timestamps(start: datetime, periods: int, step_minutes: int = 5) -> np.ndarray:
    """UTC interval starts as ``datetime64[s]``, aligned with every simulator's output array."""
    return utc_seconds(start, periods, step_minutes).astype("datetime64[s]")


def utc_offsets_seconds(utc_s: np.ndarray, time_zone: str) -> np.ndarray:
    """UTC offset (seconds, DST included) of ``time_zone`` at each Unix timestamp.

    zoneinfo is asked once per distinct UTC day and at the start of the following day (~370
    calls for a year), not per point. A day whose offset differs at its start and at the next
    day's start contains a transition: its points are then evaluated one by one, which also
    covers half-hour transitions (e.g. Australia/Lord_Howe). Assumes at most one transition
    per UTC day, as in every real zone.
    """
    tz = ZoneInfo(time_zone)
    utc_s = np.asarray(utc_s, dtype=np.int64)
    if utc_s.size == 0:
        return np.zeros(0)

    def offsets_at(seconds: np.ndarray) -> np.ndarray:
        return np.fromiter(
            (_utc_offset_s(datetime.fromtimestamp(int(s), tz)) for s in seconds),
            dtype=float,
            count=len(seconds),
        )

    days = utc_s // SECONDS_PER_DAY
    unique_days, inverse = np.unique(days, return_inverse=True)
    at_start = offsets_at(unique_days * SECONDS_PER_DAY)
    at_next_start = offsets_at((unique_days + 1) * SECONDS_PER_DAY)
    result = at_start[inverse]
    for k in np.nonzero(at_start != at_next_start)[0]:  # about two days a year in DST zones
        mask = days == unique_days[k]
        result[mask] = offsets_at(utc_s[mask])
    return result


@dataclass(frozen=True)
class LocalCalendar:
    """Local wall-clock fields of each timestamp in one time zone (vectorized)."""

    hour: np.ndarray  # local hour of day as a float in [0, 24), e.g. 15.5 = 15:30
    day_of_year: np.ndarray  # 0-based local day of the year (0 = 1 January)
    weekday: np.ndarray  # local weekday, Monday = 0 ... Sunday = 6


def local_calendar(utc_s: np.ndarray, time_zone: str) -> LocalCalendar:
    """Convert Unix seconds to local hour, day of year and weekday in ``time_zone``.

    DST is honoured because every timestamp gets its own offset (``utc_offsets_seconds``).
    Fixed offsets can be expressed with IANA ``Etc/GMT-8`` (= UTC+8; the sign is inverted).
    """
    local_s = np.asarray(utc_s, dtype=np.int64) + utc_offsets_seconds(utc_s, time_zone).astype(np.int64)
    days = local_s // SECONDS_PER_DAY
    hour = (local_s - days * SECONDS_PER_DAY) / 3600.0
    dates = days.astype("datetime64[D]")
    day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    return LocalCalendar(hour=hour, day_of_year=day_of_year, weekday=weekday)


def stream_rng(seed: int, *keys: str) -> np.random.Generator:
    """An independent numpy Generator for ``seed`` and a text key (purpose, site code, block).

    Uses BLAKE2b of the key, so streams are stable across processes and Python versions
    (Python's ``hash()`` is salted per process and must not be used). Adding a site to a fleet
    therefore never changes another site's series.
    """
    key = "|".join([str(int(seed)), *keys]).encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


# Random numbers are drawn in blocks of BLOCK_STEPS grid steps, each keyed by (seed, purpose,
# step, absolute block number), so the draw for a given instant never depends on the window
# asked for. AR(1) memory is truncated once phi^k < AR1_MEMORY_CUTOFF (a 1e-9 relative error).
BLOCK_STEPS = 2048
AR1_MEMORY_CUTOFF = 1e-9


def grid_index(utc_s: np.ndarray, step_minutes: int) -> int:
    """Absolute grid index (steps since the Unix epoch) of the first timestamp."""
    return int(utc_s[0]) // (int(step_minutes) * 60) if len(utc_s) else 0


def keyed_draws(
    seed: int,
    key: tuple[str, ...],
    step_minutes: int,
    first_index: int,
    count: int,
    student_t_df: float | None = None,
) -> np.ndarray:
    """Unit-variance draws for absolute grid indices [first_index, first_index + count).

    Standard normal, or Student-t scaled to unit variance when ``student_t_df`` (> 2) is given.
    """
    if count <= 0:
        return np.zeros(0)
    first_block = first_index // BLOCK_STEPS
    last_block = (first_index + count - 1) // BLOCK_STEPS
    blocks = []
    for block in range(first_block, last_block + 1):
        rng = stream_rng(seed, *key, f"{step_minutes}m", str(block))
        if student_t_df is None:
            blocks.append(rng.standard_normal(BLOCK_STEPS))
        else:
            scale = np.sqrt(student_t_df / (student_t_df - 2.0))
            blocks.append(rng.standard_t(student_t_df, BLOCK_STEPS) / scale)
    offset = first_index - first_block * BLOCK_STEPS
    return np.concatenate(blocks)[offset : offset + count]


def ar1_phi(step_minutes: float, timescale_minutes: float) -> float:
    """AR(1) coefficient for an e-folding ``timescale_minutes`` sampled every ``step_minutes``."""
    return float(np.exp(-step_minutes / timescale_minutes))


def persistent_noise(
    seed: int,
    key: tuple[str, ...],
    step_minutes: int,
    first_index: int,
    count: int,
    timescale_minutes: float,
    student_t_df: float | None = None,
) -> np.ndarray:
    """Stationary unit-variance AR(1) x[k] = phi x[k-1] + sqrt(1 - phi^2) e[k] on the absolute grid.

    phi = exp(-step / timescale). The filter starts ``warmup`` steps before the window, with
    phi^warmup < AR1_MEMORY_CUTOFF, so the value at an instant is the same whatever window
    contains it. Runs in C via ``scipy.signal.lfilter`` (~2 ms per 100,000 points).
    """
    phi = ar1_phi(step_minutes, timescale_minutes)
    warmup = int(np.ceil(np.log(AR1_MEMORY_CUTOFF) / np.log(phi))) if 0 < phi < 1 else 0
    shocks = keyed_draws(seed, key, step_minutes, first_index - warmup, warmup + count, student_t_df)
    if count <= 0:
        return np.zeros(0)
    return lfilter([np.sqrt(1.0 - phi * phi)], [1.0, -phi], shocks)[warmup:]


def circular_bump(hour: np.ndarray, center: float, width: float) -> np.ndarray:
    """Gaussian bump (height 1) in hour of day, wrapping at midnight; width in hours (sigma)."""
    distance = (np.asarray(hour) - center + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (distance / width) ** 2)


# ---------------------------------------------------------------------------------------------
# Climate profiles
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClimateZoneParameters:
    """Rules of thumb for deriving a ClimateProfile from latitude (see ``derive_climate_profile``)."""

    mean_offset_c: float  # added to the latitude rule for the annual mean, degC
    seasonal_c_per_degree_lat: float  # seasonal amplitude per degree of |latitude|, degC
    daily_amplitude_c: float  # half the typical day-night range, degC
    anomaly_sd_c: float  # standard deviation of weather anomalies, degC


# Keys are the ``sites.choices.ClimateZone`` values.
CLIMATE_ZONES: dict[str, ClimateZoneParameters] = {
    "subarctic": ClimateZoneParameters(1.0, 0.13, 3.0, 3.5),  # maritime subarctic, as Reykjavik
    "oceanic": ClimateZoneParameters(1.0, 0.11, 3.5, 2.5),
    "continental": ClimateZoneParameters(0.0, 0.19, 5.0, 3.5),
    "humid_subtropical": ClimateZoneParameters(0.0, 0.25, 5.0, 3.0),
    "mediterranean": ClimateZoneParameters(-3.0, 0.27, 7.0, 2.5),
    "tropical": ClimateZoneParameters(0.0, 0.05, 3.5, 1.0),
    "arid": ClimateZoneParameters(2.0, 0.30, 8.0, 3.0),
}


SOUTHERN_SEASONAL_DAMPING = 0.7  # southern mid-latitudes: more ocean, smaller seasonal swing


DESIGN_ANOMALY_SDS = 2.0  # see ClimateProfile.design_temperature_c


@dataclass(frozen=True)
class ClimateProfile:
    """The climate of one site: what the temperature simulator needs."""

    latitude: float  # degrees north; negative = southern hemisphere (seasons inverted)
    climate_zone: str  # a CLIMATE_ZONES key
    annual_mean_c: float  # degC
    seasonal_amplitude_c: float  # half the difference between warmest and coldest month, degC
    daily_amplitude_c: float  # half the day-night range, degC
    time_zone: str  # IANA name; the daily cycle follows local solar-ish time
    anomaly_sd_c: float = 3.0  # standard deviation of persistent weather anomalies, degC

    @property
    def design_temperature_c(self) -> float:
        """A hot design day: the warmest month's afternoon plus DESIGN_ANOMALY_SDS standard deviations of weather
        anomaly (exceeded a few percent of summer afternoons); what capacity promised for months must survive."""
        return (
            self.annual_mean_c
            + self.seasonal_amplitude_c
            + self.daily_amplitude_c
            + DESIGN_ANOMALY_SDS * self.anomaly_sd_c
        )


def derive_climate_profile(*, latitude: float, climate_zone: str, time_zone: str) -> ClimateProfile:
    """A plausible ClimateProfile from latitude and climate zone alone.

    annual mean = 28 - 0.5 * max(0, |lat| - 15) + zone offset (degC); seasonal amplitude =
    zone rate * |lat| (x 0.7 south of the equator, where oceans damp the seasons; at least
    0.8 degC). Within ~2-3 degC of climate normals for the ten
    reference sites; pass explicit values to ``ClimateProfile`` when better data is known.
    """
    try:
        zone = CLIMATE_ZONES[climate_zone]
    except KeyError:
        raise ValueError(f"unknown climate zone {climate_zone!r}; expected one of {sorted(CLIMATE_ZONES)}") from None
    abs_lat = abs(latitude)
    return ClimateProfile(
        latitude=latitude,
        climate_zone=climate_zone,
        annual_mean_c=28.0 - 0.5 * max(0.0, abs_lat - 15.0) + zone.mean_offset_c,
        seasonal_amplitude_c=max(
            0.8, zone.seasonal_c_per_degree_lat * abs_lat * (1.0 if latitude >= 0 else SOUTHERN_SEASONAL_DAMPING)
        ),
        daily_amplitude_c=zone.daily_amplitude_c,
        time_zone=time_zone,
        anomaly_sd_c=zone.anomaly_sd_c,
    )


@dataclass(frozen=True)
class HeatWave:
    """An injected heat wave (or cold snap, with a negative delta) between two aware datetimes.

    The bump is 0 outside [start, end], rises over ``ramp_hours`` with a raised cosine, holds
    ``delta_c`` and falls back over ``ramp_hours`` before ``end`` (ramps shrink to half the
    window for short events), so temperatures change inside the window only.
    """

    start: datetime
    end: datetime
    delta_c: float  # degC added at the plateau
    ramp_hours: float = field(default=12.0)


# Weather anomaly persistence (see docs/simulation.md): a synoptic component (weather systems,
# e-folding 60 h, phi_hour = exp(-1/60) = 0.983) carries 85 % of the anomaly variance and a fast
# component (clouds, showers, e-folding 3 h, phi_hour = exp(-1/3) = 0.717) the other 15 %.
SYNOPTIC_TIMESCALE_HOURS = 60.0
FAST_TIMESCALE_HOURS = 3.0
SYNOPTIC_VARIANCE_SHARE = 0.85
DAILY_PEAK_HOUR = 15.0  # local time of the daily maximum
COLDEST_DAY_OF_YEAR = 15  # mid-January in the north (mid-July in the south)


def heat_wave_bump(utc_s: np.ndarray, heat_wave: HeatWave) -> np.ndarray:
    """Temperature added by one heat wave at each Unix second (degC)."""
    start_s = heat_wave.start.astimezone(UTC).timestamp()
    end_s = heat_wave.end.astimezone(UTC).timestamp()
    if end_s <= start_s:
        raise ValueError("heat wave end must be after its start")
    ramp_s = min(heat_wave.ramp_hours * 3600.0, (end_s - start_s) / 2.0)
    t = np.asarray(utc_s, dtype=float)
    rise = np.clip((t - start_s) / ramp_s, 0.0, 1.0) if ramp_s > 0 else (t >= start_s) * 1.0
    fall = np.clip((end_s - t) / ramp_s, 0.0, 1.0) if ramp_s > 0 else (t <= end_s) * 1.0
    envelope = np.minimum(rise, fall)
    # Raised cosine: 0 -> 1 with zero slope at both ends of each ramp.
    return heat_wave.delta_c * 0.5 * (1.0 - np.cos(np.pi * envelope))


def simulate_temperatures(
    profile: ClimateProfile,
    start: datetime,
    periods: int,
    step_minutes: int = 5,
    *,
    seed: int,
    heat_waves: list[HeatWave] | tuple[HeatWave, ...] = (),
    stream: str = "",
) -> np.ndarray:
    """Outdoor temperature (degC) at each interval start; deterministic for a given seed.

    T = annual mean
        + seasonal amplitude * -cos(2 pi (day - 15) / 365.24)   (inverted south of the equator)
        + daily amplitude * cos(2 pi (local hour - 15) / 24)
        + anomaly (synoptic AR(1) + fast AR(1), sd = profile.anomaly_sd_c)
        + heat-wave bumps.
    ``stream`` separates sites that share a seed (pass the site code).
    """
    utc_s = utc_seconds(start, periods, step_minutes)
    climatology_c = _climatology(profile, utc_s)

    # Sites sharing a seed get distinct anomalies through their latitude/zone (and ``stream``).
    key = ("weather", stream, f"{profile.latitude:.4f}", profile.time_zone)
    first = grid_index(utc_s, step_minutes)
    synoptic = persistent_noise(seed, (*key, "synoptic"), step_minutes, first, periods, SYNOPTIC_TIMESCALE_HOURS * 60)
    fast = persistent_noise(seed, (*key, "fast"), step_minutes, first, periods, FAST_TIMESCALE_HOURS * 60)
    anomaly_c = profile.anomaly_sd_c * (
        np.sqrt(SYNOPTIC_VARIANCE_SHARE) * synoptic + np.sqrt(1 - SYNOPTIC_VARIANCE_SHARE) * fast
    )

    temperature_c = climatology_c + anomaly_c
    for heat_wave in heat_waves:
        temperature_c += heat_wave_bump(utc_s, heat_wave)
    return temperature_c


def expected_temperatures(profile: ClimateProfile, start: datetime, periods: int, step_minutes: int = 5) -> np.ndarray:
    """The deterministic part of ``simulate_temperatures`` (climatology, no anomaly), degC."""
    return _climatology(profile, utc_seconds(start, periods, step_minutes))


def _climatology(profile: ClimateProfile, utc_s: np.ndarray) -> np.ndarray:
    """Annual mean + seasonal cycle + daily cycle at each Unix second, degC."""
    calendar = local_calendar(utc_s, profile.time_zone)
    hemisphere = 1.0 if profile.latitude >= 0 else -1.0
    season_phase = 2.0 * np.pi * (calendar.day_of_year - COLDEST_DAY_OF_YEAR) / DAYS_PER_YEAR
    day_phase = 2.0 * np.pi * (calendar.hour - DAILY_PEAK_HOUR) / 24.0
    return (
        profile.annual_mean_c
        - hemisphere * profile.seasonal_amplitude_c * np.cos(season_phase)
        + profile.daily_amplitude_c * np.cos(day_phase)
    )


def _utc_offset_s(moment: datetime) -> float:
    """Seconds east of UTC of an aware datetime (zero for a naive one)."""
    offset = moment.utcoffset()
    return offset.total_seconds() if offset is not None else 0.0
