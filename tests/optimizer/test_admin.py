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


def test_run_page_shows_inputs_and_allocation_as_tables_with_the_raw_json_collapsed(admin_client, runs):
    from tests.factories import HardwareModelFactory

    good = runs[0]
    AllocationFactory(run=good, site=SiteFactory(code="bergen"), hardware_model=HardwareModelFactory(code="s21"),
                      units_running=40, it_power_kw=Decimal("140"), facility_power_kw=Decimal("150"))  # fmt: skip
    good.inputs = {
        "interval_start": "2026-01-01T00:00:00+00:00",
        "market": {"interval_start": "2026-01-01T00:00:00+00:00", "hashprice_usd_per_ph_day": 52.5,
                   "inference_price_usd_per_mtok": 0.8, "inference_demand_mtok_per_h": {"europe": 900.0}},
        "sites": {"bergen": {"status": "online", "energy_price_usd_per_mwh": 41.5, "price_at": None,
                             "temperature_c": 7.0, "pue": 1.0463}},
        "previous_units": {"bergen": {"s21": 35}, "oslo_1": {}},
        "forecast": {"note": "Persistence (latest value held) for energy prices of 1 site.",
                     "models": {"energy_price_usd_per_mwh.bergen": "persistence"},
                     "periods": {"energy_price_usd_per_mwh": {"bergen": [41.5, 39.25, 60.0]},
                                 "pue": {"bergen": [1.0463, 1.05, 1.061]}}},
    }  # fmt: skip
    good.save()

    content = admin_client.get(_url("optimizationrun", "change", good.pk)).content.decode()

    assert "<caption>Units running, site x hardware</caption>" in content
    miner = good.allocations.get(site__code="oslo_1").hardware_model.code
    assert f"<th>Site</th><th>{miner}</th><th>s21</th><th>IT kW</th>" in content  # site x hardware
    assert "<th>bergen</th><td>0</td><td>40</td><td>140.00</td>" in content  # bergen runs 40 s21 units
    assert "<caption>Energy price USD/MWh per planning period (P0: observed)</caption>" in content
    assert "<th>bergen</th><td>persistence</td><td>41.50</td><td>39.25</td><td>60.00</td>" in content
    assert "<th>bergen</th><td>-</td><td>1.046</td><td>1.050</td><td>1.061</td>" in content  # PUE, no model named
    assert "<caption>Units running before this run</caption>" in content and "<td>35</td>" in content
    assert "<details><summary>Raw inputs (JSON)</summary><pre>" in content  # collapsed, still there
    assert content.index("Units running, site x hardware") < content.index("Raw inputs (JSON)")


def test_run_page_escapes_what_the_inputs_hold(admin_client, runs):
    good = runs[0]
    good.inputs = {"sites": {"<script>x</script>": {"status": "online"}}, "market": {}}
    good.save()

    content = admin_client.get(_url("optimizationrun", "change", good.pk)).content.decode()

    assert "<script>x</script>" not in content and "&lt;script&gt;x&lt;/script&gt;" in content
