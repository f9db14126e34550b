"""The staff-only read API of optimization runs and their allocations."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from optimizer.choices import RunStatus
from optimizer.models import OptimizationRun
from tests.factories import T0, AllocationFactory, HardwareModelFactory, OptimizationRunFactory, SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    run = OptimizationRunFactory(
        revenue_usd_per_h=Decimal("1000.00"),
        energy_cost_usd_per_h=Decimal("400.00"),
        carbon_cost_usd_per_h=Decimal("50.00"),
        explanation="Norway is cheap tonight.",
        inputs={"market": {"hashprice_usd_per_ph_day": "50"}},
    )
    norway, texas = SiteFactory(code="norway"), SiteFactory(code="texas")
    miner = HardwareModelFactory(code="s21")
    AllocationFactory(run=run, site=texas, hardware_model=miner, units_running=4)
    AllocationFactory(run=run, site=norway, hardware_model=miner, units_running=10)
    return run


def test_anonymous_request_is_refused_with_401(anon_api):
    response = anon_api.get(reverse("optimizer-run-list"))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.parametrize("route", ["optimizer-run-list", "optimizer-run-detail"])
def test_non_staff_customer_is_forbidden(customer_api, run, route):
    args = [run.pk] if route.endswith("detail") else []

    assert customer_api.get(reverse(route, args=args)).status_code == 403


def test_staff_session_can_list_runs(staff_user, run):
    client = APIClient()
    client.force_login(staff_user)

    assert client.get(reverse("optimizer-run-list")).status_code == 200


def test_run_list_shows_economics_without_allocations(staff_api, run):
    body = staff_api.get(reverse("optimizer-run-list")).json()

    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == run.pk
    assert row["profit_usd_per_h"] == "550.00"  # 1,000 revenue - 400 energy - 50 carbon
    assert row["duration_seconds"] == 1.0
    assert "allocations" not in row
    assert "inputs" not in row


def test_run_detail_nests_allocations_by_site_code(staff_api, run):
    body = staff_api.get(reverse("optimizer-run-detail", args=[run.pk])).json()

    assert body["explanation"] == "Norway is cheap tonight."
    assert body["inputs"] == {"market": {"hashprice_usd_per_ph_day": "50"}}
    assert [(a["site"], a["hardware_model"], a["units_running"]) for a in body["allocations"]] == [
        ("norway", "s21", 10),
        ("texas", "s21", 4),
    ]
    assert body["allocations"][0]["facility_power_kw"] == "38.500"


def test_unknown_run_answers_404(staff_api):
    assert staff_api.get(reverse("optimizer-run-detail", args=[999999])).status_code == 404


def test_runs_filter_by_status_and_queue_window(staff_api):
    failed = OptimizationRunFactory(status=RunStatus.FAILED, finished_at=None)
    OptimizationRunFactory(status=RunStatus.SUCCEEDED)

    by_status = staff_api.get(reverse("optimizer-run-list"), {"status": RunStatus.FAILED}).json()
    future = staff_api.get(reverse("optimizer-run-list"), {"queued_after": T0 + timedelta(days=10_000)}).json()

    assert [row["id"] for row in by_status["results"]] == [failed.pk]
    assert future["count"] == 0


def test_runs_are_newest_first_and_paginated(staff_api):
    runs = [OptimizationRunFactory() for _ in range(3)]

    body = staff_api.get(reverse("optimizer-run-list"), {"limit": 2}).json()

    assert body["count"] == 3
    assert [row["id"] for row in body["results"]] == [runs[2].pk, runs[1].pk]
    assert "offset=2" in body["next"]


def test_run_detail_costs_a_constant_number_of_queries(staff_api, run, django_assert_num_queries):
    for _ in range(5):
        AllocationFactory(run=run)

    # token, run with requester, allocations with sites and hardware models
    with django_assert_num_queries(3):
        response = staff_api.get(reverse("optimizer-run-detail", args=[run.pk]))

    assert len(response.json()["allocations"]) == 7


def test_queueing_a_run_takes_json_only(staff_api):
    """Found by make fuzz: a multipart body naming no field queued a default run (202) instead of failing."""
    form = staff_api.post("/api/optimizer/runs/", {"note": "None"}, format="multipart")
    null = staff_api.post("/api/optimizer/runs/", "null", content_type="application/json")

    assert form.status_code == 415
    assert null.status_code == 400
    assert not OptimizationRun.objects.exists()
