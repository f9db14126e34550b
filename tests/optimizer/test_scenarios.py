"""The four demo scenarios on the seeded fleet: each outcome's direction and size, and nothing live changes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import time_machine
from django.core.management import CommandError, call_command

from optimizer.models import ScenarioRun
from optimizer.scenarios import (
    ScenarioError,
    follow_the_sun,
    heat_wave,
    maintenance,
    renewable,
    run_scenario,
)
from optimizer.streams import STREAM_KEYS, STREAMS, profit
from sites.choices import SiteStatus
from sites.models import Site
from sla.models import Customer, Downtime, Placement, Tier
from sla.services import CapacityRequest, create_contract

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 3, 0, 0, tzinfo=UTC)  # a Wednesday: weekday demand in every region


@pytest.fixture
def seeded():
    call_command("seed_sites", verbosity=0)
    with time_machine.travel(NOW, tick=False):
        yield


def test_heat_wave_moves_load_off_the_hot_site_and_beats_the_heat_blind_plan(seeded):
    result = heat_wave(site="site_5_texas", delta_c=12, hours=24)

    s = result.summary
    assert s["pue_heat_peak"] > s["pue_normal_mean"] + 0.3
    assert s["inference_moved_kw"] + s["mining_moved_kw"] > 50  # kW off Texas on average over the day
    texas = next(row for row in result.rows if row["site"] == "site_5_texas")
    assert (
        texas["inference_kw_after"] + texas["mining_kw_after"]
        < texas["inference_kw_before"] + texas["mining_kw_before"] + texas["curtailed_kw_before"]
    )
    assert s["forced_curtailment_mwh"] > 0
    assert s["cooling_energy_avoided_mwh"] > 0
    assert s["profit_heat_aware_usd"] > s["profit_heat_blind_usd"]
    assert s["profit_kept_usd"] > 0.005 * s["profit_heat_blind_usd"]  # more than half a percent of the day
    assert s["profit_heat_aware_usd"] <= s["profit_no_heat_usd"] + 1e-6  # heat never helps
    # Both plans by stream (optimizer/streams.py), adding up to their profit.
    assert list(result.streams) == ["heat-blind", "heat-aware"]
    assert profit(result.streams["heat-blind"]) == pytest.approx(s["profit_heat_blind_usd"], abs=0.01)
    assert profit(result.streams["heat-aware"]) == pytest.approx(s["profit_heat_aware_usd"], abs=0.01)
    assert result.streams["heat-aware"]["energy_cost"] < 0 < result.streams["heat-aware"]["mining"]
    assert result.seconds < 60


def test_follow_the_sun_peaks_move_west_and_beat_a_time_blind_allocation(seeded):
    result = follow_the_sun(hours=24)

    s = result.summary
    hours = [int(s[f"{region}_peak_hour_utc"][:2]) for region in ("apac", "europe", "americas")]
    assert hours[0] < hours[1] < hours[2]
    assert len(result.rows) == 24
    assert s["revenue_time_aware_usd"] > s["revenue_time_blind_usd"]
    assert s["profit_time_aware_usd"] > s["profit_time_blind_usd"]
    aware, blind = result.streams["time-aware"], result.streams["time-blind"]
    assert tuple(aware) == STREAM_KEYS and profit(aware) == pytest.approx(s["profit_time_aware_usd"], abs=0.01)
    assert aware["spot_inference"] == pytest.approx(s["inference_revenue_time_aware_usd"], abs=0.01)
    assert profit(blind) == pytest.approx(s["profit_time_blind_usd"], abs=0.01)
    assert result.seconds < 60


def test_renewable_carbon_price_cuts_co2_and_shifts_load_to_clean_sites(seeded):
    result = renewable(carbon_price_usd_per_t=80, hours=24)

    s = result.summary
    assert s["co2_t_after"] < s["co2_t_before"]
    assert s["co2_t_avoided"] > 0.02 * s["co2_t_before"]
    # The load moves to cleaner MWh. (Not necessarily to sites over the 70 % renewable threshold: Canada, 70 % on a
    # 450 kg grid, emits 135 kg per MWh, more than Chile's 120; with warm-up costs its miners stop rather than move.)
    assert s["kg_co2_per_mwh_after"] < s["kg_co2_per_mwh_before"]
    assert s["profit_given_up_usd"] >= 0
    assert 0 < s["profit_given_up_usd_per_t"] <= 80 + 1e-6  # never more than the price that caused it
    assert result.seconds < 60


def test_maintenance_keeps_premium_at_full_uptime_and_rolls_back(seeded):
    before = set(Placement.objects.values_list("pk", "site_id", "valid_to"))

    result = maintenance(hours=6)

    s = result.summary
    assert s["placements_moved"] >= 1
    assert s["premium_uptime_pct"] == 100.0
    assert s["open_placements_on_site"] == 0
    premium = [row for row in result.rows if row["tier"] == "premium"]
    assert premium and all(row["unserved_kw"] == 0 for row in premium)
    assert all(row["migration_worth_it"] for row in result.rows if row["moved_kw"] > 0)
    # Failover moves are priced by the migration cost model (warm-up energy + cut-over downtime).
    assert all(row["failover_cost_usd"] > 0 for row in result.rows if row["moved_kw"] > 0)
    # When the site is back, the optimizer prices moving each contract (the failed-over ones back, or elsewhere)
    # and moves exactly those whose saving beats the cost.
    priced = [row for row in result.rows if row["after_maintenance"] != "-"]
    assert s["migrations_priced_at_return"] == len(priced) >= 1
    for row in priced:
        moved = row["after_maintenance"] != "stays"
        assert moved == (row["saving_usd"] > row["cost_usd"]), row
    assert s["placements_returned"] + s["placements_migrated_at_return"] == sum(
        1 for row in priced if row["after_maintenance"] != "stays"
    )
    # Every failed-over contract had the way back to the site priced (saving vs cost).
    assert all(row["return_option"].startswith(f"{s['site']}: ") for row in result.rows if row["moved_kw"] > 0)
    # Nothing live changed: the demo book, the failover and the status change were rolled back.
    assert set(Placement.objects.values_list("pk", "site_id", "valid_to")) == before
    assert not Downtime.objects.exists()
    assert not Site.objects.exclude(status=SiteStatus.ONLINE).exists()
    assert result.applied is False
    assert result.seconds < 60


def book(tier_code: str, kw: str, hours: int = 12):
    customer = Customer.objects.get(user__username="demo")
    return create_contract(
        customer=customer,
        request=CapacityRequest(
            tier=Tier.objects.get(code=tier_code),
            capacity_kw=Decimal(kw),
            starts_at=NOW,
            ends_at=NOW + timedelta(hours=hours),
        ),
    )


def test_maintenance_preempts_lower_tiers_and_owes_credits_when_room_runs_out(seeded):
    # Three sites left online (1,040 + 1,040 + about 400 kW of SLA room: inference hardware, or facility power at
    # the PUE of the climate's hot design day), nearly fully booked.
    Site.objects.exclude(code__in=("site_1_nordic", "site_3_norway", "site_9_chile")).update(status=SiteStatus.OFFLINE)
    premium = book("premium", "600")  # N-1: 600 kW on each of two sites
    for tier, kw in (("standard", "600"), ("flexible", "600"), ("spot", "120")):
        book(tier, kw)
    site = Placement.objects.filter(contract=premium).order_by("site__code").first().site

    result = maintenance(site=site.code, hours=6)

    s = result.summary
    assert s["premium_uptime_pct"] == 100.0
    tiers = [row["tier"] for row in result.rows]
    assert tiers == sorted(tiers, key=["premium", "standard", "flexible", "spot"].index)
    lower = [row for row in result.rows if row["tier"] != "premium"]
    assert any(row["preempted"] or row["unserved_kw"] > 0 for row in lower)
    assert s["contracts_preempted"] >= 1
    assert s["credits_owed_usd"] > 0
    # When the site is back online its room serves what was left short: re-placed before anything migrates.
    assert s["replaced_at_return_kw"] > 0
    assert any("re-placed" in note for note in result.notes)


def test_results_are_json_ready(seeded):
    data = run_scenario("renewable", carbon_price_usd_per_t=50, hours=6).to_dict()

    assert json.loads(json.dumps(data))["summary"]["carbon_price_usd_per_t"] == 50
    # The operating profit leaves the carbon price out (it steers, it is not paid); the streams count it.
    before, after = data["streams"]["no carbon price"], data["streams"]["carbon price"]
    assert profit(before) == pytest.approx(data["summary"]["profit_before_usd"], abs=0.01)
    assert profit(after) < data["summary"]["profit_after_usd"] - 1.0


def test_the_command_prints_each_plan_by_stream(seeded, tmp_path):
    out = io.StringIO()
    call_command("scenario", "follow-the-sun", "--hours", "3", "--out", str(tmp_path), stdout=out)
    lines = {line[2:54].strip(): line[54:].split() for line in out.getvalue().splitlines() if line.startswith("  ")}
    result = ScenarioRun.objects.get(scenario="follow-the-sun").result
    assert lines["USD by stream"] == ["time-blind", "time-aware"]
    for stream in STREAMS:
        assert lines[stream.label] == [f"{result['streams'][plan][stream.key]:,.2f}" for plan in lines["USD by stream"]]
    assert lines["= profit"] == [f"{profit(result['streams'][plan]):,.2f}" for plan in ("time-blind", "time-aware")]


@pytest.mark.parametrize(
    ("name", "options"),
    [("heat-wave", {"site": "nowhere"}), ("bogus", {}), ("renewable", {"carbon_price_usd_per_t": -1})],
)
def test_bad_options_raise_a_scenario_error(seeded, name, options):
    with pytest.raises(ScenarioError):
        run_scenario(name, **options)


def test_api_runs_a_scenario_for_staff_only(seeded, staff_api, customer_api, anon_api):
    body = {"scenario": "follow-the-sun", "options": {"hours": 24}}

    response = staff_api.post("/api/scenarios/", body, format="json")

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["scenario"] == "follow-the-sun" and len(data["rows"]) == 24
    assert data["summary"]["profit_time_aware_usd"] > data["summary"]["profit_time_blind_usd"]
    assert set(data["streams"]) == {"time-blind", "time-aware"}
    assert tuple(data["streams"]["time-aware"]) == STREAM_KEYS
    assert customer_api.post("/api/scenarios/", body, format="json").status_code == 403
    assert anon_api.post("/api/scenarios/", body, format="json").status_code in (401, 403)


@pytest.mark.parametrize(
    "body",
    [
        {"scenario": "bogus"},
        {"scenario": "renewable", "options": {"site": "site_1_nordic"}},  # renewable takes no site
        {"scenario": "heat-wave", "options": {"apply": True}},  # only maintenance can be applied
        {"scenario": "heat-wave", "options": {"site": "nowhere"}},
        {"scenario": "renewable", "options": {"carbon_price_usd_per_t": -5}},
    ],
)
def test_api_rejects_bad_requests_with_400(seeded, staff_api, body):
    assert staff_api.post("/api/scenarios/", body, format="json").status_code == 400


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["renewable", "--carbon-price", "nan"], "carbon_price_usd_per_t must be a finite number"),  # hung past 120 s
        (["heat-wave", "--delta-c", "inf"], "delta_c must be a finite number"),  # "pue contains NaN" traceback
        (["heat-wave", "--delta-c", "-300"], "delta_c must be a finite number from -30 to 40"),  # ran silently
        (["follow-the-sun", "--hours", "100000"], "hours must be a whole number from 1 to 168"),  # 8 GB, 67 s
        (["follow-the-sun", "--apply"], "only maintenance can be applied"),
    ],
)
def test_the_command_checks_its_options_as_the_api_and_the_admin_do(seeded, args, said):
    with pytest.raises(CommandError, match=said):
        call_command("scenario", *args, stdout=io.StringIO())
    assert not ScenarioRun.objects.exists()


@pytest.mark.parametrize("options", [{"hours": 2, "bogus": 1}, {"carbon_price": 5}])
@pytest.mark.parametrize("scenario", ["follow-the-sun", "renewable"])
def test_an_unknown_option_is_refused_by_name_for_every_scenario(seeded, staff_api, scenario, options):
    """It was silently dropped for one scenario and refused for another."""
    response = staff_api.post("/api/scenarios/", {"scenario": scenario, "options": options}, format="json")

    assert response.status_code == 400
    unknown = next(key for key in options if key != "hours")
    assert unknown in response.json()["options"]


def test_the_admin_form_refuses_what_the_api_refuses(seeded, admin_client):
    response = admin_client.post(
        "/admin/scenarios/", {"scenario": "renewable", "carbon_price_usd_per_t": "20000", "hours": "2"}
    )

    assert response.status_code == 200
    assert "carbon_price_usd_per_t must be a finite number from 0 to 10000" in response.content.decode()
    assert not ScenarioRun.objects.exists()


def test_admin_page_runs_a_scenario_and_shows_the_chart(seeded, admin_client):
    from django.contrib import admin
    from django.test import RequestFactory

    from optimizer.admin_scenarios import scenario_admin_view

    factory = RequestFactory()
    user = admin_client.get("/admin/").wsgi_request.user
    request = factory.post("/admin/scenarios/", {"scenario": "renewable", "carbon_price_usd_per_t": "80", "hours": "6"})
    request.user = user
    request._dont_enforce_csrf_checks = True
    from django.contrib.messages.storage.fallback import FallbackStorage

    request.session = admin_client.session
    request._messages = FallbackStorage(request)
    response = admin.site.admin_view(scenario_admin_view)(request)
    response.render()

    assert response.status_code == 200
    content = response.content.decode()
    assert "Carbon price 80 USD/t" in content and "data:image/png;base64," in content
    assert "co2_t_avoided" in content


def test_scenario_admin_page_is_wired_for_staff_only(admin_client, client, customer):
    assert admin_client.get("/admin/scenarios/").status_code == 200
    client.force_login(customer.user)
    response = client.get("/admin/scenarios/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_scenario_world_puts_each_machine_in_its_hall(seeded):
    from optimizer.scenarios.world import build_world
    from sites.simulation import pue

    world = build_world(start=NOW, hours=24)
    problem = world.problem()
    s = world.index("site_5_texas")
    kinds = {h.code: (cooling, h.kind) for h, (cooling, _) in zip(problem.hardware, world.hardware_halls, strict=True)}
    temps = world.temperature_c[s]
    checked = set()
    for h, code in enumerate(problem.hardware_codes):
        cooling, kind = kinds[code]
        if problem.inventory_units[s, h] == 0 or cooling != "air":
            continue
        if kind == "miner":  # fan-cooled mining hall, no chillers: 1.03-1.10
            np.testing.assert_allclose(problem.hall_pue[s, h], pue("mining_air", temps))
            assert problem.hall_pue[s, h].max() <= 1.10 < problem.pue[s].max()
        else:  # GPU nodes in the site's chilled hall
            np.testing.assert_allclose(problem.hall_pue[s, h], problem.pue[s])
        checked.add(kind)
    assert checked == {"miner", "inference"}
