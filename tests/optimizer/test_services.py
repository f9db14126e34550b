"""Optimization runs: one at a time, never on stale inputs, stored and applied whole."""

import time
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from optimizer import services
from optimizer.choices import RunStatus, RunTrigger
from optimizer.models import Allocation, OptimizationRun
from optimizer.services import execute_run, fail_abandoned_runs, optimize_now, request_optimization
from optimizer.tasks import run_optimization
from sites.models import Site, SiteInventory
from sites.services import refresh_market_prices, refresh_weather, set_site_status
from tests.factories import T0, OptimizationRunFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=12, minutes=2)


@pytest.fixture
def world():
    call_command("seed_sites", stdout=StringIO())
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)
    return Site.objects.order_by("code")


def test_run_applies_a_feasible_plan(world):
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.is_applied and run.revenue_usd_per_h > 0 and run.explanation
    allocated = dict(Allocation.objects.filter(run=run).values_list("site__code").annotate(u=Sum("units_running")))
    running = dict(SiteInventory.objects.values_list("site__code").annotate(u=Sum("units_running")))
    assert {code: n for code, n in running.items() if n} == allocated
    for site in Site.objects.with_power_summary():
        facility_kw = sum(a.facility_power_kw for a in Allocation.objects.filter(run=run, site=site))
        assert facility_kw <= site.power_capacity_kw
    assert {entry["site"] for entry in run.details["sites"]} == {site.code for site in world}
    assert run.inputs["sites"]["site_3_norway"]["pue"] >= 1


def test_site_in_maintenance_runs_nothing(world):
    set_site_status(site=world.get(code="site_5_texas"), status="maintenance", reason="test")
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED
    assert not Allocation.objects.filter(run=run, site__code="site_5_texas").exists()
    assert SiteInventory.objects.filter(site__code="site_5_texas", units_running__gt=0).count() == 0


def test_stale_prices_are_refused_and_nothing_is_applied(world):
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        run = optimize_now(trigger=RunTrigger.SCHEDULE)
    assert run.status == RunStatus.SKIPPED
    assert "old" in run.error and not run.is_applied
    assert SiteInventory.objects.filter(units_running__gt=0).count() == 0
    assert not Allocation.objects.filter(run=run).exists()


def test_no_prices_at_all_is_refused(db):
    call_command("seed_sites", stdout=StringIO())
    run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SKIPPED and "no energy price" in run.error


def test_only_one_run_at_a_time(world):
    OptimizationRunFactory(status=RunStatus.RUNNING, started_at=NOW, finished_at=None)
    with time_machine.travel(NOW + timedelta(seconds=5), tick=False):
        run = optimize_now(trigger=RunTrigger.SCHEDULE)
    assert run.status == RunStatus.SKIPPED
    assert "Another optimization was running" in run.error
    assert OptimizationRun.objects.filter(status=RunStatus.RUNNING).count() == 1


def test_abandoned_running_run_is_failed_and_frees_the_slot(world):
    stuck = OptimizationRunFactory(status=RunStatus.RUNNING, started_at=NOW - timedelta(hours=1), finished_at=None)
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.SCHEDULE)
        assert fail_abandoned_runs(now=NOW) == 0
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.FAILED and "Abandoned" in stuck.error
    assert run.status == RunStatus.SUCCEEDED


def test_a_run_whose_worker_died_is_abandoned_once_its_lease_expires_and_the_next_period_proceeds(world, settings):
    """A worker killed while applying left its run 'running'; the next runs were skipped ("Another optimization was
    running") for about 330 s, the task's hard time limit. Now a run holds a lease its worker renews; once it has
    expired (60 s), the next period's run frees the slot and applies its plan."""
    settings.OPTIMIZER_RUN_LEASE_S = 60
    dead = OptimizationRun.objects.create(trigger=RunTrigger.SCHEDULE)
    with time_machine.travel(NOW, tick=False):
        assert services._claim(dead.pk, NOW) == "claimed"  # then its worker is killed
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        too_soon = optimize_now(trigger=RunTrigger.SCHEDULE)
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        next_period = optimize_now(trigger=RunTrigger.SCHEDULE)

    dead.refresh_from_db()
    assert too_soon.status == RunStatus.SKIPPED  # the lease still held: it may be alive
    assert dead.status == RunStatus.FAILED and "lease" in dead.error
    assert next_period.status == RunStatus.SUCCEEDED and next_period.is_applied


