"""A plan replaces the allocation in force only when it is finished and at least as good (issue 13).

A solve that ends at its time limit, or a plan that scores worse than keeping what runs now, is not applied: the
run is `rejected`, records why, writes nothing to the sites, and staff see an alert in the admin and on the
dashboard. Tested on a booked fleet (contracts admitted through `create_contract`).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
import time_machine
from django.core.management import call_command

from optimizer import engine
from optimizer.choices import RunStatus, RunTrigger, Strategy
from optimizer.models import Allocation
from optimizer.services import optimize_now
from sites.models import SiteInventory
from sites.services import refresh_market_prices, refresh_weather
from sla.models import Customer, Tier
from sla.services import CapacityRequest, create_contract
from tests.factories import T0
from tests.optimizer.test_engine import two_sites

NOW = T0 + timedelta(hours=12, minutes=2)
BOOK = 40  # running contracts of 2-20 kW, random tiers


@pytest.fixture
def booked(db):
    call_command("seed_sites", stdout=StringIO())
    rng = random.Random(13)
    customer = Customer.objects.get(user__username="demo")
    tiers = list(Tier.objects.order_by("code"))
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)
        for _ in range(BOOK):
            create_contract(
                customer=customer,
                request=CapacityRequest(
                    tier=rng.choice(tiers),
                    capacity_kw=Decimal(rng.randint(2, 20)),
                    starts_at=NOW,
                    ends_at=NOW + timedelta(hours=24),
                ),
            )
        first = optimize_now(trigger=RunTrigger.MANUAL)
    assert first.status == RunStatus.SUCCEEDED and first.is_applied, first.error
    return first


def running_units() -> dict:
    return dict(SiteInventory.objects.values_list("pk", "units_running"))


def test_a_solve_stopped_by_its_time_limit_is_not_applied(booked, settings, admin_client):
    before = running_units()
    settings.ENERGYARB = {**settings.ENERGYARB, "SOLVER_TIME_LIMIT_S": 0.0001}
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.REJECTED
    assert not run.is_applied
    assert "time limit" in run.error
    assert run.explanation.startswith("Not applied: ")
    assert run.details["guard"]["apply"] is False
    assert not Allocation.objects.filter(run=run).exists()
    assert running_units() == before  # the plan in force stays
    # The alert: the admin's run list and the dashboard say the run was not applied, and why.
    page = admin_client.get("/admin/optimizer/optimizationrun/").content.decode()
    assert f"Run #{run.pk} was not applied: The solver" in page
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        data = admin_client.get("/api/dashboard/").json()
    assert data["latest_run"]["alert"].startswith(f"Run #{run.pk} was not applied: ")


def test_a_plan_worse_than_keeping_the_allocation_in_force_is_not_applied(booked):
    # The original fixed formula ignores every price: on the engine's allocation it plans worse than keeping it.
    before = running_units()
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL, strategy=Strategy.SEED)
    assert run.status == RunStatus.REJECTED, run.explanation
    guard = run.details["guard"]
    assert guard["keep_usd"] > guard["plan_usd"]
    assert "less than keeping the allocation in force" in run.error
    assert running_units() == before
    # The next engine run is applied as usual: the alert is about the newest run only.
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        assert optimize_now(trigger=RunTrigger.MANUAL).status == RunStatus.SUCCEEDED


def test_judge_plan_keeps_the_allocation_in_force_when_it_earns_more():
    best = engine.solve(two_sites())
    problem = two_sites(previous_units=best.first_period_units)
    idle = engine.evaluate(problem, np.zeros((2, 2, 1)))
    verdict = engine.judge_plan(problem, idle)
    assert not verdict.apply
    assert verdict.keep_usd == pytest.approx(best.objective_usd)
    assert engine.judge_plan(problem, engine.solve(problem)).apply


def test_judge_plan_never_applies_a_time_limited_plan_and_applies_a_first_plan():
    solution = engine.solve(two_sites())
    assert not engine.judge_plan(two_sites(), replace(solution, status="time_limit")).apply
    assert engine.judge_plan(two_sites(), solution).apply  # nothing in force to compare with


def test_judge_plan_applies_when_the_allocation_in_force_cannot_be_kept():
    # Site B went offline: its running units cannot stay, so keeping is infeasible and the new plan applies.
    best = engine.solve(two_sites())
    problem = two_sites(
        previous_units=best.first_period_units,
        sites=(engine.Site("A", 100.0, "americas"), engine.Site("B", 50.0, "europe", available=False)),
    )
    assert engine.judge_plan(problem, engine.solve(problem)).apply
