"""The operations dashboard: its page, its one JSON document, and the status of a run while AI Optimize works."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from optimizer.choices import AdvisorStatus, RunStatus
from optimizer.models import OptimizationRun, ScenarioRun
from sites.choices import SiteStatus
from sites.models import HardwareModel, Site, SiteInventory
from sites.seeding import seed_physical_world
from sites.services import refresh_market_prices, refresh_weather
from sites.simulation import pue
from sla.choices import ContractStatus
from sla.models import ContractDelivery, Tier
from sla.services import seed_tiers
from tests.factories import (
    T0,
    AllocationFactory,
    ContractFactory,
    CustomerFactory,
    OptimizationRunFactory,
    PlacementFactory,
)

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=12, minutes=2)
DATA_URL = "/api/dashboard/"


@pytest.fixture
def world():
    """The ten seeded sites and tiers with fresh simulated prices and weather at NOW."""
    seed_physical_world()
    seed_tiers()
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)
    return {site.code: site for site in Site.objects.all()}


@pytest.fixture
def applied_run(world):
    """A stored, applied run: 100 immersion miners in Norway and 20 GPU nodes in Iceland running."""
    norway, nordic = world["site_3_norway"], world["site_1_nordic"]
    immersion = HardwareModel.objects.get(code="miner_immersion")
    gpu = HardwareModel.objects.get(code="inference_gpu")
    SiteInventory.objects.filter(site=norway, hardware_model=immersion).update(units_running=100)
    SiteInventory.objects.filter(site=nordic, hardware_model=gpu).update(units_running=20)
    run = OptimizationRunFactory(
        started_at=NOW - timedelta(minutes=1),
        finished_at=NOW - timedelta(seconds=30),
        revenue_usd_per_h=Decimal("1000.00"),
        energy_cost_usd_per_h=Decimal("400.00"),
        carbon_cost_usd_per_h=Decimal("25.00"),
        penalty_usd_per_h=Decimal("5.00"),
        is_applied=True,
        explanation="Norway is power-bound.",
        details={"binding": [{"text": "site site_3_norway is power-bound: one more MW is worth $12/h"}]},
    )
    run.queued_at = NOW - timedelta(minutes=1)
    run.save(update_fields=["queued_at"])
    AllocationFactory(
        run=run,
        site=norway,
        hardware_model=immersion,
        units_running=100,
        revenue_usd_per_h=Decimal("600.0000"),
        energy_cost_usd_per_h=Decimal("150.0000"),
    )
    AllocationFactory(
        run=run,
        site=nordic,
        hardware_model=gpu,
        units_running=20,
        revenue_usd_per_h=Decimal("400.0000"),
        energy_cost_usd_per_h=Decimal("250.0000"),
    )
    return run


@pytest.fixture
def staff_client(staff_user):
    client = APIClient()
    client.force_login(staff_user)
    return client


def get_data(client):
    with time_machine.travel(NOW, tick=False):
        response = client.get(DATA_URL)
    assert response.status_code == 200, response.content
    return response.json()


# Numbers and units.


def test_metric_cards_come_from_the_applied_run_in_usd_per_hour(staff_client, applied_run):
    metrics = get_data(staff_client)["metrics"]

    assert metrics["revenue_usd_per_h"] == 1000.0
    assert metrics["energy_cost_usd_per_h"] == 400.0
    assert metrics["profit_usd_per_h"] == 570.0  # 1,000 - 400 energy - 25 carbon - 5 penalty
    assert metrics["run_id"] == applied_run.pk


def test_facility_power_is_it_power_times_pue_in_mw_against_capacity(staff_client, applied_run):
    body = get_data(staff_client)
    sites = {row["code"]: row for row in body["sites"]}
    norway, nordic = sites["site_3_norway"], sites["site_1_nordic"]

    assert norway["it_kw"] == 700.0  # 100 immersion miners x 7 kW
    assert norway["pue"] == pytest.approx(pue("immersion", norway["temperature_c"]), abs=1e-3)
    assert norway["facility_kw"] == pytest.approx(700.0 * norway["pue"], rel=1e-3)
    assert nordic["it_kw"] == 160.0  # 20 GPU nodes x 8.0 kW
    metrics = body["metrics"]
    assert metrics["capacity_mw"] == 15.0  # the ten sites' 15,000 kW
    assert metrics["it_power_mw"] == 0.86
    assert metrics["facility_power_mw"] == pytest.approx(
        (norway["facility_kw"] + nordic["facility_kw"]) / 1000, abs=1e-3
    )
    # Fleet PUE is load-weighted: facility / IT.
    assert metrics["pue_average"] == pytest.approx(metrics["facility_power_mw"] / metrics["it_power_mw"], abs=1e-3)


def test_facility_power_counts_each_machine_at_the_pue_of_its_hall(staff_client, applied_run, world):
    # Norway's own cooling is immersion: its miners run in the tanks, but its GPU nodes (air-cooled) sit in a
    # chilled air hall, so 10 of them (80 kW) draw 80 x air PUE, not 80 x the tanks' PUE.
    gpu = HardwareModel.objects.get(code="inference_gpu")
    SiteInventory.objects.filter(site=world["site_3_norway"], hardware_model=gpu).update(units_running=10)
    body = get_data(staff_client)
    norway = {row["code"]: row for row in body["sites"]}["site_3_norway"]
    temperature = norway["temperature_c"]

    assert norway["it_kw"] == 780.0
    assert norway["facility_kw"] == pytest.approx(
        700.0 * pue("immersion", temperature) + 80.0 * pue("air", temperature), abs=0.01
    )
    assert norway["facility_kw"] > 780.0 * norway["pue"] + 80.0 * 0.1  # the tanks' PUE alone is short of it
    by_hardware = {row["hardware"]: row for row in norway["allocation"]}
    assert by_hardware["inference_gpu"]["pue"] == pytest.approx(pue("air", temperature), abs=1e-3)
    assert body["metrics"]["pue_average"] == pytest.approx(
        body["metrics"]["facility_power_mw"] / body["metrics"]["it_power_mw"], abs=1e-3
    )


def test_renewable_share_is_weighted_by_the_energy_drawn(staff_client, applied_run):
    body = get_data(staff_client)
    sites = {row["code"]: row for row in body["sites"]}
    norway, nordic = sites["site_3_norway"], sites["site_1_nordic"]

    expected = (norway["facility_kw"] * 95 + nordic["facility_kw"] * 90) / (
        norway["facility_kw"] + nordic["facility_kw"]
    )
    assert body["metrics"]["renewable_share_pct"] == pytest.approx(expected, abs=0.05)


def test_site_cards_show_mix_local_time_weather_and_money(staff_client, applied_run):
    sites = {row["code"]: row for row in get_data(staff_client)["sites"]}
    nordic, tokyo = sites["site_1_nordic"], sites["site_7_japan"]

    assert len(sites) == 10
    assert nordic["inference_kw"] == 160.0 and nordic["mining_kw"] == 0.0
    assert nordic["inference_share_pct"] == 100.0
    assert nordic["revenue_usd_per_h"] == 400.0 and nordic["profit_usd_per_h"] == 150.0
    assert tokyo["local_time"] == "21:02"  # 12:02 UTC in Tokyo (UTC+9)
    assert tokyo["utc_offset"] == "+09:00"
    assert tokyo["revenue_usd_per_h"] is None  # the run allocated nothing there
    for row in sites.values():
        assert row["temperature_c"] is not None and row["temperature_measured"]
        assert row["energy_price_usd_per_mwh"] is not None


def test_charts_have_data_for_every_series(staff_client, applied_run):
    charts = get_data(staff_client)["charts"]

    assert charts["runs"]["id"] == [applied_run.pk]
    assert charts["runs"]["profit_usd_per_h"] == [570.0]
    assert len(charts["energy_prices"]["series"]) == 10
    assert charts["energy_prices"]["t"]
    assert all(any(v is not None for v in series["values"]) for series in charts["energy_prices"]["series"])
    assert {curve["cooling_type"] for curve in charts["pue_temperature"]["curves"]} == {
        site.cooling_type for site in Site.objects.all()
    }
    assert len(charts["pue_temperature"]["sites"]) == 10
    assert charts["pue_temperature"]["history"]
    allocation = {series["hardware"]: series["it_kw"] for series in charts["allocation"]["series"]}
    assert len(charts["allocation"]["sites"]) == 10
    assert sum(allocation["miner_immersion"]) == 700.0


def test_run_chart_profit_is_the_runs_own_profit(staff_client, applied_run):
    bare = OptimizationRunFactory(
        revenue_usd_per_h=Decimal("800.55"),
        energy_cost_usd_per_h=Decimal("300.10"),
        carbon_cost_usd_per_h=None,
        penalty_usd_per_h=None,
        started_at=NOW - timedelta(hours=2),
        finished_at=NOW - timedelta(hours=2) + timedelta(seconds=5),
    )
    OptimizationRun.objects.filter(pk=bare.pk).update(queued_at=NOW - timedelta(hours=2))

    runs = get_data(staff_client)["charts"]["runs"]

    expected = {run.pk: float(run.profit_usd_per_h) for run in OptimizationRun.objects.all()}
    assert (
        dict(zip(runs["id"], runs["profit_usd_per_h"], strict=True))
        == expected
        == {bare.pk: 500.45, applied_run.pk: 570.0}
    )
    assert runs["t"][0] == "2026-06-01T10:02:05Z"  # finished_at, oldest first


def test_sla_capacity_and_uptime_by_tier(staff_client, world):
    standard = Tier.objects.get(code="standard")
    contract = ContractFactory(
        tier=standard, capacity_kw=Decimal("300"), status=ContractStatus.ACTIVE, starts_at=NOW - timedelta(hours=1)
    )
    PlacementFactory(
        contract=contract, site=world["site_2_canada"], capacity_kw=Decimal("300"), valid_from=NOW - timedelta(hours=1)
    )
    ended = ContractFactory(tier=standard, status=ContractStatus.COMPLETED, starts_at=NOW - timedelta(days=3))
    PlacementFactory(contract=ended, site=world["site_2_canada"], valid_from=NOW - timedelta(days=3))
    for minute, delivered in ((0, "300"), (5, "150")):
        ContractDelivery.objects.create(
            contract=contract,
            interval_start=NOW - timedelta(minutes=30 - minute),
            interval_minutes=5,
            committed_kw=Decimal("300"),
            delivered_kw=Decimal(delivered),
        )

    body = get_data(staff_client)

    assert body["metrics"]["sla_committed_kw"] == {"premium": 0.0, "standard": 300.0, "flexible": 0.0, "spot": 0.0}
    tiers = {row["code"]: row for row in body["tiers"]}
    assert tiers["standard"]["uptime_pct"] == 75.0  # 450 of 600 kW-intervals delivered
    assert tiers["premium"]["uptime_pct"] is None
    canada = next(row for row in body["sites"] if row["code"] == "site_2_canada")
    assert canada["committed_kw"] == 300.0
    assert canada["contracts"][0]["contract"] == contract.pk
    assert body["contracts"][0]["id"] in {contract.pk, ended.pk}


def test_sla_panel_lists_customers_and_latest_contracts(staff_client, world):
    customer = CustomerFactory(name="Zeta Compute")
    ContractFactory(customer=customer, tier=Tier.objects.get(code="spot"))

    body = get_data(staff_client)

    assert {"id": customer.pk, "name": "Zeta Compute"} in body["customers"]
    assert body["contracts"][0]["customer"] == "Zeta Compute"
    assert body["contracts"][0]["tier"] == "spot"


# Status.


def test_status_is_online_with_fresh_data(staff_client, world):
    status = get_data(staff_client)["status"]

    assert status["state"] == "online"
    assert status["data_age_minutes"] <= status["max_data_age_minutes"]


def test_status_is_stale_when_prices_are_old(staff_client, world):
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        status = staff_client.get(DATA_URL).json()["status"]

    assert status["state"] == "stale"
    assert "old" in status["detail"]


def test_status_without_sites_asks_for_initialize(staff_client, db):
    body = get_data(staff_client)

    assert body["status"]["state"] == "empty"
    assert body["sites"] == []
    assert body["metrics"]["revenue_usd_per_h"] is None


def test_a_site_in_maintenance_does_not_make_the_data_stale(staff_client, world):
    Site.objects.filter(code="site_5_texas").update(status=SiteStatus.MAINTENANCE)

    body = get_data(staff_client)

    assert body["status"]["state"] == "online"
    assert body["metrics"]["sites_online"] == 9


# Cost and side effects.


# The dashboard's reads, one per panel (optimizer.dashboard module docstring): the newest run, sites with latest
# price, temperature and applied-run money, inventories, market, tiers, placements, run history, price chart,
# temperature chart, latest contracts, customers, scenarios. Uptime by tier is cached for a minute.
DASHBOARD_READS = 12
SESSION_AND_USER = 2


def test_query_count_is_exact_and_does_not_grow_with_the_data(staff_client, applied_run, django_assert_num_queries):
    get_data(staff_client)  # fills the minute's uptime cache
    with django_assert_num_queries(SESSION_AND_USER + DASHBOARD_READS):
        get_data(staff_client)

    # More of everything the page lists or sums: the same queries.
    customer = CustomerFactory(name="Many Contracts Ltd")
    norway = Site.objects.get(code="site_3_norway")
    for n in range(6):
        contract = ContractFactory(customer=customer, status=ContractStatus.ACTIVE, starts_at=NOW - timedelta(hours=1))
        PlacementFactory(contract=contract, site=norway, valid_from=NOW - timedelta(hours=1))
        OptimizationRunFactory(started_at=NOW - timedelta(hours=2), finished_at=NOW - timedelta(minutes=90 + n))
    OptimizationRun.objects.exclude(pk=applied_run.pk).update(queued_at=NOW - timedelta(hours=2))  # older runs
    ScenarioRun.objects.create(
        scenario="renewable", title="Carbon price 80 USD/t over 2 h", started_at=NOW, finished_at=NOW, result={}
    )
    with django_assert_num_queries(SESSION_AND_USER + DASHBOARD_READS):
        body = get_data(staff_client)
    assert len(body["contracts"]) == 6 and body["metrics"]["sla_committed_kw_total"] > 0


def test_a_newest_run_that_is_not_applied_costs_one_more_query(staff_client, applied_run, django_assert_num_queries):
    OptimizationRunFactory(status=RunStatus.QUEUED, started_at=None, finished_at=None)
    get_data(staff_client)

    with django_assert_num_queries(SESSION_AND_USER + DASHBOARD_READS + 1):
        body = get_data(staff_client)

    assert body["latest_run"]["status"] == "queued"
    assert body["metrics"]["run_id"] == applied_run.pk  # the money still comes from the run in force
    assert body["metrics"]["profit_usd_per_h"] == 570.0


def test_every_change_shows_on_the_next_request(staff_client, applied_run):
    """Reads whose SQL is compiled once per process still run on every request: nothing is served stale."""
    get_data(staff_client)
    norway = Site.objects.get(code="site_3_norway")
    Site.objects.filter(pk=norway.pk).update(status=SiteStatus.MAINTENANCE, name="Norway Oslo (works)")
    SiteInventory.objects.filter(site=norway, hardware_model__code="miner_immersion").update(units_running=50)
    Tier.objects.filter(code="spot").update(name="Spot (renamed)")
    customer = CustomerFactory(name="Aardvark Compute")
    contract = ContractFactory(customer=customer, tier=Tier.objects.get(code="premium"))
    newer = OptimizationRunFactory(
        started_at=NOW - timedelta(seconds=20),
        finished_at=NOW - timedelta(seconds=10),
        revenue_usd_per_h=Decimal("2000.00"),
        energy_cost_usd_per_h=Decimal("500.00"),
        is_applied=True,
    )
    OptimizationRun.objects.filter(pk=newer.pk).update(queued_at=NOW - timedelta(seconds=30))
    AllocationFactory(
        run=newer, site=norway, hardware_model=HardwareModel.objects.get(code="miner_immersion"), units_running=50,
        revenue_usd_per_h=Decimal("2000.0000"), energy_cost_usd_per_h=Decimal("500.0000"),
    )  # fmt: skip
    ScenarioRun.objects.create(scenario="heat-wave", title="Heat wave: x", started_at=NOW, finished_at=NOW, result={})

    body = get_data(staff_client)

    sites = {row["code"]: row for row in body["sites"]}
    assert sites["site_3_norway"]["status"] == "maintenance" and sites["site_3_norway"]["name"] == "Norway Oslo (works)"
    assert sites["site_3_norway"]["it_kw"] == 350.0  # 50 immersion miners x 7 kW
    assert sites["site_3_norway"]["revenue_usd_per_h"] == 2000.0 and sites["site_1_nordic"]["revenue_usd_per_h"] is None
    assert body["metrics"]["run_id"] == newer.pk and body["latest_run"]["id"] == newer.pk
    assert {row["code"]: row["name"] for row in body["tiers"]}["spot"] == "Spot (renamed)"
    assert body["customers"][0] == {"id": customer.pk, "name": "Aardvark Compute"}
    assert body["contracts"][0]["id"] == contract.pk
    assert next(row for row in body["scenarios"] if row["scenario"] == "heat-wave")["has_run"]


def test_dashboard_get_writes_nothing(staff_client, applied_run):
    with CaptureQueriesContext(connection) as queries:
        get_data(staff_client)

    writes = [q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]
    assert writes == []


# Permissions and the page.


def test_anonymous_api_request_is_refused(anon_api, world):
    assert anon_api.get(DATA_URL).status_code in (401, 403)


def test_anonymous_token_less_request_gets_401_with_challenge(anon_api):
    response = anon_api.get(DATA_URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_customer_is_forbidden_from_the_dashboard_data(customer_api, world):
    assert customer_api.get(DATA_URL).status_code == 403


def test_page_redirects_anonymous_visitors_to_login(client, world):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("dashboard:login"))


def test_page_redirects_a_signed_in_customer_to_login(client, customer, world):
    client.force_login(customer.user)

    response = client.get("/")

    assert response.status_code == 302
    assert reverse("dashboard:login") in response["Location"]


def test_page_embeds_the_first_data_and_loads_only_local_assets(client, staff_user, applied_run):
    client.force_login(staff_user)
    with time_machine.travel(NOW, tick=False):
        response = client.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="dashboard-data"' in html and 'id="dashboard-config"' in html
    assert "leaflet/leaflet.js" in html and "vendor/chart.js/chart.umd.min.js" in html
    assert "dashboard/dashboard.js" in html
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html
    assert "<script>" not in html  # no inline script: data travels by json_script only


# The run status that AI Optimize polls.


def test_run_status_shows_explanation_and_claudes_narrative(staff_client, applied_run):
    applied_run.advisor_status = AdvisorStatus.REJECTED
    applied_run.advisor_narrative = "Move inference to Iceland."
    applied_run.advisor_verdict = "Rejected: worse by $3/h."
    applied_run.save()

    body = staff_client.get(f"/api/dashboard/runs/{applied_run.pk}/").json()

    assert body["status"] == RunStatus.SUCCEEDED and body["is_finished"]
    assert body["explanation"] == "Norway is power-bound."
    assert body["binding"] == ["site site_3_norway is power-bound: one more MW is worth $12/h"]
    assert body["advisor_narrative"] == "Move inference to Iceland."
    assert body["advisor_verdict"] == "Rejected: worse by $3/h."


def test_queued_run_is_not_finished(staff_client, db):
    run = OptimizationRunFactory(status=RunStatus.QUEUED, started_at=None, finished_at=None)

    body = staff_client.get(f"/api/dashboard/runs/{run.pk}/").json()

    assert body["status"] == "queued" and body["is_finished"] is False


def test_unknown_run_is_a_json_404(staff_client, db):
    response = staff_client.get("/api/dashboard/runs/999999/")

    assert response.status_code == 404
    assert "detail" in response.json()


# Sign-in page and map settings.


def test_staff_signs_in_through_the_dashboard_login(client, staff_user, world):
    response = client.post(reverse("dashboard:login"), {"username": "staff", "password": "pw-for-tests-1", "next": "/"})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_staff_signing_in_without_next_lands_on_the_dashboard(client, staff_user, world):
    """Without `next`, Django's default sent staff to /accounts/profile/, a 404."""
    response = client.post(reverse("dashboard:login"), {"username": "staff", "password": "pw-for-tests-1"})

    assert response.status_code == 302 and response["Location"] == reverse("dashboard:index")
    admin = client.post(reverse("admin:login"), {"username": "staff", "password": "pw-for-tests-1"})
    assert admin.status_code == 302 and admin["Location"] == reverse("dashboard:index")


