"""The original product's endpoints: its paths and field names, real data, real HTTP errors, no writes on GET."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from optimizer.choices import RunStatus, RunTrigger
from optimizer.models import OptimizationRun
from sites.catalogue import FLEET_TOTALS
from sites.models import HardwareModel, Site, SiteInventory
from sites.seeding import seed_physical_world
from sites.services import refresh_market_prices, refresh_weather
from sla.choices import ContractStatus
from sla.models import Tier
from sla.services import seed_tiers
from tests.factories import T0, AllocationFactory, ContractFactory, OptimizationRunFactory, PlacementFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=12, minutes=2)

SITE_FIELDS = {
    "site_id",
    "name",
    "location",
    "hardware_inventory",
    "allocation",
    "power_used",
    "power_capacity",
    "power_utilization",
    "weather",
    "current_temp",
    "local_time",
    "cooling_efficiency",
    "pricing",
    "energy_price",
    "revenue",
    "uptime",
    "efficiency_score",
    "last_updated",
}
TIERS = {"premium", "standard", "flexible", "spot"}


@pytest.fixture
def world():
    seed_physical_world()
    seed_tiers()
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)
    return {site.code: site for site in Site.objects.all()}


@pytest.fixture
def applied_run(world):
    norway = world["site_3_norway"]
    immersion = HardwareModel.objects.get(code="miner_immersion")
    SiteInventory.objects.filter(site=norway, hardware_model=immersion).update(units_running=100)
    run = OptimizationRunFactory(
        revenue_usd_per_h=Decimal("900.00"),
        energy_cost_usd_per_h=Decimal("300.00"),
        is_applied=True,
        explanation="Norway is cheap.",
        details={"horizon_hours": 6.0, "sites": [{"site": "site_3_norway", "inference_revenue_usd": 120.0}]},
    )
    OptimizationRun.objects.filter(pk=run.pk).update(queued_at=NOW - timedelta(minutes=1))
    AllocationFactory(
        run=run, site=norway, hardware_model=immersion, units_running=100, revenue_usd_per_h=Decimal("900")
    )
    return run


@pytest.fixture
def eager_worker(django_capture_on_commit_callbacks):
    """Call through the API with Celery tasks run in-process as each request's transaction commits."""
    from energyarb.celery import app

    def call(method, *args, **kwargs):
        with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
            return method(*args, **kwargs)

    app.conf.task_always_eager = True
    try:
        yield call
    finally:
        app.conf.task_always_eager = False


def at_now(call, *args, **kwargs):
    with time_machine.travel(NOW, tick=False):
        return call(*args, **kwargs)


# GET /api/health


def test_health_is_public_and_reports_initialization(anon_api, world):
    body = anon_api.get("/api/health").json()

    assert set(body) == {"status", "initialized", "timestamp"}
    assert body["status"] == "healthy" and body["initialized"] is True


def test_health_before_seeding_is_healthy_but_not_initialized(anon_api, db):
    body = anon_api.get("/api/health/").json()

    assert body["initialized"] is False


# POST /api/initialize


def test_initialize_needs_staff(anon_api, customer_api, db):
    assert anon_api.post("/api/initialize").status_code == 401
    assert customer_api.post("/api/initialize").status_code == 403
    assert not Site.objects.exists()


def test_initialize_seeds_once_and_is_idempotent(staff_api, eager_worker):
    first = eager_worker(staff_api.post, "/api/initialize")
    second = eager_worker(staff_api.post, "/api/initialize")

    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"status", "message", "pricing_data", "mara_inventory", "total_sites"}
    assert body["status"] == "initialized" and body["total_sites"] == 10
    assert second.json()["status"] == "already_initialized"
    assert Site.objects.count() == 10 and Tier.objects.count() == 4
    # The eager worker refreshed prices after the seed committed.
    assert set(second.json()["pricing_data"]) == {"energy_price", "hash_price", "token_price", "timestamp", "source"}


def test_initialize_reports_the_inventory_in_the_hackathon_shape_and_units(staff_api, world):
    inventory = at_now(staff_api.post, "/api/initialize").json()["mara_inventory"]

    assert set(inventory) == {"inference", "miners"}
    assert set(inventory["miners"]) == {"air", "hydro", "immersion"}
    assert set(inventory["inference"]) == {"asic", "gpu"}
    assert inventory["miners"]["air"] == {"hashrate": pytest.approx(200 / 0.06, abs=0.01), "power": 3500.0}  # W
    assert inventory["inference"]["gpu"] == {"power": 8000.0, "tokens": 12000 * 300}  # tokens per 5 minutes
    assert inventory["inference"]["asic"] is None  # retired from the catalogue: no public figure


