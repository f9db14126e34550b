"""The Open-Meteo-style weather client against a local fake server: what it accepts, and every way it refuses."""

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sites.clients.errors import SourceDataError, SourceRequestRejected, SourceUnavailable
from sites.clients.open_meteo import fetch_temperatures
from tests.fakeserver import fake_server_fixture  # noqa: F401  (registers the fake_server fixture)

MIDNIGHT = datetime(2026, 11, 26, tzinfo=UTC)
OSLO = {"latitude": 59.9139, "longitude": 10.7522}


def forecast(temperatures, *, unit="°C", start=MIDNIGHT, times=None, **extra):
    """An Open-Meteo answer with one hourly temperature per value from ``start``."""
    times = (
        times
        if times is not None
        else [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(len(temperatures))]
    )
    return {
        "latitude": 59.9,
        "longitude": 10.75,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "hourly_units": {"time": "iso8601", "temperature_2m": unit},
        "hourly": {"time": times, "temperature_2m": temperatures},
        **extra,
    }


@pytest.fixture
def api(settings, fake_server):
    settings.ENERGYARB = {**settings.ENERGYARB, "WEATHER_API_URL": fake_server.url, "HTTP_TIMEOUT_S": 5.0}
    return fake_server


# Success.


def test_hourly_temperatures_are_returned_as_utc_hours_and_rounded_celsius(api):
    api.add("GET", "/v1/forecast", json=forecast([3.1, -2.456, 0, 12.346]))

    readings = fetch_temperatures(**OSLO)

    assert readings == [
        (MIDNIGHT, Decimal("3.10")),
        (MIDNIGHT + timedelta(hours=1), Decimal("-2.46")),
        (MIDNIGHT + timedelta(hours=2), Decimal("0.00")),
        (MIDNIGHT + timedelta(hours=3), Decimal("12.35")),
    ]
    assert all(moment.tzinfo is UTC for moment, _ in readings)


def test_the_request_asks_for_celsius_in_utc_for_yesterday_and_today(api):
    api.add("GET", "/v1/forecast", json=forecast([3.1]))

    fetch_temperatures(**OSLO)

    (request,) = api.requests_to("GET", "/v1/forecast")
    assert request.query == {
        "latitude": ["59.9139"],
        "longitude": ["10.7522"],
        "hourly": ["temperature_2m"],
        "temperature_unit": ["celsius"],
        "past_days": ["1"],
        "forecast_days": ["1"],
        "timezone": ["UTC"],
    }
    assert request.headers["accept"] == "application/json"


def test_null_hours_are_skipped_and_readings_come_oldest_first(api):
    times = ["2026-11-26T02:00", "2026-11-26T00:00", "2026-11-26T01:00"]
    api.add("GET", "/v1/forecast", json=forecast([5.0, None, 4.0], times=times))

    assert fetch_temperatures(**OSLO) == [
        (MIDNIGHT + timedelta(hours=1), Decimal("4.00")),
        (MIDNIGHT + timedelta(hours=2), Decimal("5.00")),
    ]


def test_the_plausible_extremes_are_accepted(api):
    api.add("GET", "/v1/forecast", json=forecast([-90, 60]))

    assert [value for _, value in fetch_temperatures(**OSLO)] == [Decimal("-90.00"), Decimal("60.00")]


# Unavailable: transient, retryable.


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_are_source_unavailable(api, status):
    api.add("GET", "/v1/forecast", status=status, body="upstream trouble")

    with pytest.raises(SourceUnavailable) as caught:
        fetch_temperatures(**OSLO)

    assert caught.value.retryable
    assert caught.value.status == status
    assert f"open_meteo: HTTP {status}" in str(caught.value)
    assert "latitude=59.9139" in str(caught.value)


def test_timeout_is_source_unavailable(api, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "HTTP_TIMEOUT_S": 0.2}
    api.add("GET", "/v1/forecast", json=forecast([3.1]), delay=3.0)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"no answer within 0\.2 s"):
        fetch_temperatures(**OSLO)

    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_rejected_and_not_retryable(api, status):
    api.add("GET", "/v1/forecast", status=status, json={"error": True, "reason": "Cannot initialize"})

    with pytest.raises(SourceRequestRejected) as caught:
        fetch_temperatures(**OSLO)

    assert not caught.value.retryable


# Bad data: not retryable, and nothing of the answer is returned.


