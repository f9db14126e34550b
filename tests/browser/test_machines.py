"""The Machines panel in a real browser: a simulated fleet on loopback follows a plan, and the panel shows planned
against measured power per site, devices online, and the round's lag (screenshot dashboard-machines.png)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from fleet.services import dispatch_round, poll_telemetry
from fleet.simulation import build_simulator, layout, register_simulated_fleet
from sites.models import SiteInventory

from .test_dashboard import (  # noqa: F401  (fixtures)
    CANVAS_HAS_PIXELS,
    _plain_http_and_eager_worker,
    browser,
    session,
    staff,
    world,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NETWORK = "127.251.0.0/16"


@pytest.fixture
def followed_plan(world, settings):  # noqa: F811 (the imported fixture)
    settings.FLEET = {**settings.FLEET, "DEVICE_TIMEOUT_S": 2.0, "BACKOFF_S": 0.05, "SETTLE_S": 0.02}
    register_simulated_fleet(layout(60), network=NETWORK)
    sim = build_simulator(network=NETWORK)
    sim.start()
    SiteInventory.objects.update(units_running=F("units_available") / 2)
    # The dispatcher drives pyasic with asyncio.run, which refuses to start inside the event loop that Playwright's
    # sync API keeps on this thread: the round runs on its own thread, as it does in a Celery worker.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_dispatch_and_poll).result()
    yield sim
    sim.stop()


def _dispatch_and_poll():
    try:
        dispatch_round(trigger="plan", run_id=1, planned_at=timezone.now())
        poll_telemetry()
    finally:
        connection.close()


def test_machines_panel_shows_the_simulated_fleet_following_the_plan(session, followed_plan, staff):  # noqa: F811
    session.sign_in()
    page = session.page
    page.wait_for_selector("#machines[data-loaded='true']")
    rows = page.locator("#machines-rows tr")
    assert rows.count() == 10
    assert page.locator("#machines-chart canvas").evaluate(CANVAS_HAS_PIXELS)
    # Planned, measured and metered bars each in a colour of their own (the default grey vanished on dark panels).
    colours = page.evaluate("Chart.getChart('chart-machines').data.datasets.map((d) => d.backgroundColor)")
    assert len(set(colours)) == 3 and "rgba(0,0,0,0.1)" not in colours
    assert "after its plan" in page.inner_text("#machines-round")
    page.locator("#machines-title").scroll_into_view_if_needed()
    session.screenshot("dashboard-machines.png")
