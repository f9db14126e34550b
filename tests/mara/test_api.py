"""The hackathon market API served under /mara/: an event client runs against it unchanged but for its base URL.

Hand-computed accounting uses the event trace's first row (energy 3.0, hash 4.0, token 2.0) and the event's
inventory (air 1000 hashrate / 3500 W, hydro 5000 / 5000 W, immersion 10000 / 10000 W, gpu 1000 tokens / 5000 W,
asic 50000 tokens / 15000 W).
"""

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import yaml
from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from mara.prices import served_prices
from mara.services import (
    AllocationOverPower,
    MarketApiError,
    create_market_api_site,
    set_market_api_allocation,
)
from optimizer.engine.mara import HACKATHON_INVENTORY, PriceRow, score_allocation
from sites import units
from sites.choices import DataSource
from sites.clients.hackathon import HackathonClient, parse_inventory, parse_price_row, parse_prices
from sites.models import HackathonPrice, MarketApiAllocation, MarketApiSite
from sites.services import EnergyPriceRow, MarketPriceRow, store_energy_prices, store_market_prices
from tests.factories import SiteFactory

TRACE_NAME = "mara-hackathon-2025-06-21-prices.csv"
TRACE_CANDIDATES = [
    Path(settings.BASE_DIR) / "data" / TRACE_NAME,
    Path(settings.BASE_DIR).parent / "shared" / "data" / TRACE_NAME,
]
TRACE = next((path for path in TRACE_CANDIDATES if path.is_file()), TRACE_CANDIDATES[-1])

COUNTS = ("air_miners", "hydro_miners", "immersion_miners", "gpu_compute", "asic_compute")
ALLOCATION = {"air_miners": 2, "hydro_miners": 5, "immersion_miners": 10, "gpu_compute": 30, "asic_compute": 5}
# ALLOCATION at the trace's first row, by hand: watts = units x power; revenue = units x hashrate x 4.0 (miners)
# or units x tokens x 2.0 (inference); cost = 357,000 W x 3.0.
FIRST_ROW_POWER = {
    "air_miners": 7_000,
    "asic_compute": 75_000,
    "gpu_compute": 150_000,
    "hydro_miners": 25_000,
    "immersion_miners": 100_000,
}
FIRST_ROW_REVENUE = {
    "air_miners": 8_000.0,
    "asic_compute": 500_000.0,
    "gpu_compute": 60_000.0,
    "hydro_miners": 100_000.0,
    "immersion_miners": 400_000.0,
}
FIRST_ROW_TOTALS = {"total_power_used": 357_000, "total_power_cost": 1_071_000.0, "total_revenue": 1_068_000.0}
FIRST_ROW_JSON = {"energy_price": 3.0, "hash_price": 4.0, "timestamp": "2025-06-21T12:00:00", "token_price": 2.0}
NAIVE_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$")


def header(site):
    return {"HTTP_X_API_KEY": site.api_key}


def trace_rows() -> list[dict[str, str]]:
    assert TRACE.is_file(), f"The event trace is missing: looked for {[str(p) for p in TRACE_CANDIDATES]}"
    with TRACE.open(newline="") as handle:
        return list(csv.DictReader(handle))


