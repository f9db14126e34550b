"""Client of an Open-Meteo-style forecast API: hourly air temperature at a point.

One request per site::

    GET {WEATHER_API_URL}/v1/forecast?latitude=59.9139&longitude=10.7522&hourly=temperature_2m
        &temperature_unit=celsius&past_days=1&forecast_days=1&timezone=UTC
    -> {"utc_offset_seconds": 0,
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C"},
        "hourly": {"time": ["2026-11-25T00:00", ...], "temperature_2m": [3.1, ...]}}

``past_days=1&forecast_days=1`` covers yesterday and today (48 hours): a worker that was down for a day fills the
gap on its next run. The answer includes forecast hours; the caller keeps those not in the future
(``sites.services.refresh_weather``).

Validation, all or nothing (one bad field rejects the whole answer with ``SourceDataError``, so a caller never
stores half of it):

- ``hourly.time`` and ``hourly.temperature_2m`` are lists of the same length; times are ISO 8601 hours, read as
  UTC (we ask for ``timezone=UTC``; an answer declaring another ``utc_offset_seconds`` is refused rather than
  guessed), unique;
- the declared unit is °C: a Fahrenheit (or any other) answer is refused, never converted silently;
- temperatures are finite numbers within -90..60 °C (the Earth's records, and ``WeatherReading``'s own check),
  rounded to 0.01 °C as stored. ``null`` is Open-Meteo's "no value for this hour": that hour is skipped.

Configuration: ``settings.ENERGYARB["WEATHER_API_URL"]`` (base URL, e.g. https://api.open-meteo.com) and
``["HTTP_TIMEOUT_S"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sites.choices import DataSource

from .errors import SourceDataError, SourceError
from .http import get_json
from .parsing import parse_decimal, parse_timestamp

logger = logging.getLogger(__name__)

SOURCE = DataSource.OPEN_METEO
FORECAST_PATH = "/v1/forecast"
VARIABLE = "temperature_2m"
CELSIUS_UNITS = frozenset({"°C", "degC"})
MIN_TEMPERATURE_C = Decimal(-90)  # below the lowest temperature ever measured (-89.2 °C, Vostok)
MAX_TEMPERATURE_C = Decimal(60)  # above the highest reliably measured air temperature (56.7 °C)
TEMPERATURE_PLACES = 2  # WeatherReading.temperature_c stores 0.01 °C

Reading = tuple[datetime, Decimal]


def _section(body: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = body.get(name)
    if value is None:
        raise SourceDataError(f"missing {name}")
    if not isinstance(value, dict):
        raise SourceDataError(f"{name} is {type(value).__name__}, expected an object")
    return value


def _list(section: Mapping[str, object], name: str, where: str) -> list:
    value = section.get(name)
    if value is None:
        raise SourceDataError(f"missing {where}.{name}")
    if not isinstance(value, list):
        raise SourceDataError(f"{where}.{name} is {type(value).__name__}, expected a list")
    return value


def parse_forecast(body: object) -> list[Reading]:
    """Validate a forecast body; returns (aware UTC hour, °C rounded to 0.01) oldest first, null hours skipped."""
    if not isinstance(body, dict):
        raise SourceDataError(f"forecast is {type(body).__name__}, expected an object")
    offset = body.get("utc_offset_seconds", 0)
    if offset != 0:
        raise SourceDataError(f"utc_offset_seconds is {offset!r}: times are not UTC")
    units = _section(body, "hourly_units")
    unit = units.get(VARIABLE)
    if unit is None:
        raise SourceDataError(f"missing hourly_units.{VARIABLE}")
    if unit not in CELSIUS_UNITS:
        raise SourceDataError(f"hourly_units.{VARIABLE} is {unit!r}, expected °C")
    hourly = _section(body, "hourly")
    times = _list(hourly, "time", "hourly")
    values = _list(hourly, VARIABLE, "hourly")
    if len(times) != len(values):
        raise SourceDataError(f"hourly.time has {len(times)} entries but hourly.{VARIABLE} has {len(values)}")
    readings: dict[datetime, Decimal] = {}
    for index, (raw_time, raw_value) in enumerate(zip(times, values, strict=True)):
        moment = parse_timestamp(raw_time, field=f"hourly.time[{index}]")
        if moment in readings:
            raise SourceDataError(f"hourly.time[{index}] {raw_time!r} repeats an earlier hour")
        if raw_value is None:
            continue
        readings[moment] = parse_decimal(
            raw_value,
            field=f"hourly.{VARIABLE}[{index}]",
            minimum=MIN_TEMPERATURE_C,
            maximum=MAX_TEMPERATURE_C,
            places=TEMPERATURE_PLACES,
        )
    return sorted(readings.items())


class OpenMeteoClient:
    """Reads hourly temperatures from an Open-Meteo-style API. Raises only ``SourceError`` subclasses."""

    def __init__(self, *, base_url: str, timeout_s: float, transport: httpx.BaseTransport | None = None) -> None:
        if not base_url:
            raise ImproperlyConfigured("The weather API base URL is empty (ENERGYARB['WEATHER_API_URL']).")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._transport = transport

    @classmethod
    def from_settings(cls) -> OpenMeteoClient:
        config = settings.ENERGYARB
        return cls(base_url=config["WEATHER_API_URL"], timeout_s=float(config["HTTP_TIMEOUT_S"]))

    def fetch_temperatures(self, *, latitude: float, longitude: float) -> list[Reading]:
        """Yesterday's and today's hourly temperatures at a point (°C, aware UTC hours, oldest first)."""
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError(f"({latitude}, {longitude}) is not a point on Earth")
        url = f"{self.base_url}{FORECAST_PATH}"
        params: dict[str, str | int | float] = {
            "latitude": f"{latitude:.4f}",
            "longitude": f"{longitude:.4f}",
            "hourly": VARIABLE,
            "temperature_unit": "celsius",
            "past_days": 1,
            "forecast_days": 1,
            "timezone": "UTC",
        }
        full_url = str(httpx.URL(url, params=params))
        try:
            body = get_json(url, source=SOURCE, timeout_s=self.timeout_s, params=params, transport=self._transport)
            try:
                return parse_forecast(body)
            except SourceDataError as exc:
                raise SourceDataError(exc.message, source=SOURCE, url=full_url) from None
        except SourceError as exc:
            logger.warning("Weather API GET %s refused: %s", full_url, exc.message)
            raise


def fetch_temperatures(*, latitude: float, longitude: float) -> list[Reading]:
    """Hourly temperatures (°C) around now at a point, from the configured weather API."""
    return OpenMeteoClient.from_settings().fetch_temperatures(latitude=latitude, longitude=longitude)
