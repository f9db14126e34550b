"""`import_prices --format tidy`: ERCOT ancillary-service prices and loads from real rows, their API and admin.

The files are excerpts of /work/shared/data/real/ (tests/data/markets/README.md), rows copied verbatim.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from sites.markets.models import AncillaryPrice, FxRate, PriceNode, SystemLoad

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data" / "markets"
HUBS_AS = DATA / "ercot_hubs_as_2024_dst_days.csv"
LOAD = DATA / "ercot_native_load_2024_dst_days.csv"
FORECAST = DATA / "ercot_da_hubavg_load_forecast_2024-11-03.csv"


def run(path, *args):
    out = io.StringIO()
    call_command("import_prices", str(path), "--format", "tidy", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_ancillary_prices_of_the_five_services_are_stored_hourly_in_usd_per_mw_h():
    out = run(HUBS_AS)

    # 102 rows; 2024-03-10 06:00 has no ancillary prices in the source (an empty cell: nothing stored).
    assert "ERCOT REGUP ancillary prices: 101 new, 0 already present" in out
    assert "give --node" in out  # the hub price columns are left out without a node
    assert AncillaryPrice.objects.count() == 5 * 101
    first = AncillaryPrice.objects.get(service="ECRS", interval_start=at("2024-03-09T00:00"))
    assert first.interval_minutes == 60
    line = HUBS_AS.read_text().splitlines()[1].split(",")
    assert first.price_usd_per_mw_h == Decimal(line[-1])
    assert first.source == "csv_tidy"


def test_native_load_is_stored_per_zone_and_the_system_total_under_system():
    out = run(LOAD)

    assert "ERCOT SYSTEM actual load: 96 new" in out
    assert SystemLoad.objects.filter(zone="SYSTEM").count() == 96
    assert set(SystemLoad.objects.values_list("zone", flat=True)) == {
        "SYSTEM", "COAST", "EAST", "FWEST", "NORTH", "NCENT", "SOUTH", "SCENT", "WEST"
    }  # fmt: skip
    # 2024-11-03 is 25 hours long in Texas: the UTC rows hold it without a repeat or a gap.
    starts = list(
        SystemLoad.objects.filter(zone="SYSTEM", interval_start__gte=at("2024-11-03T05:00"))
        .filter(interval_start__lt=at("2024-11-04T06:00"))
        .values_list("interval_start", flat=True)
    )
    assert len(starts) == 25


def test_the_day_ahead_load_forecast_is_stored_as_a_forecast():
    run(FORECAST, "--series", "dam_system_load_forecast_mw")

    assert SystemLoad.objects.filter(kind="forecast", zone="SYSTEM").count() == 48
    assert not SystemLoad.objects.filter(kind="actual").exists()


def test_importing_again_adds_nothing():
    run(LOAD)
    before = list(SystemLoad.objects.order_by("id").values_list("id", "load_mw"))

    out = run(LOAD)

    assert "ERCOT SYSTEM actual load: 0 new, 96 already present" in out
    assert list(SystemLoad.objects.order_by("id").values_list("id", "load_mw")) == before


def test_a_bad_row_rejects_the_whole_file_with_its_line(tmp_path):
    lines = LOAD.read_text().splitlines()
    lines[7] = lines[7].replace(lines[7].split(",")[2], "lots", 1)
    path = tmp_path / "load.csv"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(CommandError, match=r"line 8: load_coast_mw 'lots' is not a number") as caught:
        run(path)

    assert "nothing written" in str(caught.value)
    assert not SystemLoad.objects.exists()


def test_a_negative_load_rejects_the_file_and_stores_nothing(tmp_path):
    lines = LOAD.read_text().splitlines()
    fields = lines[3].split(",")
    fields[1] = "-5"
    lines[3] = ",".join(fields)
    path = tmp_path / "load.csv"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(CommandError, match=r"SystemLoad.load_mw -5"):
        run(path)

    assert not SystemLoad.objects.exists()


def test_an_unknown_series_is_refused():
    with pytest.raises(CommandError, match=r"--series: no column\(s\) nope"):
        run(LOAD, "--series", "nope")


def test_hub_prices_need_a_node_with_sites(tmp_path):
    with pytest.raises(CommandError, match=r"No price node 'HB_HUBAVG'"):
        run(HUBS_AS, "--node", "HB_HUBAVG", "--series", "da_spp_hb_hubavg_usd_per_mwh")

    assert not AncillaryPrice.objects.exists()


def test_several_price_columns_for_a_node_ask_for_series():
    PriceNode.objects.create(market="ercot", node="HB_HUBAVG", currency="USD", resolution_minutes=15)

    with pytest.raises(CommandError, match=r"2 price columns fit .*name one with --series"):
        run(HUBS_AS, "--node", "HB_HUBAVG")


# API and admin


def test_the_api_lists_ancillary_prices_and_load_with_filters(customer_api):
    run(HUBS_AS)
    run(LOAD)

    page = customer_api.get("/api/ancillary-prices/", {"service": "RRS", "after": "2024-11-03T00:00:00Z"}).json()
    assert page["count"] == AncillaryPrice.objects.filter(service="RRS", interval_start__gte=at("2024-11-03")).count()
    assert {row["service"] for row in page["results"]} == {"RRS"}
    assert set(page["results"][0]) == {
        "id", "market", "service", "interval_start", "interval_minutes", "price_usd_per_mw_h", "source"
    }  # fmt: skip

    load = customer_api.get("/api/system-load/", {"zone": "SYSTEM", "limit": 2}).json()
    assert load["count"] == 96
    assert load["results"][0]["interval_start"] == "2024-11-04T23:00:00Z"  # newest first

    assert customer_api.get("/api/ancillary-prices/", {"service": "NOPE"}).status_code == 400


def test_price_nodes_and_fx_rates_are_in_the_api(customer_api):
    from tests.factories import SiteFactory

    node = PriceNode.objects.create(market="entsoe", node="DE-LU", currency="EUR", resolution_minutes=60)
    SiteFactory(code="berlin", price_node=node)
    FxRate.objects.create(day="2024-01-02", currency="EUR", usd_per_unit=Decimal("1.0956"), source="csv_ecb")

    nodes = customer_api.get("/api/price-nodes/").json()["results"]
    assert nodes == [
        {"id": node.pk, "market": "entsoe", "node": "DE-LU", "currency": "EUR", "resolution_minutes": 60,
         "description": "", "sites": ["berlin"]}
    ]  # fmt: skip
    site = customer_api.get("/api/sites/berlin/").json()
    assert site["price_source"] == "ENTSOE DE-LU (EUR, 60 min)"
    assert site["price_node"] == {"market": "entsoe", "node": "DE-LU", "currency": "EUR", "resolution_minutes": 60}
    rates = customer_api.get("/api/fx-rates/", {"currency": "EUR"}).json()["results"]
    assert rates[0]["usd_per_unit"] == "1.095600"


@pytest.mark.parametrize("model", ["pricenode", "fxrate", "ancillaryprice", "systemload"])
def test_the_admin_lists_and_adds(admin_client, model):
    run(LOAD)
    assert admin_client.get(reverse(f"admin:sites_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:sites_{model}_add")).status_code == 200


def test_the_admin_refuses_a_non_positive_fx_rate_with_a_field_message(admin_client):
    response = admin_client.post(
        reverse("admin:sites_fxrate_add"),
        {"day": "2024-01-02", "currency": "EUR", "usd_per_unit": "0", "source": "manual"},
    )

    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to" in response.content.decode()
    assert not FxRate.objects.exists()