def import_trace(tmp_path=None, *, first_rows: int | None = None) -> None:
    """`import_prices --format mara` on the whole trace, or on a copy holding its first rows."""
    path = TRACE
    if first_rows is not None:
        path = tmp_path / "first-rows.csv"
        lines = TRACE.read_text().splitlines()
        path.write_text("\n".join(lines[: 1 + first_rows]) + "\n")
    call_command("import_prices", str(path), "--format", "mara", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.fixture
def mara():
    return APIClient()


@pytest.fixture
def site(db):
    return create_market_api_site(name="HackFestSite")


@pytest.fixture
def first_row(db, tmp_path):
    import_trace(tmp_path, first_rows=1)


# The event client, unchanged but for its base URL, against a real HTTP server.


def event_script(base_url: str) -> dict:
    """What a participant's script did at the event: read prices and inventory, make a site, allocate, read revenue."""
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        prices = http.get("/prices")
        prices.raise_for_status()
        inventory = http.get("/inventory")
        inventory.raise_for_status()
        created = http.post("/sites", json={"name": "HackFestSite"})
        created.raise_for_status()
        headers = {"X-Api-Key": created.json()["api_key"]}
        site_info = http.get("/sites", headers=headers)
        site_info.raise_for_status()
        put = http.put("/machines", json=ALLOCATION, headers=headers)
        put.raise_for_status()
        machines = http.get("/machines", headers=headers)
        machines.raise_for_status()
        return {
            "prices": prices.json(),
            "inventory": inventory.json(),
            "site": created.json(),
            "site_info": site_info.json(),
            "put": put.json(),
            "machines": machines.json(),
        }


def test_an_event_script_runs_against_mara_and_reads_the_hackathon_accounting(live_server, tmp_path):
    import_trace(tmp_path, first_rows=1)

    seen = event_script(live_server.url + "/mara")

    assert seen["prices"] == [
        {"energy_price": 3.0, "hash_price": 4.0, "timestamp": "2025-06-21T12:00:00", "token_price": 2.0}
    ]
    assert seen["inventory"] == HACKATHON_INVENTORY
    assert set(seen["site"]) == {"api_key", "name", "power"}
    assert seen["site"]["name"] == "HackFestSite"
    assert seen["site"]["power"] == 1_000_000
    assert seen["site_info"] == {**seen["site"], "id": seen["put"]["site_id"]}
    assert {name: seen["put"][name] for name in COUNTS} == ALLOCATION
    assert set(seen["put"]) == {*COUNTS, "id", "site_id", "updated_at"}
    machines = seen["machines"]
    assert machines["power"] == FIRST_ROW_POWER
    assert machines["revenue"] == FIRST_ROW_REVENUE
    assert {name: machines[name] for name in FIRST_ROW_TOTALS} == FIRST_ROW_TOTALS
    assert {name: machines[name] for name in (*COUNTS, "id", "site_id", "updated_at")} == seen["put"]
    # The same numbers by energyarb's Decimal accounting helpers (sites.units), type by type.
    inventory = seen["inventory"]
    for kind, field_name in (("air", "air_miners"), ("hydro", "hydro_miners"), ("immersion", "immersion_miners")):
        expected = units.hackathon_miner_revenue(
            units=ALLOCATION[field_name], hashrate=inventory["miners"][kind]["hashrate"], hash_price=Decimal("4.0")
        )
        assert Decimal(repr(machines["revenue"][field_name])) == expected
    for kind, field_name in (("gpu", "gpu_compute"), ("asic", "asic_compute")):
        expected = units.hackathon_inference_revenue(
            units=ALLOCATION[field_name], tokens=inventory["inference"][kind]["tokens"], token_price=Decimal("2.0")
        )
        assert Decimal(repr(machines["revenue"][field_name])) == expected
    assert Decimal(repr(machines["total_power_cost"])) == units.hackathon_power_cost(
        watts=machines["total_power_used"], energy_price=Decimal("3.0")
    )


def test_energyarbs_own_hackathon_client_reads_mara_with_only_the_base_url_changed(live_server):
    import_trace()
    client = HackathonClient(base_url=live_server.url + "/mara", timeout_s=10.0, api_key="a-stale-key-is-ignored")

    rows = client.fetch_prices()
    inventory = client.fetch_inventory()

    assert [row.interval_start for row in rows] == sorted(
        datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC) for row in trace_rows()
    )
    stored = HackathonPrice.objects.order_by("interval_start").values_list("energy_price", "hash_price", "token_price")
    for row, (energy, hash_price, token) in zip(rows, stored, strict=True):
        # What is stored, through JSON floats and the client's 15-place rounding.
        assert row.energy_price == pytest.approx(energy, abs=Decimal("1e-15"))
        assert row.hash_price == pytest.approx(hash_price, abs=Decimal("1e-15"))
        assert row.token_price == pytest.approx(token, abs=Decimal("1e-15"))
    assert inventory == parse_inventory(HACKATHON_INVENTORY)
    assert inventory.miners["hydro"].power_kw == Decimal(5)


# GET /prices


