"""Who may do what: one table of the expected status for every (endpoint, method) and every role.

Roles: anonymous, customer A (alice), customer B (bob) and staff. Each signed-in role carries both an API token
and a session (so the admin and dashboard pages see it), and each customer owns one /mara/ site whose
X-Api-Key it sends. Paths name objects with placeholders: `{contract_a}` is customer A's contract, and so on.

Rules the table must obey, checked below:
- another customer's object always answers 404 (never 403, which would confirm it exists);
- every named route of the project (admin aside, which is generated from the admin registry) has a row, so a new
  endpoint fails `test_every_route_is_in_the_matrix` until its row is written here.

To extend: add a `Row(method, path, anonymous, customer_a, customer_b, staff)` (statuses), with a `body` for
writes; new objects go in the `world` fixture and its `placeholders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib import admin
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import energyarb.urls  # noqa: F401  (registers every ModelAdmin, read below to list the changelists)
from grid.seeding import seed_programs
from mara.services import create_market_api_site
from sites.models import EnergyPrice, HardwareModel, MarketPrice, WeatherReading
from sla import services as sla_services
from sla.services import CapacityRequest
from tests.factories import (
    AllocationFactory,
    CustomerFactory,
    EnergyPriceFactory,
    MarketPriceFactory,
    OptimizationRunFactory,
    UserFactory,
    WeatherReadingFactory,
)
from tests.sla.conftest import build_fleet

ROLES = ("anonymous", "customer_a", "customer_b", "staff")


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    anonymous: int
    customer_a: int
    customer_b: int
    staff: int
    body: dict | None = None

    def expected(self, role: str) -> int:
        return getattr(self, role)


QUOTE_BODY = {"tier": "standard", "capacity_kw": "50", "duration_hours": "4"}
SLA_REQUEST_BODY = {"tier": "standard", "power_requirement": "50", "duration_hours": "4"}
RUN_BODY = {"strategy": "greedy"}
MACHINES_BODY = {"air_miners": 1, "hydro_miners": 0, "immersion_miners": 0, "gpu_compute": 0, "asic_compute": 0}

# fmt: off
MATRIX: tuple[Row, ...] = (
    #   method    path                                          anon  cust A  cust B  staff
    # --- the API (customers live here) ---------------------------------------------------------------------
    Row("GET",    "/api/",                                        401,   200,    200,   200),
    Row("GET",    "/api/schema/",                                 401,   200,    200,   200),
    Row("GET",    "/api/docs/",                                   401,   200,    200,   200),
    Row("GET",    "/api/sites/",                                  401,   200,    200,   200),
    Row("POST",   "/api/sites/",                                  401,   405,    405,   405, body={}),
    Row("GET",    "/api/sites/{site}/",                           401,   200,    200,   200),
    Row("DELETE", "/api/sites/{site}/",                           401,   405,    405,   405),
    Row("GET",    "/api/sites/no-such-site/",                     401,   404,    404,   404),
    Row("GET",    "/api/hardware-models/",                        401,   200,    200,   200),
    Row("GET",    "/api/hardware-models/{hardware}/",             401,   200,    200,   200),
    Row("GET",    "/api/energy-prices/",                          401,   200,    200,   200),
    Row("GET",    "/api/energy-prices/{energy_price}/",           401,   200,    200,   200),
    Row("GET",    "/api/market-prices/",                          401,   200,    200,   200),
    Row("GET",    "/api/market-prices/{market_price}/",           401,   200,    200,   200),
    Row("GET",    "/api/weather-readings/",                       401,   200,    200,   200),
    Row("GET",    "/api/weather-readings/{weather}/",             401,   200,    200,   200),
    Row("GET",    "/api/latest-prices/",                          401,   200,    200,   200),
    Row("GET",    "/api/tiers/",                                  401,   200,    200,   200),
    Row("GET",    "/api/tiers/standard/",                         401,   200,    200,   200),
    Row("PUT",    "/api/tiers/standard/",                         401,   405,    405,   405, body={}),
    Row("GET",    "/api/sla/quotes/",                             401,   200,    200,   200),
    Row("POST",   "/api/sla/quotes/",                             401,   201,    201,   403, body=QUOTE_BODY),
    Row("GET",    "/api/sla/quotes/{quote_a}/",                   401,   200,    404,   200),
    Row("GET",    "/api/sla/quotes/{quote_b}/",                   401,   404,    200,   200),
    Row("DELETE", "/api/sla/quotes/{quote_a}/",                   401,   405,    405,   405),
    Row("GET",    "/api/contracts/",                              401,   200,    200,   200),
    Row("POST",   "/api/contracts/",                              401,   201,    201,   403, body=QUOTE_BODY),
    Row("GET",    "/api/contracts/{contract_a}/",                 401,   200,    404,   200),
    Row("GET",    "/api/contracts/{contract_b}/",                 401,   404,    200,   200),
    Row("PATCH",  "/api/contracts/{contract_a}/",                 401,   405,    405,   405, body={}),
    Row("DELETE", "/api/contracts/{contract_a}/",                 401,   405,    405,   405),
    Row("POST",   "/api/contracts/{contract_a}/cancel/",          401,   200,    404,   200, body={}),
    Row("POST",   "/api/contracts/{contract_b}/cancel/",          401,   404,    200,   200, body={}),
    Row("GET",    "/api/optimizer/runs/",                         401,   403,    403,   200),
    Row("POST",   "/api/optimizer/runs/",                         401,   403,    403,   202, body=RUN_BODY),
    Row("GET",    "/api/optimizer/runs/{run}/",                   401,   403,    403,   200),
    Row("POST",   "/api/scenarios/",                              401,   403,    403,   400, body={}),  # staff: 400
    Row("GET",    "/api/price-nodes/",                            401,   200,    200,   200),
    Row("GET",    "/api/price-nodes/999999/",                     401,   404,    404,   404),
    Row("GET",    "/api/fx-rates/",                               401,   200,    200,   200),
    Row("GET",    "/api/fx-rates/999999/",                        401,   404,    404,   404),
    Row("GET",    "/api/ancillary-prices/",                       401,   200,    200,   200),
    Row("GET",    "/api/ancillary-prices/999999/",                401,   404,    404,   404),
    Row("GET",    "/api/system-load/",                            401,   200,    200,   200),
    Row("GET",    "/api/system-load/999999/",                     401,   404,    404,   404),
    Row("GET",    "/api/grid/programs/",                          401,   403,    403,   200),
    Row("GET",    "/api/grid/programs/ercot-dr/",                 401,   403,    403,   200),
    Row("GET",    "/api/grid/enrollments/",                       401,   403,    403,   200),
    Row("GET",    "/api/grid/enrollments/999999/",                401,   403,    403,   404),
    Row("GET",    "/api/grid/events/",                            401,   403,    403,   200),
    Row("POST",   "/api/grid/events/",                            401,   403,    403,   400, body={}),
    Row("GET",    "/api/grid/events/999999/",                     401,   403,    403,   404),
    Row("POST",   "/api/grid/events/999999/cancel/",              401,   403,    403,   404, body={}),
    Row("GET",    "/api/fleet/devices/",                          401,   403,    403,   200),
    Row("GET",    "/api/fleet/devices/999999/",                   401,   403,    403,   404),
    Row("POST",   "/api/fleet/devices/",                          401,   403,    403,   405, body={}),
    Row("GET",    "/api/fleet/dispatch-rounds/",                  401,   403,    403,   200),
    Row("GET",    "/api/fleet/dispatch-rounds/999999/",           401,   403,    403,   404),
    Row("GET",    "/api/fleet/commands/",                         401,   403,    403,   200),
    Row("GET",    "/api/fleet/commands/999999/",                  401,   403,    403,   404),
    Row("GET",    "/api/fleet/telemetry-rollups/",                401,   403,    403,   200),
    Row("GET",    "/api/fleet/telemetry-rollups/999999/",         401,   403,    403,   404),
    Row("GET",    "/api/fleet/machines/",                         401,   403,    403,   200),
    # --- the original product's endpoints (under /api/) ----------------------------------------------------
    Row("GET",    "/api/health",                                  200,   200,    200,   200),
    Row("POST",   "/api/initialize",                              401,   403,    403,   200),
    Row("GET",    "/api/sites/status",                            401,   403,    403,   200),
    Row("POST",   "/api/optimize",                                401,   403,    403,   202),
    Row("GET",    "/api/dashboard/metrics",                       401,   403,    403,   200),
    Row("GET",    "/api/hardware/inventory",                      401,   200,    200,   200),
    Row("GET",    "/api/debug/state",                             401,   403,    403,   200),
    Row("POST",   "/api/sla/request",                             401,   201,    201,   403, body=SLA_REQUEST_BODY),
    # --- the dashboard's JSON and pages --------------------------------------------------------------------
    Row("GET",    "/api/dashboard/",                              401,   403,    403,   200),
    Row("GET",    "/api/dashboard/runs/{run}/",                   401,   403,    403,   200),
    Row("GET",    "/api/dashboard/runs/999999/",                  401,   403,    403,   404),
    Row("GET",    "/api/dashboard/books/",                        401,   403,    403,   200),
    Row("GET",    "/",                                            302,   302,    302,   200),
    Row("GET",    "/login/",                                      200,   200,    200,   200),
    Row("POST",   "/logout/",                                     302,   302,    302,   302, body={}),
    # --- the hackathon market API (/mara/): X-Api-Key, each customer holds the key of its own site ----------
    Row("GET",    "/mara/prices",                                 200,   200,    200,   200),
    Row("GET",    "/mara/inventory",                              200,   200,    200,   200),
    Row("GET",    "/mara/sites",                                  401,   200,    200,   401),
    Row("POST",   "/mara/sites",                                  200,   200,    200,   200, body={"name": "new"}),
    Row("GET",    "/mara/machines",                               401,   200,    200,   401),
    Row("PUT",    "/mara/machines",                               401,   200,    200,   401, body=MACHINES_BODY),
    # --- the admin (staff live here); every model's changelist is added from the registry below ------------
    Row("GET",    "/admin/",                                      302,   302,    302,   200),
    Row("GET",    "/admin/login/",                                200,   200,    200,   302),
    Row("GET",    "/admin/sla/contract/{contract_a}/change/",     302,   302,    302,   200),
    Row("GET",    "/admin/sites/site/add/",                       302,   302,    302,   200),
    *(
        Row("GET", f"/admin/{model._meta.app_label}/{model._meta.model_name}/", 302, 302, 302, 200)
        for model in admin.site._registry
    ),
)
# fmt: on

ADMIN_NAMESPACE = "admin"  # the admin's routes are covered by the rows generated from its registry


@dataclass
class World:
    placeholders: dict[str, object]
    sessions: dict[str, str]  # role -> session key
    tokens: dict[str, str]  # role -> API token
    mara_keys: dict[str, str]  # customer role -> X-Api-Key of its /mara/ site


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> World:
    """Built once for the module and committed; each test runs in a transaction rolled back afterwards, so a
    cell's writes (a cancel, a new quote) never reach the next cell. Flushed when the module ends."""
    with django_db_blocker.unblock():
        try:
            yield _build_world()
        finally:
            call_command("flush", interactive=False, verbosity=0)