@pytest.mark.django_db(transaction=True)  # the renewing thread has its own connection: it must see the row
def test_a_working_run_renews_its_lease(settings):
    settings.OPTIMIZER_RUN_LEASE_S = 0.3
    run = OptimizationRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(), finished_at=None)
    OptimizationRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=0.3))
    first = OptimizationRun.objects.get(pk=run.pk).lease_expires_at

    with services.RunLease(run.pk):
        time.sleep(0.6)  # two renewals (every 0.1 s); without them the lease would have lapsed

    assert OptimizationRun.objects.get(pk=run.pk).lease_expires_at > first + timedelta(seconds=0.2)


def test_executing_a_finished_run_again_changes_nothing(world):
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
        again = execute_run(run_id=run.pk)
    assert again.status == RunStatus.SUCCEEDED
    assert Allocation.objects.filter(run=run).count() == Allocation.objects.count()


def test_failed_solve_keeps_the_previous_allocation(world, monkeypatch):
    with time_machine.travel(NOW, tick=False):
        first = optimize_now(trigger=RunTrigger.MANUAL)
    before = list(SiteInventory.objects.order_by("pk").values_list("units_running", flat=True))

    def explode(*args, **kwargs):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr("optimizer.engine.run_strategy", explode)
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert first.status == RunStatus.SUCCEEDED
    assert run.status == RunStatus.FAILED and "solver crashed" in run.error
    assert list(SiteInventory.objects.order_by("pk").values_list("units_running", flat=True)) == before


def test_periodic_task_creates_and_runs(world):
    with time_machine.travel(NOW, tick=False):
        first = run_optimization.apply().get()
        second = run_optimization.apply().get()
    assert first["status"] == second["status"] == RunStatus.SUCCEEDED
    assert OptimizationRun.objects.count() == 2


def test_task_with_missing_run_is_logged_not_raised(db):
    assert run_optimization.apply(kwargs={"run_id": 999}).get() == {"run": 999, "status": "missing"}


def test_request_optimization_queues_after_commit(world, django_capture_on_commit_callbacks, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from energyarb.celery import app

    app.conf.task_always_eager = True
    try:
        with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True) as callbacks:
            run = request_optimization(trigger=RunTrigger.API)
            assert run.status == RunStatus.QUEUED
    finally:
        app.conf.task_always_eager = False
    assert len(callbacks) == 2  # the queued run; then (it ran eagerly) its applied plan announced to the fleet
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_optimize_command_reports_the_run(world):
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("optimize", stdout=out)
    assert "succeeded" in out.getvalue() and "Profit" in out.getvalue()