@pytest.mark.django_db
def test_the_imported_event_trace_is_served_exactly_newest_first(mara):
    import_trace()
    raw = trace_rows()

    body = mara.get("/mara/prices").json()

    assert len(body) == len(raw) == 110
    assert [item["timestamp"] for item in body] == [row["timestamp"] for row in reversed(raw)]
    stored = {
        row["interval_start"]: row
        for row in HackathonPrice.objects.values("interval_start", "energy_price", "hash_price", "token_price")
    }
    parsed = {row.interval_start: row for row in (parse_price_row(r, allow_text=True) for r in raw)}
    for item, csv_row in zip(body, reversed(raw), strict=True):
        assert list(item) == ["energy_price", "hash_price", "timestamp", "token_price"]
        start = datetime.fromisoformat(item["timestamp"]).replace(tzinfo=UTC)
        for name in ("energy_price", "hash_price", "token_price"):
            assert item[name] == float(stored[start][name])  # exactly what is stored
            # The CSV's value to the storage's precision: 15 decimal places on PostgreSQL; SQLite hands decimals
            # back with 15 significant digits (Django's converter), so there the match is to 1e-14 relative.
            if connection.vendor == "postgresql":
                assert item[name] == float(getattr(parsed[start], name))
            assert item[name] == pytest.approx(float(csv_row[name]), rel=1e-14, abs=1e-15)
    assert body[-1] == FIRST_ROW_JSON
    starts = [datetime.fromisoformat(item["timestamp"]) for item in body]
    assert all(newer - older == timedelta(minutes=5) for newer, older in pairwise(starts))
    assert parse_prices(body)[0].interval_start == datetime(2025, 6, 21, 12, 0, tzinfo=UTC)


def _store_energyarb_prices(sites, starts, *, energy_by_site, hashprice, token_price, with_energy=None):
    store_market_prices(
        rows=[
            MarketPriceRow(
                interval_start=start,
                hashprice_usd_per_ph_day=Decimal(hashprice),
                inference_price_usd_per_mtok=Decimal(token_price),
            )
            for start in starts
        ],
        source=DataSource.SIMULATOR,
    )
    store_energy_prices(
        rows=[
            EnergyPriceRow(interval_start=start, price_usd_per_mwh=Decimal(price), site_id=site.pk)
            for start in (with_energy or starts)
            for site, price in zip(sites, energy_by_site, strict=True)
        ],
        source=DataSource.SIMULATOR,
    )


T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STARTS = [T0 + timedelta(minutes=5 * i) for i in range(4)]


@pytest.mark.django_db
def test_without_a_trace_energyarbs_prices_are_converted_with_the_declared_scale(mara):
    sites = [SiteFactory(), SiteFactory()]
    # 60 and 90 USD/MWh -> fleet mean 75 -> 75 / 30 = 2.5; 48 USD per PH/s per day / 12 = 4; 5 USD per Mtok / 2.5 = 2.
    _store_energyarb_prices(
        sites, STARTS, energy_by_site=("60", "90"), hashprice="48", token_price="5", with_energy=STARTS[:3]
    )

    body = mara.get("/mara/prices").json()

    # The newest market interval has no energy price: it is skipped, not guessed.
    assert [item["timestamp"] for item in body] == ["2026-06-01T12:10:00", "2026-06-01T12:05:00", "2026-06-01T12:00:00"]
    assert {(item["energy_price"], item["hash_price"], item["token_price"]) for item in body} == {(2.5, 4.0, 2.0)}
    real = units.hackathon_prices_to_real(energy_price=2.5, hash_price=4.0, token_price=2.0)
    assert (real.price_usd_per_mwh, real.hashprice_usd_per_ph_day, real.inference_price_usd_per_mtok) == (75, 48, 5)
    assert len(parse_prices(body)) == 3


@pytest.mark.django_db
def test_a_configured_site_prices_the_energy_instead_of_the_fleet_mean(mara, settings):
    sites = [SiteFactory(code="cheap"), SiteFactory(code="dear")]
    _store_energyarb_prices(sites, STARTS[:1], energy_by_site=("60", "90"), hashprice="48", token_price="5")
    settings.ENERGYARB = {**settings.ENERGYARB, "MARA_API_ENERGY_SITE": "dear"}

    (item,) = mara.get("/mara/prices").json()

    assert item["energy_price"] == 3.0  # 90 / 30