def test_initialize_refuses_get_with_a_json_405(staff_api, db):
    response = staff_api.get("/api/initialize")

    assert response.status_code == 405
    assert "detail" in response.json()


# GET /api/sites/status


def test_sites_status_keeps_the_original_field_names(staff_api, applied_run):
    body = at_now(staff_api.get, "/api/sites/status").json()

    assert set(body) == {"sites", "total_sites", "global_metrics", "last_updated"}
    assert body["total_sites"] == 10
    assert set(body["global_metrics"]) == {
        "total_power_used",
        "total_power_capacity",
        "global_utilization",
        "average_efficiency",
        "average_uptime",
        "total_hardware",
        "active_sites",
    }
    assert set(body["global_metrics"]["total_hardware"]) == {
        "gpu_units",
        "asic_units",
        "air_miners",
        "hydro_miners",
        "immersion_miners",
    }
    site = next(site for site in body["sites"] if site["site_id"] == "site_3_norway")
    assert set(site) == SITE_FIELDS
    assert set(site["location"]) == {"lat", "lon", "timezone"}
    assert set(site["hardware_inventory"]) == {"miners", "inference"}
    assert set(site["allocation"]) == {"gpu_compute", "asic_compute", "air_miners", "hydro_miners", "immersion_miners"}
    assert set(site["weather"]) == {"temperature", "conditions"}
    assert set(site["pricing"]) == {"hash_price", "token_price", "energy_price"}


def test_sites_status_reports_power_in_watts_and_the_applied_allocation(staff_api, applied_run):
    body = at_now(staff_api.get, "/api/sites/status").json()
    norway = next(site for site in body["sites"] if site["site_id"] == "site_3_norway")

    assert norway["allocation"]["immersion_miners"] == 100
    assert norway["hardware_inventory"]["miners"]["immersion"] == 100
    assert norway["power_capacity"] == 1_500_000.0  # 1.5 MW in watts
    assert norway["power_used"] == pytest.approx(700_000 / norway["cooling_efficiency"], rel=1e-3)  # IT x PUE, W
    assert norway["revenue"] == 900.0
    assert norway["location"] == {"lat": 59.9139, "lon": 10.7522, "timezone": "Europe/Oslo"}
    assert norway["local_time"].startswith("2026-06-01T14:02:00+02:00")
    assert body["global_metrics"]["total_power_capacity"] == 15_000_000.0
    assert body["global_metrics"]["total_hardware"] == {
        "gpu_units": FLEET_TOTALS["inference_gpu"],
        "asic_units": 0,  # retired from the catalogue
        "air_miners": FLEET_TOTALS["miner_air"],
        "hydro_miners": FLEET_TOTALS["miner_hydro"],
        "immersion_miners": FLEET_TOTALS["miner_immersion"],
    }


def test_sites_status_is_staff_only(anon_api, customer_api, world):
    assert anon_api.get("/api/sites/status").status_code == 401
    assert customer_api.get("/api/sites/status").status_code == 403


# POST /api/optimize


def test_optimize_queues_a_run_and_answers_with_its_id_and_the_latest_result(staff_api, applied_run):
    response = at_now(staff_api.post, "/api/optimize")

    assert response.status_code == 202
    body = response.json()
    assert {
        "timestamp",
        "total_revenue",
        "climate_savings",
        "timezone_optimization",
        "sla_performance",
        "claude_reasoning",
    } <= set(body)
    run = OptimizationRun.objects.get(pk=body["run_id"])
    assert run.status == RunStatus.QUEUED and run.trigger == RunTrigger.API
    assert body["status"] == "queued"
    assert response["Location"] == body["status_url"] == f"/api/dashboard/runs/{run.pk}/"
    assert body["total_revenue"] == 900.0
    assert body["timezone_optimization"] == 20.0  # 120 USD of inference over a 6 h horizon
    assert set(body["sla_performance"]) == TIERS
    assert body["claude_reasoning"] == "Norway is cheap."


def test_optimize_with_a_worker_finishes_the_run(staff_api, world, eager_worker):
    body = eager_worker(staff_api.post, "/api/optimize").json()

    run = OptimizationRun.objects.get(pk=body["run_id"])
    assert run.status == RunStatus.SUCCEEDED
    assert run.explanation