def test_staff_can_queue_a_run_through_the_api(world, staff_api, customer_api, django_capture_on_commit_callbacks):
    from unittest import mock

    with (
        mock.patch("optimizer.tasks.run_optimization.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = staff_api.post("/api/optimizer/runs/", {"strategy": "greedy"}, format="json")
    assert response.status_code == 202, response.content
    run = OptimizationRun.objects.get(pk=response.json()["id"])
    assert (run.status, run.strategy, run.trigger, run.requested_by.username) == ("queued", "greedy", "api", "staff")
    delay.assert_called_once_with(run_id=run.pk)
    assert staff_api.post("/api/optimizer/runs/", {"strategy": "magic"}, format="json").status_code == 400
    assert staff_api.post("/api/optimizer/runs/", {"strategy": "lp", "x": 1}, format="json").status_code == 400
    assert customer_api.post("/api/optimizer/runs/", {}, format="json").status_code == 403
    assert OptimizationRun.objects.count() == 1


def test_admin_action_queues_a_run(world, admin_client, django_capture_on_commit_callbacks):
    from unittest import mock

    done = OptimizationRunFactory(strategy="seed")
    with (
        mock.patch("optimizer.tasks.run_optimization.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_client.post(
            "/admin/optimizer/optimizationrun/",
            {"action": "rerun_strategy", "_selected_action": [done.pk], "index": 0},
            follow=True,
        )
    assert response.status_code == 200
    queued = OptimizationRun.objects.exclude(pk=done.pk).get()
    assert (queued.trigger, queued.strategy, queued.status) == ("admin", "seed", "queued")
    delay.assert_called_once_with(run_id=queued.pk)


def test_maintenance_action_fails_over_and_replans(world, admin_client, django_capture_on_commit_callbacks):
    from unittest import mock

    site = world.get(code="site_5_texas")
    with (
        mock.patch("optimizer.tasks.run_optimization.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_client.post(
            "/admin/sites/site/",
            {"action": "put_into_maintenance", "_selected_action": [site.pk], "index": 0},
            follow=True,
        )
    assert response.status_code == 200
    site.refresh_from_db()
    assert site.status == "maintenance"
    assert "1 site put into maintenance." in response.content.decode()
    assert delay.call_count == 1


def test_applied_run_records_delivery_for_running_contracts(world):
    from decimal import Decimal

    from sla.models import ContractDelivery
    from tests.factories import ContractFactory, PlacementFactory, TierFactory

    tier = TierFactory(code="standard")
    contract = ContractFactory(
        status="active", tier=tier, capacity_kw=Decimal("300"), starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(days=1),
    )  # fmt: skip
    PlacementFactory(contract=contract, site=world.get(code="site_3_norway"), capacity_kw=Decimal("300"),
                     valid_from=NOW - timedelta(hours=1))  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
        optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    delivery = ContractDelivery.objects.get(contract=contract)
    assert delivery.committed_kw == Decimal("300.000")
    assert delivery.delivered_kw == Decimal("300.000")
    assert delivery.interval_minutes == 5


def test_contract_whose_sites_are_all_offline_is_recorded_as_undelivered(world):
    """Its placement's site went offline with no failover: the plan may not serve it from another site."""
    from decimal import Decimal

    from sla.models import ContractDelivery
    from tests.factories import ContractFactory, PlacementFactory, TierFactory

    contract = ContractFactory(
        status="active", tier=TierFactory(code="standard"), capacity_kw=Decimal("300"),
        starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(days=1),
    )  # fmt: skip
    norway = world.get(code="site_3_norway")
    PlacementFactory(contract=contract, site=norway, capacity_kw=Decimal("300"), valid_from=NOW - timedelta(hours=1))
    world.filter(pk=norway.pk).update(status="offline")
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    delivery = ContractDelivery.objects.get(contract=contract)
    assert (delivery.committed_kw, delivery.delivered_kw) == (Decimal("300.000"), Decimal("0.000"))


def test_site_back_online_queues_a_replan_once_committed(world, django_capture_on_commit_callbacks):
    from unittest import mock

    site = world.get(code="site_5_texas")
    with (
        mock.patch("optimizer.tasks.run_optimization.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        set_site_status(site=site, status="maintenance", reason="test")
        assert not delay.called  # going down: the maintenance action re-plans itself
        set_site_status(site=site, status="online", reason="back")
        assert not delay.called  # queued once the change commits, through sites.signals
        set_site_status(site=site, status="online", reason="again")  # no change: no second re-plan
    delay.assert_called_once_with(trigger="site")


def test_a_broker_down_when_a_site_comes_back_is_logged_not_raised(caplog):
    from unittest import mock

    from kombu.exceptions import OperationalError

    with mock.patch("optimizer.tasks.run_optimization.delay", side_effect=OperationalError("broker down")) as delay:
        from sites.services import request_replan

        request_replan()
    assert delay.call_count == 1
    assert "re-plan receiver" in caplog.text and "broker down" in caplog.text


def test_the_replan_a_site_queues_is_recorded_as_triggered_by_the_site(world):
    from optimizer.tasks import run_optimization

    with time_machine.travel(NOW, tick=False):
        outcome = run_optimization.run(trigger="site")

    run = OptimizationRun.objects.get(pk=outcome["run"])
    assert (run.trigger, run.status) == (RunTrigger.SITE, RunStatus.SUCCEEDED)


def test_a_failing_migration_step_is_recorded_and_the_plan_still_applies(world, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("migration bug")

    with time_machine.travel(NOW, tick=False):
        calm = optimize_now(trigger=RunTrigger.MANUAL)
        monkeypatch.setattr("optimizer.services.migrate_after_run", explode)
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert calm.details["migrations"] == {"cutover_kw_minutes": {}, "replaced": [], "still_short": [], "decisions": []}
    assert run.status == RunStatus.SUCCEEDED and run.is_applied
    assert run.details["migrations"] == {"error": "RuntimeError: migration bug"}
    assert Allocation.objects.filter(run=run).exists()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        # One stored interval: too little history to learn from, so every series is held (and the note says so).
        ("ridge", "Forecast (ridge): Persistence (latest value held) for energy prices of 10 sites,"),
        ("persistence", "Forecast (persistence): Planned on persistence: the latest prices and PUE held"),
    ],
)
def test_explanation_names_the_forecast_the_plan_was_based_on(world, settings, setting, said):
    settings.ENERGYARB = {**settings.ENERGYARB, "FORECAST": setting}
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    lines = run.explanation.splitlines()
    assert lines[1].startswith("Profit")  # the profit over the horizon, then what the horizon was planned on
    assert lines[2] == f"Forecast ({setting}): {run.inputs['forecast']['note']}"
    assert lines[2].startswith(said)


def test_a_cut_over_decided_after_a_run_is_not_counted_as_delivered(world):
    """A Flexible contract runs on one site (Singapore: energy x 1.4, hot) with no other placement; the run after
    it finds Norway far cheaper, the move pays, and the 2-minute cut-over leaves all its kW unserved: the interval's
    delivery is short by exactly that, and the cut-over is a closed downtime on the contract."""
    from decimal import Decimal

    from sla.models import ContractDelivery, Downtime, Placement
    from sla.services import seed_tiers
    from tests.factories import ContractFactory, PlacementFactory

    seed_tiers()
    contract = ContractFactory(
        status="active", tier__code="flexible", capacity_kw=Decimal("100"), quoted_price_usd_per_kwh=Decimal("1.00"),
        starts_at=NOW - timedelta(hours=3), ends_at=NOW + timedelta(days=2),
    )  # fmt: skip
    PlacementFactory(contract=contract, site=world.get(code="site_4_singapore"), capacity_kw=Decimal("100"),
                     valid_from=NOW - timedelta(hours=3), valid_to=NOW + timedelta(days=2))  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (moved,) = [d for d in run.details["migrations"]["decisions"] if d["moved"]]
    assert (moved["contract"], moved["from"], moved["kind"]) == (contract.pk, "site_4_singapore", "migration")
    assert Placement.objects.get(contract=contract, valid_to__isnull=False, site__code="site_4_singapore")
    downtime = Downtime.objects.get(contract=contract)
    assert downtime.unserved_kw == Decimal("100.000")
    assert downtime.ended_at - downtime.started_at == timedelta(minutes=2)
    assert run.details["migrations"]["cutover_kw_minutes"] == {str(contract.pk): 200.0}
    delivery = ContractDelivery.objects.get(contract=contract)
    assert (delivery.committed_kw, delivery.interval_minutes) == (Decimal("100.000"), 5)
    assert delivery.delivered_kw == Decimal("60.000")  # 100 kW x (5 - 2) / 5 minutes


def test_an_applied_plan_is_announced_to_the_layers_below_after_commit(world, django_capture_on_commit_callbacks):
    from sites.signals import allocation_applied

    heard = []
    allocation_applied.connect(lambda sender, **kw: heard.append(kw), weak=False, dispatch_uid="test-applied")
    try:
        with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
            run = optimize_now(trigger=RunTrigger.MANUAL)
            assert not heard  # nothing before the plan commits
    finally:
        allocation_applied.disconnect(dispatch_uid="test-applied")
    (announcement,) = heard
    assert announcement["run_id"] == run.pk
    running = dict(SiteInventory.objects.values_list("site__code").annotate(u=Sum("units_running")))
    assert {site: sum(units.values()) for site, units in announcement["units"].items()} == running


def test_the_engine_is_given_the_fleets_hysteresis(world):
    """A registered miner started a minute ago (minimum on time 10 min) must run in the plan's first period."""
    from fleet.models import Device, SiteFleet
    from optimizer.inputs import build_inputs

    site = world.get(code="site_5_texas")
    line = SiteInventory.objects.get(site=site, hardware_model__code="miner_air")
    for i in range(3):
        Device.objects.create(
            site=site, hardware_model=line.hardware_model, name=f"m{i}", driver="luxos", address=f"10.9.0.{i + 1}",
            port=4028, is_running=i == 0, running_changed_at=NOW - timedelta(minutes=1),
        )  # fmt: skip
    SiteFleet.objects.create(site=site, min_on_minutes=10, min_off_minutes=5)
    with time_machine.travel(NOW, tick=False):
        problem = build_inputs(at=NOW).problem
    s = [x.code for x in problem.sites].index("site_5_texas")
    h = [x.code for x in problem.hardware].index("miner_air")
    limits = problem.unit_limits
    assert limits.min_units[s, h, 0] == 1  # the running one, for the first periods ...
    assert limits.min_units[s, h, -1] == 0  # ... not after its minimum on time
    assert limits.max_units[s, h, 0] == 1  # the two stopped a minute ago may not start before 5 minutes
    assert limits.max_units[s, h, -1] == 3
