"""The four demo scenarios on the seeded fleet: each outcome's direction and size, and nothing live changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command

from sites.choices import SiteStatus
from sites.models import Site
from sla.models import Downtime, Placement
from optimizer.scenarios import (
    ScenarioError,
    follow_the_sun,
    heat_wave,
    maintenance,
    migration_worth_it,
    renewable,
    run_scenario,
)

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
    assert texas["inference_kw_after"] + texas["mining_kw_after"] < texas["inference_kw_before"] + texas[
        "mining_kw_before"
    ] + texas["curtailed_kw_before"]
    assert s["forced_curtailment_mwh"] > 0
    assert s["cooling_energy_avoided_mwh"] > 0
    assert s["profit_heat_aware_usd"] > s["profit_heat_blind_usd"]
    assert s["profit_kept_usd"] > 0.005 * s["profit_heat_blind_usd"]  # more than half a percent of the day
    assert s["profit_heat_aware_usd"] <= s["profit_no_heat_usd"] + 1e-6  # heat never helps
    assert result.seconds < 60


def test_follow_the_sun_peaks_move_west_and_beat_a_time_blind_allocation(seeded):
    result = follow_the_sun(hours=24)

    s = result.summary
    hours = [int(s[f"{region}_peak_hour_utc"][:2]) for region in ("apac", "europe", "americas")]
    assert hours[0] < hours[1] < hours[2]
    assert len(result.rows) == 24
    assert s["revenue_time_aware_usd"] > s["revenue_time_blind_usd"]
    assert s["profit_time_aware_usd"] > s["profit_time_blind_usd"]
    assert result.seconds < 60


def test_renewable_carbon_price_cuts_co2_and_shifts_load_to_clean_sites(seeded):
    result = renewable(carbon_price_usd_per_t=80, hours=24)

    s = result.summary
    assert s["co2_t_after"] < s["co2_t_before"]
    assert s["co2_t_avoided"] > 0.02 * s["co2_t_before"]
    assert s["high_renewable_share_pct_after"] > s["high_renewable_share_pct_before"]
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
    # Nothing live changed: the demo book, the failover and the status change were rolled back.
    assert set(Placement.objects.values_list("pk", "site_id", "valid_to")) == before
    assert not Downtime.objects.exists()
    assert not Site.objects.exclude(status=SiteStatus.ONLINE).exists()
    assert result.applied is False
    assert result.seconds < 60


def test_maintenance_preempts_lower_tiers_and_owes_credits_when_room_runs_out(seeded):
    # Every other site down except one small one: Premium still moves first, lower tiers lose out.
    result = maintenance(hours=6)
    tiers = [row["tier"] for row in result.rows]
    assert tiers == sorted(tiers, key=["premium", "standard", "flexible", "spot"].index)
    assert result.summary["credits_owed_usd"] >= 0


def test_maintenance_apply_keeps_the_site_in_maintenance(seeded, staff_user):
    from sla.models import Customer, Tier
    from sla.services import CapacityRequest, create_contract
    from decimal import Decimal
    from datetime import timedelta

    customer = Customer.objects.get(user__username="demo")
    contract = create_contract(
        customer=customer,
        request=CapacityRequest(
            tier=Tier.objects.get(code="premium"),
            capacity_kw=Decimal("200"),
            starts_at=NOW,
            ends_at=NOW + timedelta(hours=12),
        ),
    )
    site = Placement.objects.filter(contract=contract).order_by("site__code").first().site

    result = maintenance(site=site.code, hours=6, apply=True, actor=staff_user)

    site.refresh_from_db()
    assert site.status == SiteStatus.MAINTENANCE
    assert result.applied and result.summary["premium_uptime_pct"] == 100.0
    assert not Placement.objects.filter(contract=contract, site=site, valid_to__isnull=True).exists() or (
        not Placement.objects.current(NOW).filter(contract=contract, site=site).exists()
    )


def test_results_are_json_ready(seeded):
    data = run_scenario("renewable", carbon_price_usd_per_t=50, hours=6).to_dict()

    assert json.loads(json.dumps(data))["summary"]["carbon_price_usd_per_t"] == 50


@pytest.mark.parametrize(
    ("name", "options"),
    [("heat-wave", {"site": "nowhere"}), ("bogus", {}), ("renewable", {"carbon_price_usd_per_t": -1})],
)
def test_bad_options_raise_a_scenario_error(seeded, name, options):
    with pytest.raises(ScenarioError):
        run_scenario(name, **options)


def test_migration_is_worth_it_only_when_the_gain_outweighs_energy_and_downtime():
    assert migration_worth_it(energy_cost_usd=5, downtime_minutes=10, price_gain_usd_per_h=10, hours_remaining=6)
    assert not migration_worth_it(energy_cost_usd=50, downtime_minutes=10, price_gain_usd_per_h=10, hours_remaining=5)
    # Downtime eats the remaining hours: nothing left to gain.
    assert not migration_worth_it(energy_cost_usd=0, downtime_minutes=60, price_gain_usd_per_h=100, hours_remaining=1)
    # Lost revenue while down counts against the move: 10 x 5.5 = 55 > 1 + 100 x 0.5 = 51, but not > 1 + 120 x 0.5.
    assert migration_worth_it(
        energy_cost_usd=1, downtime_minutes=30, price_gain_usd_per_h=10, hours_remaining=6, revenue_usd_per_h=100
    )
    assert not migration_worth_it(
        energy_cost_usd=1, downtime_minutes=30, price_gain_usd_per_h=10, hours_remaining=6, revenue_usd_per_h=120
    )
