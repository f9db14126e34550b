"""Revenue by site and stream on the dashboard: each applied run's first-period books per site, times the hours its
plan was in force over the last 24 h; stored by every applied run, served in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from optimizer.choices import RunStatus, RunTrigger
from optimizer.dashboard.books import revenue_by_site
from optimizer.models import Allocation
from optimizer.services import optimize_now
from optimizer.streams import STREAM_KEYS, by_stream, profit
from sites.services import refresh_market_prices, refresh_weather
from tests.factories import T0, OptimizationRunFactory, SiteFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(days=2)


def books(sites: dict[str, dict], fleet: dict | None = None, switching: dict | None = None) -> dict:
    zero = {"mining": 0.0, "spot_inference": 0.0, "sla_contracts": 0.0, "energy_cost": 0.0}
    return {
        "sites": {code: by_stream(**{**zero, **money}) for code, money in sites.items()},
        "fleet": by_stream(**{**zero, **(fleet or {})}),
        "switching_usd": switching or {},
    }


def applied(hours_ago: float, site_books: dict | None, *, horizon: float = 6.0, **fields):
    details = {"horizon_hours": horizon, **({"site_books": site_books} if site_books is not None else {})}
    return OptimizationRunFactory(
        finished_at=NOW - timedelta(hours=hours_ago), details=details, **{"is_applied": True, **fields}
    )


@pytest.fixture
def two_sites():
    return SiteFactory(code="north", name="North"), SiteFactory(code="south", name="South")


def test_each_plan_counts_for_the_hours_it_was_in_force_in_the_window(two_sites):
    # Ended 24 h ago (30 h ago + its 6 h horizon): outside the window; and one in force from before the window.
    applied(30, books({"north": {"mining": 1000.0, "energy_cost": 1.0}}, switching={"north": 500.0}))
    applied(25, books({"south": {"sla_contracts": 10.0, "energy_cost": 0.0}}, switching={"south": 500.0}))
    # 10 h ago, until its 6 h horizon ran out (4 h ago; the next run came later): 6 h in force.
    applied(10, books({"north": {"mining": 100.0, "energy_cost": 30.0}}, fleet={"penalties": 5.0}))
    # A failed run and one that was not applied change nothing.
    applied(3, books({"north": {"mining": 9999.0, "energy_cost": 0.0}}), status=RunStatus.FAILED)
    applied(2.5, books({"north": {"mining": 9999.0, "energy_cost": 0.0}}), is_applied=False)
    # 2 h ago until now; its starts and stops are paid once (12 USD at north), not per hour.
    applied(
        2,
        books(
            {
                "north": {"mining": 50.0, "spot_inference": 20.0, "energy_cost": 10.0},
                "south": {"sla_contracts": 40.0, "energy_cost": 4.0, "other_costs": 1.0},
            },
            fleet={"as_capacity": 3.0},
            switching={"north": 12.0},
        ),
    )

    data = revenue_by_site(now=NOW)

    # 5 h of the run from 25 h ago (24 h ago until its horizon ran out, 19 h ago), 6 h, 2 h.
    assert data["hours"] == 24 and data["covered_hours"] == pytest.approx(13.0)
    assert data["streams"] == list(STREAM_KEYS)
    north, south = data["sites"]  # by revenue, highest first
    assert north["name"] == "North" and south["site"] == "south"
    assert north["usd"]["mining"] == pytest.approx(6 * 100 + 2 * 50)
    assert north["usd"]["spot_inference"] == pytest.approx(2 * 20)
    assert north["usd"]["energy_cost"] == pytest.approx(-(6 * 30 + 2 * 10))
    assert north["usd"]["other_costs"] == pytest.approx(-12)  # once; the runs applied before the window paid theirs
    assert (north["revenue_usd"], north["energy_cost_usd"], north["profit_usd"]) == pytest.approx((740, 200, 528))
    assert south["usd"]["sla_contracts"] == pytest.approx(5 * 10 + 2 * 40)
    assert south["profit_usd"] == pytest.approx(130 - 8 - 2)
    assert data["fleet"]["penalties"] == pytest.approx(-30) and data["fleet"]["as_capacity"] == pytest.approx(6)
    assert data["profit_usd"] == pytest.approx(528 + 120 - 30 + 6)


def test_a_run_without_site_books_ends_the_plan_before_it_and_adds_nothing(two_sites):
    applied(5, books({"north": {"mining": 100.0, "energy_cost": 0.0}}))
    applied(4, None)  # stored before runs kept their books per site

    data = revenue_by_site(now=NOW)

    assert data["covered_hours"] == pytest.approx(1.0)
    assert data["sites"][0]["usd"]["mining"] == pytest.approx(100.0)


def test_no_applied_run_yet_is_an_empty_panel(two_sites, staff_api):
    applied(1, books({"north": {"mining": 1.0, "energy_cost": 0.0}}), is_applied=False)

    data = staff_api.get("/api/dashboard/books/").json()["by_site"]

    assert (data["sites"], data["covered_hours"], data["profit_usd"]) == ([], 0, 0)


def test_two_queries_whatever_the_number_of_sites_and_runs(two_sites, django_assert_num_queries):
    for k in range(3):
        applied(1 + k, books({"north": {"mining": 1.0, "energy_cost": 0.0}}))
    with django_assert_num_queries(2):
        revenue_by_site(now=NOW)
    for k in range(20):
        SiteFactory(code=f"more_{k}")
        applied(
            5 + k / 4,
            books({f"more_{k}": {"mining": 2.0, "energy_cost": 0.0}, "north": {"mining": 1.0, "energy_cost": 0.0}}),
        )
    with django_assert_num_queries(2):
        data = revenue_by_site(now=NOW)
    assert len(data["sites"]) == 21


def test_the_books_endpoint_serves_it_to_staff(two_sites, staff_api, customer_api):
    applied(1, books({"north": {"mining": 10.0, "energy_cost": 2.0}}))

    with time_machine.travel(NOW, tick=False):
        data = staff_api.get("/api/dashboard/books/").json()

    assert data["by_site"]["sites"][0]["usd"]["mining"] == pytest.approx(10.0)
    assert customer_api.get("/api/dashboard/books/").status_code == 403


def test_every_applied_run_keeps_its_first_period_books_per_site_as_its_allocations_earn():
    call_command("seed_sites", stdout=StringIO())
    now = T0 + timedelta(hours=12, minutes=2)
    with time_machine.travel(now, tick=False):
        refresh_market_prices(at=now)
        refresh_weather(at=now)
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error

    site_books = run.details["site_books"]
    revenue, energy = defaultdict(float), defaultdict(float)
    for row in Allocation.objects.filter(run=run).select_related("site"):
        revenue[row.site.code] += float(row.revenue_usd_per_h)
        energy[row.site.code] += float(row.energy_cost_usd_per_h)
    assert len(site_books["sites"]) == 10 and set(revenue) <= set(site_books["sites"])
    for code, streams in site_books["sites"].items():
        earned = streams["mining"] + streams["spot_inference"] + streams["sla_contracts"]
        assert earned == pytest.approx(revenue[code], abs=0.05), code
        assert -streams["energy_cost"] == pytest.approx(energy[code], abs=0.05), code
    assert sum(streams["mining"] for streams in site_books["sites"].values()) > 0
    assert set(site_books["fleet"]) == set(STREAM_KEYS)
    # Every machine started from nothing: paid once, apart from the rates.
    assert set(site_books["switching_usd"]) == set(site_books["sites"])
    assert sum(site_books["switching_usd"].values()) > 0
    assert profit(site_books["fleet"]) <= 0 or site_books["fleet"]["as_capacity"] > 0