@pytest.mark.django_db
def test_an_imported_trace_takes_precedence_over_converted_prices(mara, tmp_path):
    _store_energyarb_prices([SiteFactory()], STARTS, energy_by_site=("60",), hashprice="48", token_price="5")
    import_trace(tmp_path, first_rows=2)

    body = mara.get("/mara/prices").json()

    assert [item["timestamp"] for item in body] == ["2025-06-21T12:05:00", "2025-06-21T12:00:00"]


@pytest.mark.django_db
def test_at_most_the_configured_number_of_intervals_is_served(mara, settings):
    import_trace()
    settings.ENERGYARB = {**settings.ENERGYARB, "MARA_API_MAX_INTERVALS": 5}

    body = mara.get("/mara/prices").json()

    assert [item["timestamp"] for item in body] == [
        "2025-06-21T21:05:00",
        "2025-06-21T21:00:00",
        "2025-06-21T20:55:00",
        "2025-06-21T20:50:00",
        "2025-06-21T20:45:00",
    ]


@pytest.mark.django_db
def test_no_prices_serves_an_empty_list(mara):
    assert mara.get("/mara/prices").json() == []
    assert served_prices() == []


@pytest.mark.django_db
def test_public_endpoints_ignore_an_unknown_key_and_accept_a_trailing_slash(mara, first_row):
    prices = mara.get("/mara/prices/", HTTP_X_API_KEY="not-a-key")
    inventory = mara.get("/mara/inventory", HTTP_X_API_KEY="not-a-key")

    assert prices.status_code == inventory.status_code == 200
    assert prices["Content-Type"] == "application/json"
    assert inventory.json() == {
        "inference": {"asic": {"power": 15000, "tokens": 50000}, "gpu": {"power": 5000, "tokens": 1000}},
        "miners": {
            "air": {"hashrate": 1000, "power": 3500},
            "hydro": {"hashrate": 5000, "power": 5000},
            "immersion": {"hashrate": 10000, "power": 10000},
        },
    }


# POST /sites, GET /sites


@pytest.mark.django_db
def test_creating_a_site_issues_a_fresh_key_and_an_empty_allocation(mara):
    first = mara.post("/mara/sites", {"name": "  HackFestSite "}, format="json")
    second = mara.post("/mara/sites", {"name": "HackFestSite"}, format="json")

    assert first.status_code == second.status_code == 200
    body = first.json()
    assert list(body) == ["api_key", "name", "power"]
    assert body["name"] == "HackFestSite" and body["power"] == 1_000_000
    assert uuid.UUID(body["api_key"]).version == 4
    assert body["api_key"] != second.json()["api_key"]
    site = MarketApiSite.objects.get(api_key=body["api_key"])
    assert site.allocation.counts == dict.fromkeys(COUNTS, 0)


@pytest.mark.django_db
def test_creating_a_site_ignores_a_key_sent_along(mara, site):
    """A client that sets X-Api-Key on every request (a session header) may still create another site."""
    for key in (site.api_key, "a-key-from-yesterday"):
        response = mara.post("/mara/sites", {"name": "Another"}, format="json", HTTP_X_API_KEY=key)
        assert response.status_code == 200
        assert response.json()["api_key"] != site.api_key


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "   "}, {"name": None}, {"name": "x" * 101}, {"nom": "HackFestSite"}],
    ids=["missing", "empty", "blank", "null", "too-long", "misspelt"],
)
def test_a_site_needs_a_name(mara, payload):
    response = mara.post("/mara/sites", payload, format="json")

    assert response.status_code == 400
    assert "name" in response.json()
    assert not MarketApiSite.objects.exists()


@pytest.mark.django_db
def test_creating_sites_is_throttled_per_client(mara, monkeypatch):
    assert "mara" in api_settings.DEFAULT_THROTTLE_RATES
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"mara": "2/min"})
    monkeypatch.setattr(ScopedRateThrottle, "cache", LocMemCache("mara-throttle-test", {}))

    statuses = [mara.post("/mara/sites", {"name": f"s{i}"}, format="json").status_code for i in range(3)]

    assert statuses == [200, 200, 429]
    assert MarketApiSite.objects.count() == 2
    assert mara.get("/mara/prices").status_code == 200  # only site creation has the scope


