"""The latest run of each scenario is stored by every way of running one, and the dashboard shows it at once."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from optimizer.models import ScenarioRun

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 3, 0, 0, tzinfo=UTC)
DATA_URL = "/api/dashboard/"


@pytest.fixture
def seeded():
    call_command("seed_sites", verbosity=0)
    with time_machine.travel(NOW, tick=False):
        yield


def run_command(tmp_path, *args):
    call_command("scenario", *args, "--out", str(tmp_path), stdout=StringIO())


def scenarios_on_dashboard(client) -> dict[str, dict]:
    response = client.get(DATA_URL)
    assert response.status_code == 200, response.content
    return {row["scenario"]: row for row in response.json()["scenarios"]}


def test_command_stores_the_latest_run_with_its_options_and_chart(seeded, tmp_path):
    run_command(tmp_path, "renewable", "--hours", "3", "--carbon-price", "60")

    run = ScenarioRun.objects.get()
    assert run.scenario == "renewable"
    assert run.options == {"hours": 3, "carbon_price_usd_per_t": 60.0, "apply": False}
    assert run.requested_by is None  # the command line has no signed-in user
    assert run.started_at <= run.finished_at
    assert run.title == "Carbon price 60 USD/t over 3 h"
    assert run.result["summary"]["carbon_price_usd_per_t"] == 60
    assert set(run.result["chart"]["lines"]) == {"no carbon price", "carbon price"}
    assert len(run.result["rows"]) == 10  # the before/after table, one row per site


def test_a_rerun_replaces_the_previous_result_of_that_scenario_only(seeded, tmp_path):
    run_command(tmp_path, "renewable", "--hours", "2", "--carbon-price", "40")
    run_command(tmp_path, "follow-the-sun", "--hours", "3")

    run_command(tmp_path, "renewable", "--hours", "2", "--carbon-price", "90")

    runs = {run.scenario: run for run in ScenarioRun.objects.all()}
    assert set(runs) == {"renewable", "follow-the-sun"}
    assert runs["renewable"].result["summary"]["carbon_price_usd_per_t"] == 90


def test_a_failing_scenario_stores_nothing(seeded, tmp_path):
    with pytest.raises(CommandError):
        run_command(tmp_path, "heat-wave", "--site", "nowhere", "--hours", "2")

    assert not ScenarioRun.objects.exists()


def test_api_stores_the_run_with_who_asked(seeded, staff_api, staff_user):
    response = staff_api.post("/api/scenarios/", {"scenario": "renewable", "options": {"hours": 2}}, format="json")

    assert response.status_code == 200, response.content
    run = ScenarioRun.objects.get()
    assert run.requested_by == staff_user
    assert run.options == {"hours": 2, "apply": False}
    assert run.result["summary"] == response.json()["summary"]


def test_api_refusal_stores_nothing(seeded, staff_api):
    response = staff_api.post("/api/scenarios/", {"scenario": "heat-wave", "options": {"site": "x"}}, format="json")

    assert response.status_code == 400
    assert not ScenarioRun.objects.exists()


def test_admin_scenarios_page_stores_the_run(seeded, admin_client, admin_user):
    response = admin_client.post(
        "/admin/scenarios/", {"scenario": "renewable", "carbon_price_usd_per_t": "70", "hours": "2"}
    )

    assert response.status_code == 200
    run = ScenarioRun.objects.get()
    assert run.requested_by == admin_user
    assert run.options == {"carbon_price_usd_per_t": 70.0, "hours": 2, "apply": False}


def test_dashboard_says_no_scenario_has_run_yet(seeded, staff_api):
    scenarios = scenarios_on_dashboard(staff_api)

    assert list(scenarios) == ["heat-wave", "follow-the-sun", "maintenance", "renewable"]
    assert not any(row["has_run"] for row in scenarios.values())


def test_dashboard_shows_headline_figures_and_chart_series_of_the_latest_run(seeded, staff_api, tmp_path):
    run_command(tmp_path, "renewable", "--hours", "3", "--carbon-price", "60")
    stored = ScenarioRun.objects.get().result

    renewable = scenarios_on_dashboard(staff_api)["renewable"]

    assert renewable["has_run"] and renewable["title"] == "Carbon price 60 USD/t over 3 h"
    figures = {item["key"]: item["value"] for item in renewable["headline"]}
    assert figures["co2_t_avoided"] == stored["summary"]["co2_t_avoided"]
    assert figures["profit_given_up_usd_per_t"] == stored["summary"]["profit_given_up_usd_per_t"]
    chart = renewable["chart"]
    assert chart["kind"] == "bar" and chart["x"] == stored["chart"]["x"]
    assert [series["label"] for series in chart["series"]] == ["no carbon price", "carbon price"]
    assert chart["series"][1]["values"] == stored["chart"]["lines"]["carbon price"]
    assert "rows" not in renewable  # the table stays in the admin and the API


def test_a_new_run_shows_on_the_dashboard_immediately(seeded, staff_api, tmp_path):
    run_command(tmp_path, "renewable", "--hours", "2", "--carbon-price", "40")
    before = scenarios_on_dashboard(staff_api)["renewable"]

    run_command(tmp_path, "renewable", "--hours", "2", "--carbon-price", "90")
    after = scenarios_on_dashboard(staff_api)["renewable"]

    assert before["title"].startswith("Carbon price 40") and after["title"].startswith("Carbon price 90")


def test_scenario_runs_are_read_only_in_the_admin(seeded, admin_client, tmp_path):
    run_command(tmp_path, "renewable", "--hours", "2")
    run = ScenarioRun.objects.get()

    changelist = admin_client.get("/admin/optimizer/scenariorun/")
    detail = admin_client.get(f"/admin/optimizer/scenariorun/{run.pk}/change/")

    assert changelist.status_code == 200 and "Carbon price" in changelist.content.decode()
    assert detail.status_code == 200 and "co2_t_avoided" in detail.content.decode()
    assert admin_client.get("/admin/optimizer/scenariorun/add/").status_code == 403
    assert admin_client.post(f"/admin/optimizer/scenariorun/{run.pk}/change/", {"title": "x"}).status_code == 403
    assert ScenarioRun.objects.get().title == run.title
