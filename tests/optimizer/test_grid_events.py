"""Grid events through the optimizer: a new event re-plans on the grid queue, the applied plan keeps the event
site under its cap, and the event records what the plan draws there."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from grid.models import EventPerformance, GridProgram
from grid.seeding import seed_programs
from grid.services import (
    EventRequest,
    complete_due_events,
    create_grid_event,
    enroll_site,
    start_due_events,
)
from optimizer.choices import RunStatus, RunTrigger
from optimizer.models import OptimizationRun
from optimizer.services import optimize_now
from optimizer.streams import MEMO, STREAM_KEYS, STREAMS, profit
from optimizer.tasks import replan_for_grid_event
from sites.models import Site
from sites.services import refresh_market_prices, refresh_weather
from tests.factories import T0

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=12, minutes=2)


@pytest.fixture
def texas():
    call_command("seed_sites", stdout=StringIO())
    seed_programs()
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)
        assert optimize_now(trigger=RunTrigger.MANUAL).status == RunStatus.SUCCEEDED
    site = Site.objects.get(code="site_5_texas")
    # At 5,000 USD/MWh short nothing the fleet runs is worth more than meeting the cap (at the seeded 300 USD/MWh
    # the engine may rightly keep a few kW of contracts running and pay for them).
    GridProgram.objects.filter(code="ercot-dr").update(penalty_usd_per_mwh=Decimal("5000"))
    enroll_site(
        site=site,
        program=GridProgram.objects.get(code="ercot-dr"),
        committed_mw=Decimal("1"),
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=30),
    )
    return site


def _running_it_kw(site) -> Decimal:
    return Site.objects.with_power_summary().get(pk=site.pk).running_kw


def test_event_replans_and_the_applied_plan_keeps_the_site_under_its_cap(texas, django_capture_on_commit_callbacks):
    baseline = _running_it_kw(texas)
    assert baseline > 300
    with time_machine.travel(NOW + timedelta(seconds=20), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            event = create_grid_event(
                request=EventRequest(
                    program=GridProgram.objects.get(code="ercot-dr"),
                    sites=(texas,),
                    starts_at=NOW + timedelta(seconds=20),
                    ends_at=NOW + timedelta(hours=1),
                    reduction_kw=Decimal("300"),
                )
            )
        assert len(callbacks) == 1  # the announcement waits for the commit
        result = replan_for_grid_event.apply(kwargs={"event_id": event.pk}).get()
    run = OptimizationRun.objects.get(pk=result["run"])
    assert run.trigger == RunTrigger.GRID and run.status == RunStatus.SUCCEEDED, run.error
    performance = EventPerformance.objects.get(event=event)
    assert performance.baseline_kw == baseline
    assert performance.planned_kw <= baseline - 300
    assert _running_it_kw(texas) <= baseline - 300
    assert f"Event ercot-dr#{event.pk} at site_5_texas" in run.explanation


def test_a_dispatched_event_earns_its_payment_in_the_run_books_and_at_settlement(texas):
    # ercot-dr pays 200 USD/MWh delivered below the baseline: the plan that meets the cap books the payment, and
    # completing the event settles 300 kW x 1 h at 200 USD/MWh = 60 USD on the load the plan drew.
    starts = NOW + timedelta(seconds=20)
    with time_machine.travel(starts, tick=False):
        event = create_grid_event(
            request=EventRequest(
                program=GridProgram.objects.get(code="ercot-dr"),
                sites=(texas,),
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                reduction_kw=Decimal("300"),
            )
        )
        result = replan_for_grid_event.apply(kwargs={"event_id": event.pk}).get()
    run = OptimizationRun.objects.get(pk=result["run"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.details["books"]["event_payments"] > 0
    assert "delivered below its baseline, paid 200 USD/MWh" in run.explanation
    with time_machine.travel(starts + timedelta(minutes=1), tick=False):
        assert start_due_events(now=timezone.now()) == 1
    with time_machine.travel(starts + timedelta(hours=1, minutes=1), tick=False):
        assert complete_due_events(now=timezone.now()) == 1
    performance = EventPerformance.objects.get(event=event)
    assert performance.payment_usd == Decimal("60.00") and performance.penalty_usd == 0


def test_grid_replan_waits_for_a_running_run_instead_of_skipping(texas):
    from celery.exceptions import Retry

    OptimizationRun.objects.create(trigger=RunTrigger.SCHEDULE, status=RunStatus.RUNNING, started_at=NOW)
    with time_machine.travel(NOW + timedelta(seconds=5), tick=False), pytest.raises(Retry):
        replan_for_grid_event.apply(kwargs={"event_id": 1}, throw=True).get()
    assert not OptimizationRun.objects.filter(trigger=RunTrigger.GRID).exists()


def test_every_applied_run_keeps_its_books_by_stream_and_the_dashboard_stacks_them(texas, staff_api, admin_client):
    run = OptimizationRun.objects.filter(status=RunStatus.SUCCEEDED).latest("finished_at")
    books = run.details["books"]
    # The one taxonomy (optimizer/streams.py, the backtest's too), the charge avoided beside it.
    assert set(books) == {*STREAM_KEYS, MEMO.key}
    hours = run.details["horizon_hours"]
    assert books["mining"] > 0
    assert books["mining"] + books["spot_inference"] + books["sla_contracts"] == pytest.approx(
        float(run.revenue_usd_per_h), abs=0.05
    )
    assert books["energy_cost"] == pytest.approx(-float(run.energy_cost_usd_per_h), abs=0.01)
    # The streams add up to the run's profit per hour: revenue, grid money, less every cost.
    switching = sum(site["switching_cost_usd"] for site in run.details["sites"]) / hours
    expected = (
        float(run.revenue_usd_per_h - run.energy_cost_usd_per_h - run.carbon_cost_usd_per_h)
        - switching
        + books["as_capacity"]
        + books["event_payments"]
        + books["penalties"]
        + books["cp_charge"]
    )
    assert books["other_costs"] == pytest.approx(-float(run.carbon_cost_usd_per_h) - switching, abs=0.02)
    assert profit(books) == pytest.approx(expected, abs=0.1)
    data = staff_api.get("/api/dashboard/books/").json()
    assert data["runs"][-1]["id"] == run.pk and data["runs"][-1]["books"] == books
    assert data["streams"] == list(STREAM_KEYS) and data["memo"] == MEMO.key
    assert data["labels"] == {stream.key: stream.label for stream in (*STREAMS, MEMO)}
    page = admin_client.get("/").content.decode()
    assert 'id="chart-books"' in page and "dashboard/books.js" in page


def test_an_ancillary_enrollment_is_held_and_paid_its_stored_clearing_price(texas):
    from sites.markets.models import AncillaryPrice

    enroll_site(
        site=texas,
        program=GridProgram.objects.get(code="ercot-ecrs"),
        committed_mw=Decimal("0.5"),
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=30),
    )
    AncillaryPrice.objects.create(
        market="ercot", service="ECRS", interval_start=NOW - timedelta(minutes=30), price_usd_per_mw_h=40, source="csv"
    )
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "for ECRS at 40 USD/MW-h" in run.explanation
    assert run.details["books"]["as_capacity"] > 0