@pytest.mark.django_db
def test_get_sites_shows_the_keys_site(mara, site):
    other = create_market_api_site(name="Other")

    body = mara.get("/mara/sites", **header(site)).json()

    assert body == {"api_key": site.api_key, "id": site.pk, "name": "HackFestSite", "power": 1_000_000}
    assert mara.get("/mara/sites", **header(other)).json()["id"] == other.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"), [("get", "/mara/sites"), ("get", "/mara/machines"), ("put", "/mara/machines")]
)
@pytest.mark.parametrize("key", [None, "", "0b8e1c38-0000-4000-8000-000000000000", "x" * 500])
def test_protected_endpoints_refuse_a_missing_or_unknown_key(mara, site, method, path, key):
    extra = {} if key is None else {"HTTP_X_API_KEY": key}

    response = getattr(mara, method)(path, {"air_miners": 1}, format="json", **extra)

    assert response.status_code == 401
    assert "X-Api-Key" in response.json()["detail"] or response.json()["detail"] == "Invalid API key."
    assert "X-Api-Key" in response["WWW-Authenticate"]
    assert site.allocation.counts == dict.fromkeys(COUNTS, 0)


@pytest.mark.django_db
def test_a_market_api_key_grants_nothing_under_api(mara, site):
    assert mara.get("/api/sites/", **header(site)).status_code in (401, 403)


# PUT /machines


@pytest.mark.django_db
def test_put_machines_answers_with_the_events_allocation_shape(mara, site):
    response = mara.put("/mara/machines", ALLOCATION, format="json", **header(site))

    assert response.status_code == 200
    body = response.json()
    assert list(body) == sorted(body)
    assert body == {**ALLOCATION, "id": site.allocation.pk, "site_id": site.pk, "updated_at": body["updated_at"]}
    assert NAIVE_ISO.match(body["updated_at"])
    assert (
        datetime.fromisoformat(body["updated_at"]).replace(tzinfo=UTC) == MarketApiAllocation.objects.get().updated_at
    )


@pytest.mark.django_db
def test_put_replaces_the_allocation_and_a_type_left_out_runs_no_units(mara, site):
    mara.put("/mara/machines", ALLOCATION, format="json", **header(site))

    # HTTPie's `field=5` sends strings, as in the event's own example; echoed answer keys are ignored.
    body = mara.put(
        "/mara/machines", {"gpu_compute": "7", "id": 99, "site_id": 99, "power": {}}, format="json", **header(site)
    ).json()

    assert {name: body[name] for name in COUNTS} == {**dict.fromkeys(COUNTS, 0), "gpu_compute": 7}
    assert body["site_id"] == site.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"air_miners": -1}, "air_miners"),
        ({"hydro_miners": 1.5}, "hydro_miners"),
        ({"immersion_miners": "ten"}, "immersion_miners"),
        ({"gpu_compute": True}, "gpu_compute"),
        ({"asic_compute": None}, "asic_compute"),
        ({"asic_compute": 10**7}, "asic_compute"),
        ({"asic_miners": 10, "gpu_compute": 30}, "asic_miners"),
        ({"asic_miners": 10, "gpu_compute": -30}, "gpu_compute"),
        ({}, "non_field_errors"),
        (["air_miners", 1], "non_field_errors"),
    ],
    ids=["negative", "fraction", "text", "boolean", "null", "huge", "unknown", "unknown-and-bad", "empty", "list"],
)
def test_invalid_counts_are_refused_with_field_errors_and_nothing_changes(mara, site, payload, field):
    set_market_api_allocation(site=site, counts=ALLOCATION)

    response = mara.put("/mara/machines", payload, format="json", **header(site))

    assert response.status_code == 400
    assert field in response.json()
    site.allocation.refresh_from_db()
    assert site.allocation.counts == ALLOCATION


@pytest.mark.django_db
def test_malformed_json_is_a_400(mara, site):
    response = mara.generic("PUT", "/mara/machines", "{air_miners: 1", content_type="application/json", **header(site))

    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.django_db
def test_an_allocation_over_the_sites_power_is_refused(mara, site):
    set_market_api_allocation(site=site, counts=ALLOCATION)

    # 100 immersion miners draw exactly 1,000,000 W; one air miner more is 3,500 W too many.
    response = mara.put("/mara/machines", {"immersion_miners": 100, "air_miners": 1}, format="json", **header(site))

    assert response.status_code == 400
    assert response.json() == {
        "detail": response.json()["detail"],
        "required_power": 1_003_500,
        "site_power": 1_000_000,
    }
    assert "1,003,500 W" in response.json()["detail"]
    site.allocation.refresh_from_db()
    assert site.allocation.counts == ALLOCATION