def test_optimize_needs_staff(anon_api, customer_api, world):
    assert anon_api.post("/api/optimize").status_code == 401
    assert customer_api.post("/api/optimize").status_code == 403
    assert not OptimizationRun.objects.exists()


# GET /api/dashboard/metrics


def test_dashboard_metrics_keeps_the_original_field_names(staff_api, applied_run):
    standard = Tier.objects.get(code="standard")
    contract = ContractFactory(tier=standard, capacity_kw=Decimal("250"), status=ContractStatus.ACTIVE)
    PlacementFactory(contract=contract, site=Site.objects.get(code="site_2_canada"), capacity_kw=Decimal("250"))

    body = at_now(staff_api.get, "/api/dashboard/metrics").json()

    assert set(body) == {"global_metrics", "sites", "sla_commitments", "optimization_history", "current_prices"}
    assert set(body["global_metrics"]) == {
        "total_revenue",
        "total_power_used",
        "avg_cooling_efficiency",
        "renewable_energy_usage",
        "active_sites",
    }
    assert body["global_metrics"]["total_revenue"] == 900.0
    assert body["global_metrics"]["active_sites"] == 10
    assert body["sla_commitments"] == {"premium": 0.0, "standard": 250.0, "flexible": 0.0, "spot": 0.0}
    assert body["optimization_history"][-1]["run_id"] == applied_run.pk
    assert body["optimization_history"][-1]["profit"] == 600.0
    assert set(body["current_prices"]) == {"energy_price", "hash_price", "token_price", "timestamp", "source"}
    assert all(set(site) == SITE_FIELDS for site in body["sites"])


def test_dashboard_metrics_writes_nothing(staff_api, applied_run):
    with CaptureQueriesContext(connection) as queries:
        assert at_now(staff_api.get, "/api/dashboard/metrics").status_code == 200

    writes = [q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]
    assert writes == []


def test_prices_are_in_the_hackathon_units(staff_api, world):
    body = at_now(staff_api.get, "/api/dashboard/metrics").json()
    norway = next(site for site in body["sites"] if site["site_id"] == "site_3_norway")
    price_usd_per_mwh = float(
        Site.objects.with_latest_energy_price().get(code="site_3_norway").latest_price_usd_per_mwh
    )

    assert norway["energy_price"] == pytest.approx(price_usd_per_mwh / 30, abs=1e-5)  # 1 unit = 30 USD/MWh


# GET /api/hardware/inventory


def test_hardware_inventory_totals_are_the_fleet(customer_api, world):
    body = customer_api.get("/api/hardware/inventory").json()

    assert set(body) == {"inventory", "last_updated"}
    inventory = body["inventory"]
    assert set(inventory) == {"total_inventory", "site_breakdown", "hardware_specs"}
    assert inventory["total_inventory"] == {
        "miners": {"air": 500, "hydro": 200, "immersion": 100},
        "inference": {"gpu": 1300, "asic": 0},
    }
    assert len(inventory["site_breakdown"]) == 10
    assert inventory["site_breakdown"]["site_3_norway"]["miners"]["immersion"] == 100
    assert inventory["hardware_specs"]["miners"]["hydro"]["power_w"] == 5700.0
    assert inventory["hardware_specs"]["inference"]["gpu"]["tokens_per_s"] == 12000.0


def test_hardware_inventory_needs_a_login(anon_api, world):
    assert anon_api.get("/api/hardware/inventory").status_code == 401


# GET /api/debug/state


def test_debug_state_is_staff_only(anon_api, customer_api, world):
    assert anon_api.get("/api/debug/state").status_code == 401
    assert customer_api.get("/api/debug/state").status_code == 403


def test_debug_state_reports_initialization_and_fresh_prices(staff_api, world):
    body = at_now(staff_api.get, "/api/debug/state").json()

    assert set(body) == {
        "is_initialized",
        "has_current_prices",
        "current_prices_value",
        "site_count",
        "sla_commitments",
        "last_updated",
    }
    assert body["is_initialized"] is True and body["has_current_prices"] is True
    assert body["site_count"] == 10
    assert set(body["sla_commitments"]) == TIERS


def test_debug_state_with_old_prices_says_so(staff_api, world):
    with time_machine.travel(NOW + timedelta(hours=3), tick=False):
        body = staff_api.get("/api/debug/state").json()

    assert body["has_current_prices"] is False


def test_unknown_path_is_not_a_200(staff_api, db):
    assert staff_api.get("/api/sites/status/extra").status_code == 404
