"""The dashboard in a real browser: Debian's Chromium driven by Playwright against Django's live server.

Run with `make browser` (excluded from `make test`). Every test signs in through the page, fails on any console
error, and intercepts every request: anything addressed to another host than the live server is aborted and
fails the test. Screenshots go to var/screenshots/ (git-ignored) for review.
"""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from optimizer.choices import RunStatus
from optimizer.models import OptimizationRun
from optimizer.streams import profit
from sites.models import Site
from sites.seeding import seed_physical_world
from sites.services import refresh_market_prices, refresh_weather
from sla.models import Contract
from sla.services import seed_tiers
from tests.factories import CustomerFactory, UserFactory

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "browser-test-password-1"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; Django must still allow ORM calls from it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_sync.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _plain_http_and_eager_worker(settings):
    """Cookies over the live server's plain HTTP; Celery tasks run in-process (no broker, no worker)."""
    from energyarb.celery import app

    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def world():
    """The ten sites and tiers with prices and weather fresh now (the live server runs on the real clock)."""
    seed_physical_world()
    seed_tiers()
    now = timezone.now()
    refresh_market_prices(at=now)
    refresh_weather(at=now)


@pytest.fixture
def scenario_run(world, tmp_path):
    """One stored scenario run (renewable, 3 h), as `manage.py scenario` stores it."""
    call_command("scenario", "renewable", "--hours", "3", "--out", str(tmp_path), stdout=StringIO())


@pytest.fixture
def staff(db):
    """A staff login that also holds a customer account, so it can quote and buy from the SLA panel."""
    user = UserFactory(username="operator", is_staff=True, is_superuser=True, password=PASSWORD)
    CustomerFactory(user=user, name="Operator Labs")
    return user