@pytest.mark.parametrize("path", ["/", "/api/dashboard/"])
def test_the_dashboard_and_its_data_are_never_cached(staff_client, client, staff_user, world, path):
    client.force_login(staff_user)

    response = client.get(path)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_login_page_tells_a_signed_in_customer_it_needs_staff(client, customer):
    client.force_login(customer.user)

    html = client.get(reverse("dashboard:login")).content.decode()

    assert "not a staff account" in html


def test_map_has_no_tiles_unless_a_tile_server_is_configured(client, staff_user, world, settings):
    client.force_login(staff_user)
    assert client.get("/").context["config"]["map"]["tile_url"] == ""

    settings.ENERGYARB = {**settings.ENERGYARB, "MAP_TILE_URL": "https://tiles.example/{z}/{x}/{y}.png"}

    assert client.get("/").context["config"]["map"]["tile_url"] == "https://tiles.example/{z}/{x}/{y}.png"


def test_uptime_by_tier_is_cached_for_a_minute_only(staff_client, world, settings):
    # A cache of this test's own: the suite's file cache is shared by every xdist worker, and each clears it.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "uptime"}}
    contract = ContractFactory(tier=Tier.objects.get(code="flexible"), status=ContractStatus.ACTIVE)
    assert {row["code"]: row["uptime_pct"] for row in get_data(staff_client)["tiers"]}["flexible"] is None
    ContractDelivery.objects.create(
        contract=contract,
        interval_start=NOW - timedelta(minutes=10),
        interval_minutes=5,
        committed_kw=Decimal("100"),
        delivered_kw=Decimal("90"),
    )

    cached = {row["code"]: row["uptime_pct"] for row in get_data(staff_client)["tiers"]}
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        later = {row["code"]: row["uptime_pct"] for row in staff_client.get(DATA_URL).json()["tiers"]}

    assert cached["flexible"] is None
    assert later["flexible"] == 90.0


def test_price_chart_samples_every_15_minutes_with_the_stored_prices(staff_client, world):
    from sites.models import EnergyPrice

    chart = get_data(staff_client)["charts"]["energy_prices"]

    assert chart["t"] and all(moment[14:16] in {"00", "15", "30", "45"} for moment in chart["t"])
    norway = next(series for series in chart["series"] if series["site"] == "site_3_norway")
    last = EnergyPrice.objects.get(site=world["site_3_norway"], interval_start=NOW.replace(minute=0))
    assert chart["t"][-1] == "2026-06-01T12:00:00Z"
    assert norway["values"][-1] == float(last.price_usd_per_mwh)


def test_a_site_card_says_where_its_price_comes_from(staff_client, applied_run):
    sites = {row["code"]: row for row in get_data(staff_client)["sites"]}

    assert sites["site_5_texas"]["price_source"] == "ERCOT HB_HUBAVG (USD, 15 min)"
    assert sites["site_10_germany"]["price_source"] == "ENTSOE DE-LU (EUR, 60 min)"
    assert sites["site_3_norway"]["price_source"] == "simulator"