@pytest.mark.parametrize(
    "body",
    ["{not json", "", "<html>Service page</html>", '{"hourly": {"time": ["2026-11-26T00:00"],'],
    ids=["garbage", "empty", "html", "truncated"],
)
def test_malformed_json_is_a_data_error(api, body):
    api.add("GET", "/v1/forecast", body=body, content_type="application/json")

    with pytest.raises(SourceDataError, match="malformed JSON") as caught:
        fetch_temperatures(**OSLO)

    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("temperatures", "reason"),
    [
        ([3.1, 75.0], "hourly.temperature_2m[1] 75.0 is above the plausible maximum 60"),
        ([-120.5], "hourly.temperature_2m[0] -120.5 is below the minimum -90"),
        ([3.1, math.nan], "hourly.temperature_2m[1] nan is not a finite number"),
        ([math.inf], "hourly.temperature_2m[0] inf is not a finite number"),
        (["3.1"], "hourly.temperature_2m[0] '3.1' is not a number"),
        ([True], "hourly.temperature_2m[0] is true, not a number"),
    ],
    ids=["too-hot", "too-cold", "nan", "infinity", "string", "boolean"],
)
def test_out_of_range_or_non_finite_temperatures_are_a_data_error(api, temperatures, reason):
    api.add("GET", "/v1/forecast", json=forecast(temperatures))

    with pytest.raises(SourceDataError) as caught:
        fetch_temperatures(**OSLO)

    assert reason in str(caught.value)
    assert f"{api.url}/v1/forecast?latitude=59.9139" in str(caught.value)


@pytest.mark.parametrize("unit", ["°F", "K", ""])
def test_a_unit_other_than_celsius_is_refused_not_converted(api, unit):
    api.add("GET", "/v1/forecast", json=forecast([37.4], unit=unit))

    with pytest.raises(SourceDataError, match=f"hourly_units.temperature_2m is '{unit}', expected °C"):
        fetch_temperatures(**OSLO)


def test_more_times_than_temperatures_is_a_data_error(api):
    body = forecast([3.1, 3.2])
    body["hourly"]["time"].append("2026-11-26T02:00")
    api.add("GET", "/v1/forecast", json=body)

    with pytest.raises(SourceDataError, match=r"hourly\.time has 3 entries but hourly\.temperature_2m has 2"):
        fetch_temperatures(**OSLO)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body: body.pop("hourly"), "missing hourly"),
        (lambda body: body["hourly"].pop("temperature_2m"), "missing hourly.temperature_2m"),
        (lambda body: body["hourly"].update(time="2026-11-26T00:00"), "hourly.time is str, expected a list"),
        (lambda body: body.pop("hourly_units"), "missing hourly_units"),
        (lambda body: body["hourly_units"].pop("temperature_2m"), "missing hourly_units.temperature_2m"),
        (lambda body: body.update(utc_offset_seconds=3600), "utc_offset_seconds is 3600: times are not UTC"),
        (lambda body: body["hourly"]["time"].__setitem__(1, "tomorrow"), "hourly.time[1] 'tomorrow' is not an ISO"),
        (lambda body: body["hourly"]["time"].__setitem__(1, body["hourly"]["time"][0]), "repeats an earlier hour"),
    ],
    ids=["no-hourly", "no-temperatures", "times-not-a-list", "no-units", "no-unit", "local-time", "bad-time", "dup"],
)
def test_missing_or_mistyped_fields_are_a_data_error(api, change, reason):
    body = forecast([3.1, 3.2])
    change(body)
    api.add("GET", "/v1/forecast", json=body)

    with pytest.raises(SourceDataError, match=reason.replace(".", r"\.").replace("[", r"\[")):
        fetch_temperatures(**OSLO)


def test_an_answer_that_is_not_an_object_is_a_data_error(api):
    api.add("GET", "/v1/forecast", json=[3.1, 3.2])

    with pytest.raises(SourceDataError, match="forecast is list, expected an object"):
        fetch_temperatures(**OSLO)


def test_a_refused_answer_is_logged_with_the_url(api, caplog):
    api.add("GET", "/v1/forecast", json=forecast([99.0]))

    with caplog.at_level(logging.WARNING, logger="sites.clients.open_meteo"), pytest.raises(SourceDataError):
        fetch_temperatures(**OSLO)

    assert "hourly.temperature_2m[0] 99.0 is above the plausible maximum 60" in caplog.text
    assert f"{api.url}/v1/forecast?latitude=59.9139" in caplog.text


def test_a_point_off_the_planet_is_a_programming_error(api):
    with pytest.raises(ValueError, match="not a point on Earth"):
        fetch_temperatures(latitude=91.0, longitude=0.0)
    assert api.requests == []