class Session:
    """A page with its console errors and every request it made, split into local and foreign hosts."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        self.local: list[str] = []
        self.foreign: list[str] = []
        self.allowed: set[tuple[int, str]] = set()
        host = urlsplit(base_url).netloc

        def console(message):
            if message.type != "error":
                return
            # Chromium logs every 4xx/5xx response as a console error; only those a test provokes on purpose pass.
            path = urlsplit(message.location.get("url", "")).path
            if any(f"status of {status}" in message.text and path == allowed for status, allowed in self.allowed):
                return
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

        page.on("console", console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

        def route(route_handle):
            url = route_handle.request.url
            if url.startswith("data:") or urlsplit(url).netloc == host:
                self.local.append(url)
                route_handle.continue_()
            else:
                self.foreign.append(url)
                route_handle.abort()

        page.route("**/*", route)

    def expect_http_error(self, status: int, path: str) -> None:
        """A response the test provokes on purpose (e.g. a 400 for bad input) is not a console error."""
        self.allowed.add((status, path))

    def sign_in(self, username: str = "operator", password: str = PASSWORD) -> None:
        self.page.goto(self.base_url + "/")
        assert "/login/" in self.page.url  # a signed-out visitor is sent to the sign-in page
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("#login-submit")
        self.page.wait_for_selector("body[data-ready='true']", timeout=TIMEOUT_MS)

    def screenshot(self, name: str, **kwargs) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name), **kwargs)


@pytest.fixture
def session(browser, live_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    tracked = Session(context.new_page(), live_server.url)
    yield tracked
    context.close()
    assert tracked.foreign == [], f"requests to other hosts: {tracked.foreign}"
    assert tracked.errors == [], f"console errors: {tracked.errors}"


FLEET_CHARTS = (
    "chart-revenue",
    "chart-prices",
    "chart-pue",
    "chart-allocation",
    "chart-sla",
    "chart-books",
    "chart-site-revenue",
)

CANVAS_HAS_PIXELS = """(canvas) => {
  const { width, height } = canvas;
  if (!width || !height) return false;
  const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
  return false;
}"""


def test_signed_in_staff_sees_ten_markers_and_every_chart_drawn(session, world, scenario_run, staff):
    session.sign_in()
    page = session.page

    assert page.locator("path.site-marker").count() == 10
    assert page.locator("#site-cards .site-card").count() == 10
    assert page.locator("#system-status").get_attribute("data-state") == "online"
    page.wait_for_selector(".leaflet-overlay-pane path.leaflet-interactive >> nth=0")
    page.wait_for_function("document.querySelectorAll('.leaflet-overlay-pane path').length > 100")  # outlines
    canvases = page.locator("canvas")
    # The fleet's charts, the books by stream, revenue by site and the chart of the one scenario that has run.
    ids = sorted(canvases.evaluate_all("(all) => all.map((c) => c.id)"))
    assert ids == sorted([*FLEET_CHARTS, "chart-scenario-renewable"])
    assert page.locator("#chart-scenario-renewable").count() == 1
    for index in range(canvases.count()):
        canvas = canvases.nth(index)
        assert canvas.evaluate(CANVAS_HAS_PIXELS), f"{canvas.get_attribute('id')} is blank"
    assert "MW" in page.inner_text("#m-power")
    session.screenshot("dashboard-desktop.png", full_page=True)

    # Scenarios panel: the run's headline figures; the three others say how to run them.
    assert page.locator("#scenario-empty").is_hidden()
    renewable = page.inner_text("[data-scenario='renewable']")
    assert "Carbon price 80 USD/t over 3 h" in renewable and "CO₂ avoided" in renewable
    for name in ("heat-wave", "follow-the-sun", "maintenance"):
        assert f"manage.py scenario {name}" in page.inner_text(f"[data-scenario='{name}']")
    page.locator("#scenarios-title").scroll_into_view_if_needed()
    session.screenshot("dashboard-scenarios.png")

    # Keyboard: a site card's Map button opens that site's popup with allocation, prices, weather, contracts.
    page.focus("[data-site='site_3_norway'] button")
    page.keyboard.press("Enter")
    popup = page.wait_for_selector(".leaflet-popup-content")
    text = popup.inner_text().lower()
    for expected in ("norway oslo", "allocation", "usd/mwh", "°c", "contracts", "pue"):
        assert expected in text
    session.screenshot("dashboard-map-popup.png")


def test_ai_optimize_shows_the_explanation(session, world, staff):
    session.sign_in()
    page = session.page

    page.click("#btn-optimize")

    explanation = page.wait_for_selector("#run-explanation", timeout=60_000)
    assert explanation.inner_text().strip()
    page.wait_for_selector("#run-badge[data-status='succeeded']")
    page.wait_for_selector(".toast.success")
    run = OptimizationRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.is_applied
    assert f"#{run.pk}" in page.inner_text("#run-badge")
    session.screenshot("dashboard-ai-optimize.png", full_page=False)


def test_sla_form_shows_an_inline_error_then_books_a_contract(session, world, staff):
    session.sign_in()
    page = session.page
    page.select_option("#sla-tier", "standard")
    session.expect_http_error(400, "/api/sla/quotes/")

    page.fill("#sla-capacity", "-5")
    page.click("#btn-quote")
    error = page.wait_for_selector("#err-capacity_kw:not([hidden])")
    assert error.inner_text().strip()
    assert page.get_attribute("#sla-capacity", "aria-invalid") == "true"
    assert not Contract.objects.exists()
    session.screenshot("dashboard-sla-error.png")

    page.fill("#sla-capacity", "200")
    page.fill("#sla-duration", "24")
    page.click("#btn-quote")
    page.wait_for_selector("#sla-quote:not([hidden])")
    assert page.locator("#err-capacity_kw").is_hidden()
    page.click("#btn-request")

    toast = page.wait_for_selector(".toast.success >> text=Contract #")
    contract = Contract.objects.get()
    assert f"#{contract.pk}" in toast.inner_text()
    page.wait_for_selector(f"#contract-list li[data-contract='{contract.pk}']")
    assert contract.capacity_kw == 200 and contract.tier.code == "standard"
    session.screenshot("dashboard-sla-contract.png")


def test_initialize_brings_an_empty_system_online(session, staff):
    session.sign_in()
    page = session.page
    assert page.locator("#system-status").get_attribute("data-state") == "empty"

    page.click("#btn-initialize")

    page.wait_for_selector("#system-status[data-state='online']")
    assert page.locator("path.site-marker").count() == 10
    assert Site.objects.count() == 10
    # No scenario has run: the panel says how to run one, and draws no scenario chart.
    assert page.locator("#scenario-empty").is_visible()
    assert "manage.py scenario" in page.inner_text("#scenario-empty")
    assert page.locator("canvas[id^='chart-scenario-']").count() == 0


# The outermost elements that reach past the viewport's right edge, to name what overflows.
TOO_WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")].filter((el) => el.getBoundingClientRect().right > width + 1);
  return wide.filter((el) => !wide.includes(el.parentElement)).slice(0, 5)
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}: ${Math.round(el.getBoundingClientRect().right)}`);
}"""