def _build_world() -> World:
    fleet = build_fleet()
    seed_programs()
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    alice = CustomerFactory(user=UserFactory(username="alice"), name="Alice Labs")
    bob = CustomerFactory(user=UserFactory(username="bob"), name="Bob Compute")
    now = timezone.now()
    EnergyPriceFactory(site=fleet.oslo, interval_start=now - timedelta(minutes=5))
    MarketPriceFactory(interval_start=now - timedelta(minutes=5))
    WeatherReadingFactory(site=fleet.oslo, observed_at=now - timedelta(minutes=5))

    def request() -> CapacityRequest:
        start = timezone.now() + timedelta(hours=1)
        return CapacityRequest(
            tier=fleet.standard, capacity_kw=Decimal("20"), starts_at=start, ends_at=start + timedelta(hours=4)
        )

    quote_a = sla_services.create_quote(customer=alice, request=request())
    quote_b = sla_services.create_quote(customer=bob, request=request())
    contract_a = sla_services.create_contract(customer=alice, request=request())
    contract_b = sla_services.create_contract(customer=bob, request=request())
    run = OptimizationRunFactory()
    AllocationFactory(run=run, site=fleet.oslo)
    users = {"customer_a": alice.user, "customer_b": bob.user, "staff": staff}
    sessions = {}
    for role, user in users.items():
        login = Client()
        login.force_login(user)
        sessions[role] = login.cookies[settings.SESSION_COOKIE_NAME].value
    return World(
        sessions=sessions,
        tokens={role: Token.objects.create(user=user).key for role, user in users.items()},
        placeholders={
            "site": fleet.oslo.code,
            "hardware": HardwareModel.objects.order_by("code").first().code,
            "energy_price": EnergyPrice.objects.first().pk,
            "market_price": MarketPrice.objects.first().pk,
            "weather": WeatherReading.objects.first().pk,
            "quote_a": quote_a.pk,
            "quote_b": quote_b.pk,
            "contract_a": contract_a.pk,
            "contract_b": contract_b.pk,
            "run": run.pk,
        },
        mara_keys={
            "customer_a": create_market_api_site(name="alice's site").api_key,
            "customer_b": create_market_api_site(name="bob's site").api_key,
        },
    )


