"""The optimizer admin: runs and allocations are read, sorted and searched by staff, never edited."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from optimizer.choices import RunStatus
from optimizer.models import OptimizationRun
from tests.factories import T0, AllocationFactory, OptimizationRunFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

MODELS = ("optimizationrun", "allocation")


def _url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:optimizer_{model}_{view}", args=args)


@pytest.fixture
def runs():
    """A profitable run (600 USD/h, 1 s) with an allocation at Oslo, a loss-making one, and a failed one."""
    good = OptimizationRunFactory(explanation="Hashprice spike: miners on at Oslo.")
    AllocationFactory(run=good, site=SiteFactory(code="oslo_1"))
    poor = OptimizationRunFactory(
        revenue_usd_per_h=Decimal("100.00"),
        energy_cost_usd_per_h=Decimal("150.00"),
        penalty_usd_per_h=Decimal("20.00"),
        finished_at=T0 + timedelta(seconds=5),
    )
    failed = OptimizationRunFactory(
        status=RunStatus.FAILED, revenue_usd_per_h=None, energy_cost_usd_per_h=None, error="solver infeasible"
    )
    return good, poor, failed


@pytest.mark.parametrize("model", MODELS)
def test_changelist_answers_for_staff(admin_client, runs, model):
    assert admin_client.get(_url(model)).status_code == 200


@pytest.mark.parametrize(("model", "term"), [("optimizationrun", "infeasible"), ("allocation", "oslo")])
def test_search_finds_only_the_matching_row(admin_client, runs, model, term):
    response = admin_client.get(_url(model), {"q": term})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


@pytest.mark.parametrize("model", MODELS)
def test_add_is_refused_because_runs_are_written_by_the_optimizer(admin_client, model):
    assert admin_client.get(_url(model, "add")).status_code == 403


def test_run_change_page_is_read_only_and_shows_allocations(admin_client, runs):
    good = runs[0]

    response = admin_client.get(_url("optimizationrun", "change", good.pk))

    assert response.status_code == 200
    content = response.content.decode()
    assert "600.00" in content  # profit: 1,000 revenue - 400 energy
    assert "(oslo_1)" in content  # the allocation inline
    assert response.context["has_change_permission"] is False
    response = admin_client.post(_url("optimizationrun", "change", good.pk), {"explanation": "rewritten"})
    assert response.status_code == 403
    good.refresh_from_db()
    assert good.explanation.startswith("Hashprice")


def test_runs_sort_by_profit_and_duration(admin_client, runs):
    good, poor, _failed = runs

    by_profit = admin_client.get(_url("optimizationrun"), {"o": "9"}).context["cl"].result_list  # profit asc
    by_duration = admin_client.get(_url("optimizationrun"), {"o": "-10"}).context["cl"].result_list

    # poor: 100 - 150 - 20 = -70 USD/h. A run without economics has no profit; where NULL sorts is the database's.
    ranked = [run for run in by_profit if run.profit_usd_per_h_db is not None]
    assert ranked == [poor, good]
    assert ranked[0].profit_usd_per_h_db == Decimal("-70")
    assert by_duration[0] == poor  # 5 s, the others 1 s


def test_allocation_changelist_shows_margin(admin_client, runs):
    response = admin_client.get(_url("allocation"))

    [row] = response.context["cl"].result_list
    assert row.margin_usd_per_h == Decimal("8")  # 10 revenue - 2 energy, USD/h
    assert "8.0000" in response.content.decode()


@pytest.mark.parametrize("model", MODELS)
def test_non_staff_user_is_sent_to_login(client, runs, model):
    client.force_login(UserFactory(username="carol"))

    response = client.get(_url(model))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_may_delete_an_old_run_with_its_allocations(admin_client, runs):
    good = runs[0]
    data = {"action": "delete_selected", "_selected_action": [good.pk], "post": "yes"}

    response = admin_client.post(_url("optimizationrun"), data)

    assert response.status_code == 302
    assert not OptimizationRun.objects.filter(pk=good.pk).exists()
