"""Retention: old prices, weather and runs are pruned by a daily task after ENERGYARB["RETENTION_DAYS"], never by a
request; the newest row of every series and the run in force are kept whatever their age."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from core.schedules import DEFAULT_SCHEDULES
from optimizer.choices import RunStatus
from optimizer.models import Allocation, OptimizationRun
from optimizer.services import prune_old_runs
from optimizer.tasks import prune_old_runs as prune_old_runs_task
from sites.models import EnergyPrice, HackathonPrice, MarketPrice, SourceFetch, WeatherReading
from sites.services import prune_old_prices
from sites.tasks import prune_old_data
from tests.factories import (
    T0,
    AllocationFactory,
    EnergyPriceFactory,
    MarketPriceFactory,
    OptimizationRunFactory,
    SiteFactory,
    WeatherReadingFactory,
)

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(days=500)
DAY = timedelta(days=1)


def _hackathon(at):
    return HackathonPrice.objects.create(
        interval_start=at, energy_price="0.5", hash_price="2.0", token_price="1.5", source="hackathon_api"
    )


def _fetch(at):
    return SourceFetch.objects.create(kind="market", source="simulator", started_at=at, finished_at=at, succeeded=True)


@pytest.fixture
def history():
    """Two sites: `live` with a year and a half of data, `dead` whose feed stopped 450 days ago."""
    live, dead = SiteFactory(code="live"), SiteFactory(code="dead")
    for age_days in (450, 401, 399, 1):
        at = NOW - age_days * DAY
        EnergyPriceFactory(site=live, interval_start=at)
        WeatherReadingFactory(site=live, observed_at=at)
        MarketPriceFactory(interval_start=at)
        _hackathon(at)
        _fetch(at)
    EnergyPriceFactory(site=None, grid_region="ERCOT", interval_start=NOW - 450 * DAY)
    EnergyPriceFactory(site=None, grid_region="ERCOT", interval_start=NOW - 2 * DAY)
    EnergyPriceFactory(site=dead, interval_start=NOW - 460 * DAY)
    EnergyPriceFactory(site=dead, interval_start=NOW - 450 * DAY)  # its newest: kept
    WeatherReadingFactory(site=dead, observed_at=NOW - 450 * DAY)
    return live, dead


def test_rows_older_than_the_cutoff_are_deleted_and_each_series_keeps_its_newest(history):
    live, dead = history
    counts = prune_old_prices(before=NOW - 400 * DAY)
    assert counts == {
        "energy_prices": 2 + 1 + 1,  # live: 450, 401; ERCOT: 450; dead: 460 (its 450 is its newest)
        "weather_readings": 2,
        "market_prices": 2,
        "hackathon_prices": 2,
        "source_fetches": 2,
    }
    ages = {(row.site_id, row.grid_region, (NOW - row.interval_start).days) for row in EnergyPrice.objects.all()}
    assert ages == {(live.pk, "", 399), (live.pk, "", 1), (None, "ERCOT", 2), (dead.pk, "", 450)}
    assert WeatherReading.objects.filter(site=dead).count() == 1
    assert MarketPrice.objects.count() == HackathonPrice.objects.count() == SourceFetch.objects.count() == 2
    assert set(prune_old_prices(before=NOW - 400 * DAY).values()) == {0}  # idempotent


def test_old_finished_runs_go_with_their_allocations_but_the_run_in_force_stays():
    ancient_applied = OptimizationRunFactory(started_at=NOW - 420 * DAY, is_applied=True)  # in force: no newer
    old_failed = OptimizationRunFactory(status=RunStatus.FAILED, started_at=NOW - 410 * DAY)
    old_skipped = OptimizationRunFactory(status=RunStatus.SKIPPED, started_at=NOW - 405 * DAY)
    recent = OptimizationRunFactory(started_at=NOW - 10 * DAY)
    AllocationFactory(run=old_failed)
    AllocationFactory(run=ancient_applied)
    OptimizationRun.objects.filter(pk__in=[r.pk for r in (ancient_applied, old_failed, old_skipped)]).update(
        queued_at=NOW - 420 * DAY
    )
    OptimizationRun.objects.filter(pk=recent.pk).update(queued_at=NOW - 10 * DAY)
    stuck = OptimizationRunFactory(status=RunStatus.QUEUED, started_at=None, finished_at=None)
    OptimizationRun.objects.filter(pk=stuck.pk).update(queued_at=NOW - 420 * DAY)  # not finished: not ours to delete

    assert prune_old_runs(before=NOW - 400 * DAY) == {"runs": 2, "allocations": 1}
    assert set(OptimizationRun.objects.values_list("pk", flat=True)) == {ancient_applied.pk, recent.pk, stuck.pk}
    assert Allocation.objects.filter(run=ancient_applied).count() == 1
    assert prune_old_runs(before=NOW - 400 * DAY) == {"runs": 0, "allocations": 0}


def test_the_tasks_use_the_configured_retention(history, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "RETENTION_DAYS": 30}
    OptimizationRunFactory(status=RunStatus.FAILED)
    OptimizationRun.objects.update(queued_at=NOW - 31 * DAY)
    with time_machine.travel(NOW, tick=False):
        data = prune_old_data.apply().get()
        runs = prune_old_runs_task.apply().get()
    assert data["before"] == (NOW - 30 * DAY).isoformat()
    assert data["energy_prices"] == 2 + 1 + 1 + 1  # live 450/401/399, ERCOT 450, dead 460
    assert runs["runs"] == 1
    assert not EnergyPrice.objects.filter(site__code="live", interval_start__lt=NOW - 30 * DAY).exists()


def test_retention_runs_daily_from_the_default_schedules():
    daily = {entry.task: entry.every_seconds for entry in DEFAULT_SCHEDULES if "prune" in entry.task}
    assert daily == {
        "sites.tasks.prune_old_data": 86400,
        "optimizer.tasks.prune_old_runs": 86400,
        "fleet.tasks.prune_fleet_telemetry": 86400,
    }


def test_no_request_ever_deletes_old_rows(history, staff_api, admin_client):
    OptimizationRunFactory(started_at=NOW - 420 * DAY)
    OptimizationRun.objects.update(queued_at=NOW - 420 * DAY)
    models = (EnergyPrice, WeatherReading, MarketPrice, HackathonPrice, SourceFetch, OptimizationRun)
    before = [model.objects.count() for model in models]
    api = ["/api/energy-prices/", "/api/market-prices/", "/api/weather-readings/", "/api/latest-prices/",
           "/api/optimizer/runs/", "/api/dashboard/", "/api/dashboard/metrics", "/api/sites/status",
           "/api/debug/state", "/api/health", "/api/sites/", "/mara/prices"]  # fmt: skip
    admin = ["/admin/sites/energyprice/", "/admin/sites/marketprice/", "/admin/sites/weatherreading/",
             "/admin/optimizer/optimizationrun/", "/"]  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        statuses = [staff_api.get(path).status_code for path in api]
        statuses += [admin_client.get(path, follow=True).status_code for path in admin]
    assert statuses == [200] * len(api + admin), list(zip(api + admin, statuses, strict=True))
    assert [model.objects.count() for model in models] == before