@pytest.mark.django_db
def test_an_allocation_using_exactly_the_sites_power_is_accepted(mara, site):
    response = mara.put("/mara/machines", {"immersion_miners": 100}, format="json", **header(site))

    assert response.status_code == 200
    assert response.json()["immersion_miners"] == 100


@pytest.mark.django_db
def test_each_key_writes_only_its_own_site(mara, site):
    other = create_market_api_site(name="Other")

    mara.put("/mara/machines", {"asic_compute": 3}, format="json", **header(other))

    site.allocation.refresh_from_db()
    assert site.allocation.counts == dict.fromkeys(COUNTS, 0)
    assert MarketApiAllocation.objects.get(site=other).asic_compute == 3


# GET /machines


@pytest.mark.django_db
def test_get_machines_reports_the_hackathon_accounting_at_the_first_row(mara, site, first_row):
    mara.put("/mara/machines", ALLOCATION, format="json", **header(site))

    body = mara.get("/mara/machines", **header(site)).json()

    assert list(body) == sorted(body)
    assert set(body) == {
        *COUNTS,
        "id",
        "site_id",
        "updated_at",
        "power",
        "revenue",
        "total_power_cost",
        "total_power_used",
        "total_revenue",
    }
    assert body["power"] == FIRST_ROW_POWER and list(body["power"]) == sorted(body["power"])
    assert body["revenue"] == FIRST_ROW_REVENUE and list(body["revenue"]) == sorted(body["revenue"])
    assert {name: body[name] for name in FIRST_ROW_TOTALS} == FIRST_ROW_TOTALS


@pytest.mark.django_db
def test_get_machines_accounts_at_the_newest_served_interval(mara, site):
    import_trace()
    newest = trace_rows()[-1]
    mara.put("/mara/machines", ALLOCATION, format="json", **header(site))

    body = mara.get("/mara/machines", **header(site)).json()

    price = PriceRow(float(newest["energy_price"]), float(newest["hash_price"]), float(newest["token_price"]))
    expected = score_allocation(ALLOCATION, price)
    assert body["revenue"] == pytest.approx(expected.revenue, rel=1e-14)
    assert body["total_revenue"] == pytest.approx(expected.total_revenue, rel=1e-14)
    assert body["total_power_cost"] == pytest.approx(357_000 * float(newest["energy_price"]), rel=1e-14)
    assert body["total_power_used"] == 357_000


@pytest.mark.django_db
def test_a_new_site_reports_zeros_before_its_first_put(mara, site, first_row):
    body = mara.get("/mara/machines", **header(site)).json()

    assert body["power"] == dict.fromkeys(sorted(COUNTS), 0)
    assert body["revenue"] == dict.fromkeys(sorted(COUNTS), 0.0)
    assert (body["total_power_used"], body["total_power_cost"], body["total_revenue"]) == (0, 0.0, 0.0)


@pytest.mark.django_db
def test_get_machines_without_any_price_is_503_and_writes_nothing(mara, site):
    response = mara.get("/mara/machines", **header(site))

    assert response.status_code == 503
    assert "price" in response.json()["detail"]


@pytest.mark.django_db
def test_get_machines_without_an_allocation_is_404_and_creates_none(mara, first_row):
    bare = MarketApiSite.objects.create(name="made by hand")

    response = mara.get("/mara/machines", **header(bare))

    assert response.status_code == 404
    assert not MarketApiAllocation.objects.exists()


@pytest.mark.django_db
def test_a_power_lowered_below_the_stored_allocation_is_reported_as_a_conflict(mara, site, first_row):
    set_market_api_allocation(site=site, counts={"immersion_miners": 50})
    MarketApiSite.objects.filter(pk=site.pk).update(power_w=100_000)

    response = mara.get("/mara/machines", **header(site))

    assert response.status_code == 409
    assert response.json()["required_power"] == 500_000


# Services and models.