def client_for(role: str, world: World) -> APIClient:
    """A client carrying the role's session cookie, API token and (customers) /mara/ key, made in `world`."""
    client = APIClient()
    if role not in world.sessions:
        return client
    client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[role]
    headers = {"HTTP_AUTHORIZATION": f"Token {world.tokens[role]}"}
    if role in world.mara_keys:
        headers["HTTP_X_API_KEY"] = world.mara_keys[role]
    client.credentials(**headers)
    return client


def _row_id(row: Row) -> str:
    return f"{row.method} {row.path}"


@pytest.mark.parametrize("row", MATRIX, ids=[_row_id(row) for row in MATRIX])
def test_authorization_matrix(db, world, row):
    """Each role in turn, each in a savepoint rolled back afterwards (a role's write never reaches the next)."""
    path = row.path.format(**world.placeholders)
    kwargs = {"format": "json"} if row.body is not None else {}
    actual = {}
    for role in ROLES:
        client = client_for(role, world)
        with transaction.atomic():
            response = getattr(client, row.method.lower())(path, row.body, **kwargs)
            transaction.set_rollback(True)
        actual[role] = response.status_code
        if response.status_code != row.expected(role):
            actual[role] = f"{response.status_code} (expected {row.expected(role)}): {response.content[:200]!r}"
    assert actual == {role: row.expected(role) for role in ROLES}


