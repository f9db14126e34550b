"""The read API of the physical world: sites, hardware, prices, weather and the freshness snapshot."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from sites.choices import CoolingType, DataSource, HardwareKind, MarketRegion, SiteStatus
from sites.models import Site
from sites.simulation import floor_to_step
from tests.factories import (
    T0,
    EnergyPriceFactory,
    HardwareModelFactory,
    MarketPriceFactory,
    SiteFactory,
    SiteInventoryFactory,
    WeatherReadingFactory,
)

pytestmark = pytest.mark.django_db

LIST_ROUTES = (
    "site-list",
    "hardware-model-list",
    "energy-price-list",
    "market-price-list",
    "weather-reading-list",
    "latest-prices-list",
)


def _codes(response, key="code"):
    return [row[key] for row in response.json()["results"]]


# Authentication ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_anonymous_request_is_refused_with_401(anon_api, route):
    response = anon_api.get(reverse(route))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_token_authenticated_customer_can_read(customer_api, route):
    assert customer_api.get(reverse(route)).status_code == 200


def test_invalid_token_is_refused(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert anon_api.get(reverse("site-list")).status_code == 401


def test_session_authenticated_user_can_read(customer):
    client = APIClient()
    client.force_login(customer.user)

    assert client.get(reverse("site-list")).status_code == 200


def test_drf_create_token_command_creates_a_token_that_authenticates(customer):
    out = StringIO()
    call_command("drf_create_token", customer.user.username, stdout=out)
    key = out.getvalue().split()[2]  # "Generated token <key> for user <username>"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    assert client.get(reverse("site-list")).status_code == 200


# Sites ------------------------------------------------------------------------------------------------------


@pytest.fixture
def norway():
    """A 10 MW site running 20 of 100 installed 3.5 kW miners (70 kW of 350 kW) and 5 of 10 GPU nodes."""
    site = SiteFactory(code="site_3_norway", name="Norway", power_capacity_kw=Decimal("10000"))
    SiteInventoryFactory(
        site=site,
        hardware_model=HardwareModelFactory(code="s21", power_kw_per_unit=Decimal("3.500")),
        units_installed=100,
        units_available=90,
        units_running=20,
    )
    SiteInventoryFactory(
        site=site,
        hardware_model=HardwareModelFactory(inference=True, code="h100", power_kw_per_unit=Decimal("10.200")),
        units_installed=10,
        units_available=10,
        units_running=5,
    )
    return site


def test_site_detail_has_inventory_power_summary_and_latest_price(customer_api, norway):
    EnergyPriceFactory(site=norway, interval_start=T0, price_usd_per_mwh=Decimal("31.50"))
    EnergyPriceFactory(site=norway, interval_start=T0 - timedelta(minutes=5), price_usd_per_mwh=Decimal("99.00"))

    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        response = customer_api.get(reverse("site-detail", args=["site_3_norway"]))

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "site_3_norway"
    assert body["power_capacity_kw"] == "10000.000"
    assert body["inventory"] == [
        {
            "hardware_model": "h100",
            "kind": HardwareKind.INFERENCE,
            "units_installed": 10,
            "units_available": 10,
            "units_running": 5,
            "power_kw_per_unit": "10.200",
        },
        {
            "hardware_model": "s21",
            "kind": HardwareKind.MINER,
            "units_installed": 100,
            "units_available": 90,
            "units_running": 20,
            "power_kw_per_unit": "3.500",
        },
    ]
    assert body["installed_kw"] == "452.000"  # 100 x 3.5 + 10 x 10.2
    assert body["running_kw"] == "121.000"  # 20 x 3.5 + 5 x 10.2
    assert body["utilization"] == "0.0121"  # 121 kW of 10,000 kW
    assert body["latest_price_usd_per_mwh"] == "31.50"
    assert body["latest_price_at"] == "2026-06-01T00:00:00Z"
    assert body["latest_price_age_seconds"] == 120


def test_a_stored_day_ahead_price_for_tomorrow_is_not_the_latest_price(customer_api, norway):
    # The database's clock decides "now" (the API's queryset is built once, at import): prices around real time.
    now = floor_to_step(timezone.now())
    EnergyPriceFactory(site=norway, interval_start=now, price_usd_per_mwh=Decimal("31.50"))
    EnergyPriceFactory(site=norway, interval_start=now + timedelta(days=1), price_usd_per_mwh=Decimal("250.00"))

    body = customer_api.get(reverse("site-detail", args=["site_3_norway"])).json()
    tomorrow = Site.objects.with_latest_energy_price(now + timedelta(days=1)).get(code="site_3_norway")
    before = Site.objects.with_latest_energy_price(now - timedelta(minutes=5)).get(code="site_3_norway")

    assert body["latest_price_usd_per_mwh"] == "31.50"
    assert body["latest_price_at"] == now.isoformat().replace("+00:00", "Z")
    assert tomorrow.latest_price_usd_per_mwh == Decimal("250.00")  # at or before the moment: its own interval
    assert before.latest_price_usd_per_mwh is None


def test_site_without_inventory_or_prices_reports_zeros_and_nulls(customer_api):
    SiteFactory(code="empty", power_capacity_kw=Decimal("0"))

    body = customer_api.get(reverse("site-detail", args=["empty"])).json()

    assert body["inventory"] == []
    assert body["installed_kw"] == "0.000"
    assert body["running_kw"] == "0.000"
    assert body["utilization"] == "0.0000"
    assert body["latest_price_usd_per_mwh"] is None
    assert body["latest_price_age_seconds"] is None


def test_unknown_site_code_answers_404(customer_api, norway):
    assert customer_api.get(reverse("site-detail", args=["atlantis"])).status_code == 404


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": SiteStatus.MAINTENANCE}, ["b_texas"]),
        ({"market_region": MarketRegion.AMERICAS}, ["b_texas", "c_chile"]),
        ({"cooling_type": CoolingType.HYDRO}, ["c_chile"]),
        ({"country": "no"}, ["a_norway"]),
        ({"search": "texas"}, ["b_texas"]),
    ],
)
def test_site_filters_return_matching_sites(customer_api, params, expected):
    SiteFactory(code="a_norway", name="Norway", country="NO")
    SiteFactory(
        code="b_texas",
        name="Texas",
        country="US",
        status=SiteStatus.MAINTENANCE,
        market_region=MarketRegion.AMERICAS,
        cooling_type=CoolingType.AIR,
    )
    SiteFactory(
        code="c_chile", name="Chile", country="CL", market_region=MarketRegion.AMERICAS, cooling_type=CoolingType.HYDRO
    )

    response = customer_api.get(reverse("site-list"), params)

    assert response.status_code == 200
    assert _codes(response) == expected


def test_unknown_status_filter_value_answers_400(customer_api):
    assert customer_api.get(reverse("site-list"), {"status": "exploded"}).status_code == 400


def test_sites_are_ordered_by_code_and_the_ordering_param_overrides_it(customer_api):
    SiteFactory(code="b", power_capacity_kw=Decimal("100"))
    SiteFactory(code="a", power_capacity_kw=Decimal("50"))
    SiteFactory(code="c", power_capacity_kw=Decimal("200"))

    assert _codes(customer_api.get(reverse("site-list"))) == ["a", "b", "c"]
    assert _codes(customer_api.get(reverse("site-list"), {"ordering": "-power_capacity_kw"})) == ["c", "b", "a"]


def test_sites_can_be_ordered_by_running_power(customer_api):
    for code, running in (("a", 1), ("b", 30), ("c", 10)):
        SiteInventoryFactory(site=SiteFactory(code=code), units_installed=50, units_running=running)

    assert _codes(customer_api.get(reverse("site-list"), {"ordering": "-running_kw"})) == ["b", "c", "a"]


def test_sites_are_paginated_with_limit_and_offset(customer_api):
    for code in ("a", "b", "c", "d", "e"):
        SiteFactory(code=code)

    body = customer_api.get(reverse("site-list"), {"limit": 2, "offset": 2}).json()

    assert body["count"] == 5
    assert [row["code"] for row in body["results"]] == ["c", "d"]
    assert "limit=2" in body["next"] and "offset=4" in body["next"]
    assert body["previous"] is not None


def test_site_list_costs_a_constant_number_of_queries(customer_api, django_assert_num_queries):
    hardware = [HardwareModelFactory(), HardwareModelFactory(inference=True)]
    for _ in range(5):
        site = SiteFactory()
        for model in hardware:
            SiteInventoryFactory(site=site, hardware_model=model, units_running=3)
        EnergyPriceFactory(site=site)

    # token, count, sites (power summary + newest price as subqueries), inventory lines with hardware models
    with django_assert_num_queries(4):
        response = customer_api.get(reverse("site-list"))

    assert response.status_code == 200
    assert len(response.json()["results"]) == 5
    assert all(len(row["inventory"]) == 2 for row in response.json()["results"])


# Hardware models --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": HardwareKind.MINER}, ["air_miner", "hydro_miner"]),
        ({"kind": HardwareKind.INFERENCE}, ["gpu"]),
        ({"cooling_type": CoolingType.HYDRO}, ["hydro_miner"]),
    ],
)
def test_hardware_model_filters(customer_api, params, expected):
    HardwareModelFactory(code="air_miner", cooling_type=CoolingType.AIR)
    HardwareModelFactory(code="hydro_miner", cooling_type=CoolingType.HYDRO)
    HardwareModelFactory(inference=True, code="gpu", cooling_type=CoolingType.AIR)

    assert _codes(customer_api.get(reverse("hardware-model-list"), params)) == expected


def test_hardware_model_detail_by_code_reports_miner_efficiency(customer_api):
    HardwareModelFactory(code="s21", power_kw_per_unit=Decimal("3.500"), hashrate_th_per_s=Decimal("200"))

    body = customer_api.get(reverse("hardware-model-detail", args=["s21"])).json()

    assert body["efficiency_j_per_th"] == "17.50"  # 3,500 W / 200 TH/s
    assert body["tokens_per_s"] is None


# Energy prices, market prices, weather ---------------------------------------------------------------------


def test_energy_prices_filter_by_site_code_and_window_newest_first(customer_api):
    norway, texas = SiteFactory(code="norway"), SiteFactory(code="texas")
    for minutes in (0, 5, 10, 15):
        EnergyPriceFactory(site=norway, interval_start=T0 + timedelta(minutes=minutes))
    EnergyPriceFactory(site=texas, interval_start=T0 + timedelta(minutes=5))

    response = customer_api.get(
        reverse("energy-price-list"),
        {"site": "norway", "after": T0 + timedelta(minutes=5), "before": T0 + timedelta(minutes=15)},
    )

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["site"] for row in rows] == ["norway", "norway"]
    assert [row["interval_start"] for row in rows] == ["2026-06-01T00:10:00Z", "2026-06-01T00:05:00Z"]


def test_energy_prices_filter_by_grid_region_and_source(customer_api):
    EnergyPriceFactory(site=None, grid_region="ERCOT", interval_start=T0, source=DataSource.CSV)
    EnergyPriceFactory(site=None, grid_region="NO1", interval_start=T0, source=DataSource.CSV)
    EnergyPriceFactory(site=SiteFactory(), interval_start=T0, source=DataSource.SIMULATOR)

    by_region = customer_api.get(reverse("energy-price-list"), {"grid_region": "ERCOT"}).json()["results"]
    by_source = customer_api.get(reverse("energy-price-list"), {"source": DataSource.CSV}).json()["results"]

    assert [(row["site"], row["grid_region"]) for row in by_region] == [(None, "ERCOT")]
    assert len(by_source) == 2


def test_energy_prices_can_be_ordered_by_price(customer_api):
    site = SiteFactory()
    for minutes, price in ((0, "10.00"), (5, "-5.00"), (10, "80.00")):
        EnergyPriceFactory(site=site, interval_start=T0 + timedelta(minutes=minutes), price_usd_per_mwh=Decimal(price))

    rows = customer_api.get(reverse("energy-price-list"), {"ordering": "price_usd_per_mwh"}).json()["results"]

    assert [row["price_usd_per_mwh"] for row in rows] == ["-5.00", "10.00", "80.00"]


def test_energy_price_filter_with_unknown_site_code_answers_400(customer_api):
    assert customer_api.get(reverse("energy-price-list"), {"site": "atlantis"}).status_code == 400


def test_market_prices_filter_by_window_and_source(customer_api):
    for minutes in (0, 5, 10):
        MarketPriceFactory(interval_start=T0 + timedelta(minutes=minutes))
    MarketPriceFactory(interval_start=T0 + timedelta(minutes=15), source=DataSource.HACKATHON_API)

    window = customer_api.get(reverse("market-price-list"), {"after": T0 + timedelta(minutes=5)}).json()
    hackathon = customer_api.get(reverse("market-price-list"), {"source": DataSource.HACKATHON_API}).json()

    assert [row["interval_start"] for row in window["results"]] == [
        "2026-06-01T00:15:00Z",
        "2026-06-01T00:10:00Z",
        "2026-06-01T00:05:00Z",
    ]
    assert window["results"][0]["hashprice_usd_per_ph_day"] == "50.0000"
    assert hackathon["count"] == 1


def test_weather_readings_filter_by_site_and_window(customer_api):
    norway, texas = SiteFactory(code="norway"), SiteFactory(code="texas")
    for hours in (0, 1, 2):
        WeatherReadingFactory(site=norway, observed_at=T0 + timedelta(hours=hours))
    WeatherReadingFactory(site=texas, observed_at=T0 + timedelta(hours=1))

    response = customer_api.get(reverse("weather-reading-list"), {"site": "norway", "before": T0 + timedelta(hours=2)})

    rows = response.json()["results"]
    assert [(row["site"], row["observed_at"]) for row in rows] == [
        ("norway", "2026-06-01T01:00:00Z"),
        ("norway", "2026-06-01T00:00:00Z"),
    ]


# Latest prices ----------------------------------------------------------------------------------------------


def test_latest_prices_reports_ages_and_flags_stale_data(customer_api, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "MAX_DATA_AGE_MINUTES": 30}
    fresh, old = SiteFactory(code="a_fresh"), SiteFactory(code="b_old")
    SiteFactory(code="c_silent")  # no price at all
    EnergyPriceFactory(site=fresh, interval_start=T0 - timedelta(minutes=10))
    EnergyPriceFactory(site=fresh, interval_start=T0 - timedelta(minutes=5), price_usd_per_mwh=Decimal("42.00"))
    EnergyPriceFactory(site=old, interval_start=T0 - timedelta(minutes=45))
    MarketPriceFactory(interval_start=T0 - timedelta(minutes=40))
    MarketPriceFactory(interval_start=T0 - timedelta(minutes=31))

    with time_machine.travel(T0, tick=False):
        response = customer_api.get(reverse("latest-prices-list"))

    assert response.status_code == 200
    body = response.json()
    assert body["as_of"] == "2026-06-01T00:00:00Z"
    assert body["max_data_age_minutes"] == 30
    assert body["market"]["interval_start"] == "2026-05-31T23:29:00Z"
    assert body["market"]["age_seconds"] == 31 * 60
    assert body["market"]["stale"] is True
    assert [(row["site"], row["age_seconds"], row["stale"]) for row in body["sites"]] == [
        ("a_fresh", 5 * 60, False),
        ("b_old", 45 * 60, True),
        ("c_silent", None, True),
    ]
    assert body["sites"][0]["price_usd_per_mwh"] == "42.00"
    assert body["sites"][2]["price_usd_per_mwh"] is None


def test_latest_prices_turn_stale_once_older_than_the_limit(customer_api, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "MAX_DATA_AGE_MINUTES": 30}
    MarketPriceFactory(interval_start=T0)

    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        at_limit = customer_api.get(reverse("latest-prices-list")).json()["market"]
    with time_machine.travel(T0 + timedelta(minutes=30, seconds=1), tick=False):
        past_limit = customer_api.get(reverse("latest-prices-list")).json()["market"]

    assert at_limit["stale"] is False
    assert past_limit["stale"] is True


def test_latest_prices_without_any_market_data_reports_null(customer_api):
    assert customer_api.get(reverse("latest-prices-list")).json()["market"] is None