def test_phone_viewport_has_no_horizontal_scroll(browser, live_server, world, staff):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    session = Session(context.new_page(), live_server.url)
    try:
        session.sign_in()
        widths = session.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth, document.body.scrollWidth]"
        )
        too_wide = session.page.evaluate(TOO_WIDE)
        session.screenshot("dashboard-phone.png", full_page=True)
    finally:
        context.close()
    scroll_width, client_width, body_width = widths
    assert client_width == 390
    assert scroll_width <= client_width and body_width <= client_width, (widths, too_wide)
    assert session.foreign == [] and session.errors == []


@pytest.fixture
def applied_three_hours_ago(world):
    """One applied run whose plan has been in force for the last three hours."""
    from datetime import timedelta

    from django.db.models import F

    from optimizer.choices import RunTrigger
    from optimizer.services import optimize_now

    run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    shift = timedelta(hours=3)
    fields = ("queued_at", "started_at", "finished_at", "lease_expires_at")
    OptimizationRun.objects.filter(pk=run.pk).update(**{name: F(name) - shift for name in fields})
    return OptimizationRun.objects.get(pk=run.pk)


def _numbers(text: str) -> list[float]:
    return [float(cell.replace(",", "")) for cell in text.split("\t")[1:] if cell.strip()]


@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 1000}, {"width": 390, "height": 844}])
def test_revenue_by_site_shows_each_sites_money_over_the_last_day(
    browser, live_server, applied_three_hours_ago, staff, viewport
):
    phone = viewport["width"] == 390
    context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    context.set_default_timeout(TIMEOUT_MS)
    session = Session(context.new_page(), live_server.url)
    try:
        session.sign_in()
        page = session.page
        page.wait_for_selector("#site-revenue-rows tr >> nth=9")
        rows = page.locator("#site-revenue-rows tr")
        books = applied_three_hours_ago.details["site_books"]
        names = dict(Site.objects.values_list("code", "name"))
        # USD over the 3 h the plan was in force (USD/h x 3), its starts and stops paid once.
        expected = {
            names[code]: (
                3 * (rates["mining"] + rates["spot_inference"] + rates["sla_contracts"]),
                -3 * rates["energy_cost"],
                3 * profit(rates) - books["switching_usd"][code],
            )
            for code, rates in books["sites"].items()
        }
        shown = {}
        for index in range(rows.count()):
            cells = rows.nth(index).locator("td").all_inner_texts()
            shown[cells[0]] = tuple(float(cell.replace(",", "")) for cell in cells[1:])
        assert set(shown) == set(expected)
        for name, figures in shown.items():
            assert figures == pytest.approx(expected[name], rel=0.01, abs=1.0), name
        assert sum(revenue for revenue, _, _ in shown.values()) > 0
        assert "in force 3.0 h" in page.inner_text("#site-revenue-window")
        assert "Total" in page.inner_text("#site-revenue-foot")
        assert page.locator("#chart-site-revenue").evaluate(CANVAS_HAS_PIXELS)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        too_wide = page.evaluate(TOO_WIDE)
        page.locator("#site-revenue").scroll_into_view_if_needed()
        page.locator("#site-revenue").screenshot(path=str(_screenshot_path(f"site-revenue-{viewport['width']}.png")))
    finally:
        context.close()
    assert widths[0] <= widths[1], (widths, too_wide)  # no horizontal scroll, on the phone too
    assert session.foreign == [] and session.errors == []


def _screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