@pytest.mark.django_db
@pytest.mark.parametrize(
    "counts",
    [{"asic_miners": 1}, {"air_miners": -1}, {"air_miners": 1.0}, {"air_miners": True}, {"air_miners": 10**7}],
)
def test_the_service_refuses_what_the_serializer_refuses(site, counts):
    with pytest.raises(MarketApiError):
        set_market_api_allocation(site=site, counts=counts)


@pytest.mark.django_db
def test_the_service_refuses_over_power_and_a_blank_name(site):
    with pytest.raises(AllocationOverPower) as refused:
        set_market_api_allocation(site=site, counts={"asic_compute": 67})  # 1,005,000 W
    assert (refused.value.required_w, refused.value.available_w) == (1_005_000, 1_000_000)
    with pytest.raises(MarketApiError):
        create_market_api_site(name="  ")


@pytest.mark.django_db
@pytest.mark.parametrize("field", COUNTS)
def test_the_database_refuses_a_negative_count(site, field):
    with pytest.raises(IntegrityError), transaction.atomic():
        MarketApiAllocation.objects.filter(site=site).update(**{field: -1})


@pytest.mark.django_db
def test_the_database_refuses_a_site_without_power_or_name():
    with pytest.raises(IntegrityError), transaction.atomic():
        MarketApiSite.objects.create(name="x", power_w=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        MarketApiSite.objects.create(name="")


def test_the_constraints_are_named():
    names = {c.name for model in (MarketApiSite, MarketApiAllocation) for c in model._meta.constraints}
    assert names == {
        "sites_marketapisite_power_positive",
        "sites_marketapisite_name_not_blank",
        "sites_marketapisite_api_key_not_blank",
        "sites_marketapiallocation_counts_not_negative",
    }


# Schema and admin.


@pytest.mark.django_db
def test_mara_stays_out_of_the_api_schema(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))

    paths = yaml.safe_load(target.read_text())["paths"]
    assert paths and not [path for path in paths if path.startswith("/mara")]


@pytest.fixture
def admin_client_(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.mark.django_db
def test_admin_lists_and_shows_sites_with_a_read_only_key(admin_client_, site):
    set_market_api_allocation(site=site, counts=ALLOCATION)

    listing = admin_client_.get("/admin/sites/marketapisite/")
    change = admin_client_.get(f"/admin/sites/marketapisite/{site.pk}/change/")
    allocations = admin_client_.get("/admin/sites/marketapiallocation/")

    assert listing.status_code == change.status_code == allocations.status_code == 200
    assert "357,000" in listing.content.decode()
    assert "api_key" not in change.context["adminform"].form.fields
    assert site.api_key in change.content.decode()


@pytest.mark.django_db
def test_admin_refuses_a_power_below_the_allocation_and_creates_an_allocation_with_a_site(admin_client_, site):
    set_market_api_allocation(site=site, counts=ALLOCATION)
    prefix = "allocation-"
    inline = {f"{prefix}TOTAL_FORMS": "1", f"{prefix}INITIAL_FORMS": "1", f"{prefix}MIN_NUM_FORMS": "0"}
    inline |= {f"{prefix}MAX_NUM_FORMS": "1", f"{prefix}0-id": str(site.allocation.pk), f"{prefix}0-site": str(site.pk)}

    refused = admin_client_.post(
        f"/admin/sites/marketapisite/{site.pk}/change/", {"name": "HackFestSite", "power_w": "300000", **inline}
    )
    empty_inline = {f"{prefix}TOTAL_FORMS": "0", f"{prefix}INITIAL_FORMS": "0"}
    added = admin_client_.post(
        "/admin/sites/marketapisite/add/", {"name": "Staff site", "power_w": "500000", **empty_inline}
    )

    assert refused.status_code == 200
    assert "power cannot be below that" in refused.content.decode()
    site.refresh_from_db()
    assert site.power_w == 1_000_000
    assert added.status_code == 302
    staff_site = MarketApiSite.objects.get(name="Staff site")
    assert staff_site.power_w == 500_000 and staff_site.allocation.counts == dict.fromkeys(COUNTS, 0)
    assert len(staff_site.api_key) == 36


@pytest.mark.django_db
def test_admin_allocations_are_read_only(admin_client_, site):
    assert admin_client_.get("/admin/sites/marketapiallocation/add/").status_code == 403
    assert admin_client_.post(f"/admin/sites/marketapiallocation/{site.allocation.pk}/change/", {}).status_code == 403