def test_another_customers_objects_always_answer_404():
    """The table itself obeys the rule: a row naming A's object answers 404 to B, and the other way round."""
    cross = [row for row in MATRIX if "_a}" in row.path or "_b}" in row.path]
    assert len(cross) >= 8
    for row in cross:
        if row.path.startswith("/admin/"):
            continue  # customers never reach the admin at all (302 to its sign-in page)
        if row.method in {"PUT", "PATCH", "DELETE"}:
            continue  # a method the endpoint lacks answers 405 before any object is looked up
        owner, other = ("customer_a", "customer_b") if "_a}" in row.path else ("customer_b", "customer_a")
        assert row.expected(other) == 404, row
        assert row.expected(owner) < 400, row


def _named_routes(patterns, namespace: str | None = None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
            yield from _named_routes(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_every_route_is_in_the_matrix():
    """A new endpoint must get its row: every named route outside the admin is reached by some row."""
    placeholders = {key: 1 for key in ("energy_price", "market_price", "weather", "quote_a", "quote_b")}
    placeholders |= {"contract_a": 1, "contract_b": 1, "run": 1, "site": "x", "hardware": "x"}
    covered = {resolve(row.path.format(**placeholders).split("?")[0]).view_name for row in MATRIX}
    routes = {name for name in _named_routes(get_resolver().url_patterns) if not name.startswith(ADMIN_NAMESPACE)}
    assert routes - covered == set()


def test_mara_keys_see_only_their_own_site(db, world):
    alice, bob = client_for("customer_a", world), client_for("customer_b", world)
    alice.put("/mara/machines", {**MACHINES_BODY, "air_miners": 7}, format="json")
    assert alice.get("/mara/sites").json()["name"] == "alice's site"
    assert bob.get("/mara/sites").json()["name"] == "bob's site"
    assert bob.get("/mara/machines").status_code in {200, 503}  # 503 only when no price is served yet
    assert alice.put("/mara/machines", MACHINES_BODY, format="json").json()["air_miners"] == 1
    assert (
        bob.put("/mara/machines", MACHINES_BODY, format="json").json()["site_id"]
        != (alice.get("/mara/sites").json()["id"])
    )
