"""Live clients of the real markets over real sockets: entsoe-py against a fake ENTSO-E API and httpx against fake
AEMO files, both on 127.0.0.1 serving the real formats (tests/data/markets). A failing source stores nothing and is
recorded."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from sites.clients.errors import SourceUnavailable
from sites.markets.live import refresh_live_prices
from sites.markets.models import PriceNode, SystemLoad
from sites.models import EnergyPrice, SourceFetch
from sites.services import refresh_market_prices
from tests.factories import SiteFactory
from tests.fakeserver import fake_server_fixture  # noqa: F401  (registers "fake_server")
from tests.sites.test_markets_formats import DATA

pytestmark = pytest.mark.django_db

AEMO_PATH = "/aemo/data/nem/priceanddemand/PRICE_AND_DEMAND_202209_NSW1.csv"


@pytest.fixture
def rates():
    call_command("import_fx_rates", "--since", "2022-03-01", stdout=io.StringIO())


@pytest.fixture
def live(settings, fake_server):
    settings.ENERGYARB = {
        **settings.ENERGYARB,
        "LIVE_MARKETS": ["entsoe", "aemo"],
        "ENTSOE_API_URL": f"{fake_server.url}/api",
        "ENTSOE_API_KEY": "token-123",
        "AEMO_FILES_URL": fake_server.url,
        "HTTP_TIMEOUT_S": 5.0,
    }
    return fake_server


def tie(market, node, currency, minutes):
    return SiteFactory(
        price_node=PriceNode.objects.create(market=market, node=node, currency=currency, resolution_minutes=minutes)
    )


def test_entsoe_day_ahead_prices_come_through_entsoe_py_for_the_tied_site(live, rates):
    germany = tie("entsoe", "DE-LU", "EUR", 60)
    live.add("GET", "/api", body=(DATA / "entsoe_a44_de_lu_2024-03-31.xml").read_text(), content_type="text/xml")

    written = refresh_live_prices(at=datetime(2024, 3, 31, 10, tzinfo=UTC))

    assert written == {"ENTSO-E bidding zone DE-LU": 23 * 12}
    assert EnergyPrice.objects.filter(site=germany, source="entsoe_api", native_currency="EUR").count() == 23 * 12
    (request,) = live.requests_to("GET", "/api")
    assert request.query["documentType"] == ["A44"]
    assert request.query["in_Domain"] == ["10Y1001A1001A82H"]
    assert request.query["securityToken"] == ["token-123"]
    assert request.query["periodStart"] == ["202403300000"]
    fetch = SourceFetch.objects.get()
    assert (fetch.succeeded, fetch.rows_written, fetch.source) == (True, 276, "entsoe_api")


def test_a_failing_entsoe_api_stores_nothing_and_is_recorded(live, rates):
    tie("entsoe", "DE-LU", "EUR", 60)
    live.add("GET", "/api", status=503, body="maintenance")

    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        refresh_live_prices(at=datetime(2024, 3, 31, 10, tzinfo=UTC))

    assert not EnergyPrice.objects.exists()
    fetch = SourceFetch.objects.get()
    assert not fetch.succeeded and "HTTP 503" in fetch.error


def test_aemo_monthly_file_gives_prices_and_demand(live, rates):
    australia = tie("aemo", "NSW1", "AUD", 5)
    live.add("GET", AEMO_PATH, body=(DATA / "aemo_price_and_demand_nsw1.csv").read_text(), content_type="text/csv")

    refresh_live_prices(at=datetime(2022, 9, 1, 2, tzinfo=UTC))

    assert EnergyPrice.objects.filter(site=australia, source="aemo_files").count() == 90
    assert SystemLoad.objects.filter(market="aemo", zone="NSW1").count() == 90


def test_a_malformed_aemo_file_stores_nothing(live, rates):
    tie("aemo", "NSW1", "AUD", 5)
    live.add("GET", AEMO_PATH, body="REGION,SETTLEMENTDATE,TOTALDEMAND,RRP,PERIODTYPE\nNSW1,yesterday,1,2,TRADE\n")

    with pytest.raises(Exception, match="SETTLEMENTDATE 'yesterday'"):
        refresh_live_prices(at=datetime(2022, 9, 1, 2, tzinfo=UTC))

    assert not EnergyPrice.objects.exists() and not SystemLoad.objects.exists()
    assert not SourceFetch.objects.get().succeeded


def test_the_periodic_refresh_leaves_live_sites_to_their_market(live, rates, time_machine):
    time_machine.move_to(datetime(2022, 9, 1, 2, 3, tzinfo=UTC))
    australia = tie("aemo", "NSW1", "AUD", 5)
    oslo = SiteFactory()
    live.add("GET", AEMO_PATH, body=(DATA / "aemo_price_and_demand_nsw1.csv").read_text(), content_type="text/csv")

    refresh_market_prices(at=datetime(2022, 9, 1, 2, 3, tzinfo=UTC))

    assert set(EnergyPrice.objects.filter(site=australia).values_list("source", flat=True)) == {"aemo_files"}
    assert set(EnergyPrice.objects.filter(site=oslo).values_list("source", flat=True)) == {"simulator"}
