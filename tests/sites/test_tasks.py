"""refresh_market_prices and refresh_weather, run in-process with ``.apply()`` at frozen times.

``.apply()`` runs a task eagerly, and Celery runs its retries eagerly too: ``autoretry_for`` turns the
exception into ``Retry``, and ``apply()`` then calls the retry signature's ``apply()`` at once (countdown and
jitter are ignored, so nothing sleeps). A retried task therefore shows up here as several requests to the fake
server and several ``SourceFetch`` records within one ``.apply()``; its final state is the last attempt's.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.urls import reverse

from sites.choices import DataSource, MarketRegion
from sites.clients.errors import SourceDataError, SourceUnavailable
from sites.models import EnergyPrice, HackathonPrice, MarketPrice, SourceFetch, WeatherReading
from sites.services import REFRESH_WINDOW_INTERVALS, simulate_market_window
from sites.tasks import RETRY, refresh_market_prices, refresh_weather
from tests.factories import SiteFactory
from tests.fakeserver import fake_server_fixture  # noqa: F401  (registers the fake_server fixture)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, 2, 30, tzinfo=UTC)  # inside the 12:00 price interval
NOON = datetime(2026, 11, 26, 12, tzinfo=UTC)
HACKATHON_PRICES = [  # /prices, newest first, in the API's abstract units
    {"energy_price": 2.0, "hash_price": 3.5, "token_price": 1.5, "timestamp": "2026-11-26T12:00:00"},
    {"energy_price": 3.0, "hash_price": 4.0, "token_price": 2.0, "timestamp": "2026-11-26T11:55:00"},
]
ATTEMPTS = 1 + RETRY["max_retries"]


@pytest.fixture
def sites(db):
    """Two sites in different markets, with different energy-cost multipliers."""
    norway = SiteFactory(code="a_norway", energy_cost_multiplier=Decimal("0.500"))
    texas = SiteFactory(
        code="b_texas",
        country="US",
        latitude=Decimal("31.968600"),
        longitude=Decimal("-99.901800"),
        time_zone="America/Chicago",
        market_region=MarketRegion.AMERICAS,
        grid_region="ERCOT",
        renewable_share=Decimal("0.400"),
        energy_cost_multiplier=Decimal("1.250"),
    )
    return [norway, texas]


@pytest.fixture
def hackathon_api(settings, fake_server):
    settings.ENERGYARB = {
        **settings.ENERGYARB,
        "PRICE_SOURCE": DataSource.HACKATHON_API,
        "HACKATHON_API_URL": fake_server.url,
        "HTTP_TIMEOUT_S": 5.0,
    }
    return fake_server


@pytest.fixture
def weather_api(settings, fake_server):
    settings.ENERGYARB = {
        **settings.ENERGYARB,
        "WEATHER_SOURCE": DataSource.OPEN_METEO,
        "WEATHER_API_URL": fake_server.url,
        "HTTP_TIMEOUT_S": 5.0,
    }
    return fake_server


def use_price_source(settings, source: str) -> None:
    settings.ENERGYARB = {**settings.ENERGYARB, "PRICE_SOURCE": source}


def run(task, at: datetime):
    with time_machine.travel(at, tick=False):
        return task.apply()


def stored_prices():
    """Every stored price row, ids included: a rewrite or a delete-and-insert would show."""
    energy = EnergyPrice.objects.order_by("site_id", "interval_start").values_list(
        "id", "site_id", "interval_start", "price_usd_per_mwh", "source"
    )
    market = MarketPrice.objects.order_by("interval_start").values_list(
        "id", "interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok", "source"
    )
    return list(energy), list(market)


def stored_readings():
    return list(
        WeatherReading.objects.order_by("site_id", "observed_at").values_list(
            "id", "site_id", "observed_at", "temperature_c", "source"
        )
    )


def fetches():
    return list(SourceFetch.objects.order_by("id").values_list("kind", "source", "succeeded", "rows_written"))


def intervals(start: datetime, count: int, minutes: int = 5) -> list[datetime]:
    return [start + timedelta(minutes=minutes * i) for i in range(count)]


# Simulator: idempotent, incremental, filling gaps.


def test_refresh_market_prices_twice_leaves_the_same_rows(sites):
    first = run(refresh_market_prices, NOW)
    rows = stored_prices()
    second = run(refresh_market_prices, NOW)

    assert first.get() == {
        "source": "simulator",
        "rows_written": 3 * REFRESH_WINDOW_INTERVALS,
        "interval": NOON.isoformat(),
    }
    assert second.get()["rows_written"] == 0
    assert stored_prices() == rows
    window = intervals(NOON - timedelta(minutes=55), REFRESH_WINDOW_INTERVALS)  # the last hour, 11:05-12:00
    assert sorted({row[2] for row in rows[0]}) == window
    assert [row[1] for row in rows[1]] == window
    assert fetches() == [("market", "simulator", True, 36), ("market", "simulator", True, 0)]


def test_a_later_refresh_adds_only_the_new_interval(sites):
    run(refresh_market_prices, NOW)
    before = stored_prices()

    later = run(refresh_market_prices, NOW + timedelta(minutes=5))

    assert later.get()["rows_written"] == len(sites) + 1  # one energy price per site, one market price
    energy, market = stored_prices()
    assert set(before[0]) <= set(energy) and set(before[1]) <= set(market)  # nothing stored was changed
    assert {row[2] for row in set(energy) - set(before[0])} == {NOON + timedelta(minutes=5)}
    assert [row[1] for row in set(market) - set(before[1])] == [NOON + timedelta(minutes=5)]


def test_the_trailing_window_fills_a_gap_with_the_values_an_uninterrupted_run_would_have_stored(sites):
    run(refresh_market_prices, NOW)

    run(refresh_market_prices, NOW + timedelta(minutes=30))  # the worker missed five runs

    energy, market = stored_prices()
    span = intervals(NOON - timedelta(minutes=55), REFRESH_WINDOW_INTERVALS + 6)  # 11:05-12:30, no hole
    assert [row[1] for row in market] == span
    expected_energy, expected_market = simulate_market_window(sites=sites, start=span[0], periods=len(span))
    assert [(row[1], row[2], row[3]) for row in energy] == [
        (row.site_id, row.interval_start, row.price_usd_per_mwh) for row in expected_energy
    ]
    assert [(row[1], row[2], row[3]) for row in market] == [
        (row.interval_start, row.hashprice_usd_per_ph_day, row.inference_price_usd_per_mtok) for row in expected_market
    ]


def test_refresh_weather_twice_leaves_the_same_rows_and_a_later_run_adds_only_the_new_reading(sites):
    first = run(refresh_weather, NOW)
    rows = stored_readings()
    again = run(refresh_weather, NOW)
    later = run(refresh_weather, NOW + timedelta(minutes=15))

    assert first.get() == {"source": "simulator", "rows_written": 8, "interval": NOON.isoformat()}
    assert again.get()["rows_written"] == 0
    assert later.get()["rows_written"] == len(sites)
    assert sorted({row[2] for row in rows}) == intervals(NOON - timedelta(minutes=45), 4, minutes=15)
    after = stored_readings()
    assert set(rows) <= set(after)
    assert {row[2] for row in set(after) - set(rows)} == {NOON + timedelta(minutes=15)}
    assert all(Decimal(-90) <= row[3] <= Decimal(60) for row in after)


# The hackathon market API: conversions, retries, refusals.


def test_hackathon_prices_are_stored_as_they_came_and_per_site_in_real_units(sites, hackathon_api):
    hackathon_api.add("GET", "/prices", json=HACKATHON_PRICES)

    first = run(refresh_market_prices, NOW)
    rows = stored_prices()
    second = run(refresh_market_prices, NOW)

    assert first.get()["rows_written"] == 2 + 2 + 2 * len(sites)
    assert second.get()["rows_written"] == 0
    assert stored_prices() == rows
    raw = HackathonPrice.objects.get(interval_start=NOON - timedelta(minutes=5))
    assert (raw.energy_price, raw.hash_price, raw.token_price) == (Decimal(3), Decimal(4), Decimal(2))
    # 3.0 abstract -> 90 USD/MWh, times each site's multiplier; 4.0 -> 48 USD/PH/day; 2.0 -> 5 USD/Mtok.
    norway, texas = sites
    energy = {(site_id, start): price for _, site_id, start, price, _ in rows[0]}
    assert energy[(norway.pk, NOON - timedelta(minutes=5))] == Decimal("45.00")
    assert energy[(texas.pk, NOON - timedelta(minutes=5))] == Decimal("112.50")
    assert energy[(norway.pk, NOON)] == Decimal("30.00")
    assert energy[(texas.pk, NOON)] == Decimal("75.00")
    assert [row[1:] for row in rows[1]] == [
        (NOON - timedelta(minutes=5), Decimal("48.0000"), Decimal("5.0000"), "hackathon_api"),
        (NOON, Decimal("42.0000"), Decimal("3.7500"), "hackathon_api"),
    ]


def test_a_transient_source_failure_is_retried_and_the_retry_stores_the_prices(sites, hackathon_api):
    hackathon_api.add("GET", "/prices", status=503, body="maintenance")
    hackathon_api.add("GET", "/prices", json=HACKATHON_PRICES)

    result = run(refresh_market_prices, NOW)

    assert result.successful()
    assert result.get()["rows_written"] == 8
    assert len(hackathon_api.requests_to("GET", "/prices")) == 2
    assert fetches() == [("market", "hackathon_api", False, 0), ("market", "hackathon_api", True, 8)]
    assert "hackathon_api: HTTP 503" in SourceFetch.objects.order_by("id").first().error


@pytest.mark.django_db(transaction=True)  # autocommit, as a worker runs it: the failed query breaks no outer block
@pytest.mark.parametrize("task", [refresh_market_prices, refresh_weather])
def test_a_refresh_that_meets_a_stopped_database_is_retried_not_dropped(sites, monkeypatch, task):
    """It was acknowledged and dropped, unlike the other transient errors: the interval was lost until the next."""
    real_cursor = BaseDatabaseWrapper.cursor
    down = iter([True, True])  # the first two queries find PostgreSQL stopped

    def stopped_then_back(self, *args, **kwargs):
        if next(down, False):
            raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
        return real_cursor(self, *args, **kwargs)

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", stopped_then_back)
    result = run(task, NOW)

    assert result.successful(), result.traceback
    assert result.get()["rows_written"] > 0


def test_a_source_that_stays_down_fails_after_the_retries_and_changes_nothing_stored(sites, hackathon_api, settings):
    use_price_source(settings, DataSource.SIMULATOR)
    run(refresh_market_prices, NOW)  # prices stored before the source was switched
    use_price_source(settings, DataSource.HACKATHON_API)
    hackathon_api.add("GET", "/prices", status=503, body="maintenance")
    before = stored_prices()

    result = run(refresh_market_prices, NOW + timedelta(minutes=5))

    assert result.failed()
    assert isinstance(result.result, SourceUnavailable)
    assert len(hackathon_api.requests_to("GET", "/prices")) == ATTEMPTS
    assert stored_prices() == before
    assert not HackathonPrice.objects.exists()
    failed = SourceFetch.objects.filter(source="hackathon_api")
    assert [(f.succeeded, f.rows_written) for f in failed] == [(False, 0)] * ATTEMPTS
    assert all("HTTP 503" in f.error and f"{hackathon_api.url}/prices" in f.error for f in failed)


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ({"body": "{oops", "content_type": "application/json"}, "malformed JSON"),
        ({"json": [{**HACKATHON_PRICES[0], "hash_price": -1.0}]}, "prices[0]: hash_price -1.0 is below the minimum 0"),
        (
            {"json": [{**HACKATHON_PRICES[0], "energy_price": 1e12}]},
            "energy_price 1000000000000.0 is above the plausible maximum",
        ),
        ({"json": [{"energy_price": 2.0, "timestamp": "2026-11-26T12:00:00"}]}, "missing hash_price, token_price"),
    ],
    ids=["malformed", "negative", "absurd", "missing-fields"],
)
def test_bad_data_writes_no_row_is_not_retried_and_the_failure_says_why(sites, hackathon_api, caplog, route, reason):
    hackathon_api.add("GET", "/prices", **route)

    result = run(refresh_market_prices, NOW)

    assert result.failed()
    assert isinstance(result.result, SourceDataError)
    assert len(hackathon_api.requests_to("GET", "/prices")) == 1  # retrying would get the same answer
    assert stored_prices() == ([], [])
    assert not HackathonPrice.objects.exists()
    failed = SourceFetch.objects.get()
    assert (failed.succeeded, failed.rows_written) == (False, 0)
    assert reason in failed.error
    assert reason in caplog.text  # the client logs what it refused


def test_after_a_failure_the_last_prices_are_served_and_marked_stale(sites, hackathon_api, customer_api, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "MAX_DATA_AGE_MINUTES": 30}
    use_price_source(settings, DataSource.SIMULATOR)
    run(refresh_market_prices, NOW)
    use_price_source(settings, DataSource.HACKATHON_API)
    hackathon_api.add("GET", "/prices", status=503)
    last_norway_price = EnergyPrice.objects.filter(site=sites[0]).order_by("-interval_start").first()

    fresh_moment = NOW + timedelta(minutes=20)
    stale_moment = NOW + timedelta(minutes=40)
    assert run(refresh_market_prices, fresh_moment).failed()
    with time_machine.travel(fresh_moment, tick=False):
        fresh = customer_api.get(reverse("latest-prices-list")).json()
    assert run(refresh_market_prices, stale_moment).failed()
    with time_machine.travel(stale_moment, tick=False):
        stale = customer_api.get(reverse("latest-prices-list")).json()

    assert fresh["market"]["stale"] is False
    assert (stale["market"]["interval_start"], stale["market"]["stale"]) == ("2026-11-26T12:00:00Z", True)
    assert stale["market"]["age_seconds"] == 42 * 60 + 30
    assert [(row["site"], row["stale"]) for row in stale["sites"]] == [("a_norway", True), ("b_texas", True)]
    assert stale["sites"][0]["price_usd_per_mwh"] == str(last_norway_price.price_usd_per_mwh)


# The Open-Meteo weather source.


def open_meteo_answer(temperatures: list, start: datetime = datetime(2026, 11, 25, tzinfo=UTC)) -> dict:
    times = [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(len(temperatures))]
    return {
        "utc_offset_seconds": 0,
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C"},
        "hourly": {"time": times, "temperature_2m": temperatures},
    }


def test_open_meteo_readings_are_stored_once_and_future_hours_are_ignored(sites, weather_api):
    # past_days=1 & forecast_days=1: yesterday and today, 48 hours; at 12:02 the hours after 12:00 are forecasts.
    weather_api.add("GET", "/v1/forecast", json=open_meteo_answer([round(-5 + 0.25 * h, 2) for h in range(48)]))

    first = run(refresh_weather, NOW)
    rows = stored_readings()
    second = run(refresh_weather, NOW)

    observed = 24 + 13  # all of yesterday, today 00:00-12:00
    assert first.get()["rows_written"] == observed * len(sites)
    assert second.get()["rows_written"] == 0
    assert stored_readings() == rows
    assert max(row[2] for row in rows) == NOON
    assert {row[4] for row in rows} == {"open_meteo"}
    assert WeatherReading.objects.get(site=sites[0], observed_at=NOON).temperature_c == Decimal("4.00")  # hour 36
    latitudes = [request.query["latitude"] for request in weather_api.requests_to("GET", "/v1/forecast")]
    assert latitudes == [["59.9139"], ["31.9686"]] * 2


def test_an_out_of_range_temperature_writes_no_reading_for_any_site(sites, weather_api):
    weather_api.add("GET", "/v1/forecast", json=open_meteo_answer([3.0, 71.5, 3.2]))

    result = run(refresh_weather, NOW)

    assert result.failed()
    assert not WeatherReading.objects.exists()
    failed = SourceFetch.objects.get()
    assert (failed.kind, failed.source, failed.succeeded) == ("weather", "open_meteo", False)
    assert "hourly.temperature_2m[1] 71.5 is above the plausible maximum 60" in failed.error


def test_a_weather_api_outage_is_retried(sites, weather_api):
    weather_api.add("GET", "/v1/forecast", status=502)
    weather_api.add("GET", "/v1/forecast", json=open_meteo_answer([1.5] * 48))

    result = run(refresh_weather, NOW)

    assert result.get()["rows_written"] == 37 * len(sites)
    assert fetches() == [("weather", "open_meteo", False, 0), ("weather", "open_meteo", True, 74)]


@pytest.mark.django_db
def test_refresh_data_command_stores_prices_and_weather_once():
    from io import StringIO

    from django.core.management import call_command

    from tests.factories import SiteFactory

    SiteFactory(code="site_x", time_zone="Europe/Berlin", grid_region="DE-LU")
    first, second = StringIO(), StringIO()
    call_command("refresh_data", stdout=first)
    counts = (EnergyPrice.objects.count(), MarketPrice.objects.count(), WeatherReading.objects.count())
    call_command("refresh_data", stdout=second)
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > 0
    assert (EnergyPrice.objects.count(), MarketPrice.objects.count(), WeatherReading.objects.count()) == counts
    assert "0 new rows" in second.getvalue()
