"""Fuzz every operation of /api/schema/ with schemathesis, as staff and as a customer.

Runs in process against Django's WSGI application (`schemathesis.openapi.from_wsgi`): no server, and every case
runs inside the test's database transaction. Cases are valid and invalid (schemathesis' positive and negative
modes); each response is checked by schemathesis' checks (all but one, see EXCLUDED_CHECKS): no 5xx; status
code, content type, headers and body conform to the schema; invalid input is rejected; no data without
credentials. FUZZ_MAX_EXAMPLES per operation and role (default 15; schemathesis adds its coverage cases) keeps a
run well above 1,000 cases and within a few minutes; the figures are printed at the end (conftest.py).

API rate limits are lifted here (they are tested in tests/reliability/test_deploy.py): a fuzzer sends more
requests per minute than any client may.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from sla import services as sla_services
from sla.capacity import MAX_START_AHEAD_DAYS
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

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))


@pytest.fixture(autouse=True)
def in_process_requests(db, monkeypatch, fuzz_stats):
    """Per operation: a fresh transaction, no rate limits, and Django's connection handling made test-safe."""
    # Django closes "old" connections around each request; inside a test's transaction that would close it.
    # The test client does the same disconnection for its requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", _unlimited())
    fuzz_stats["operations"] += 1
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _unlimited() -> dict:
    from django.conf import settings

    return dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])


@pytest.fixture
def world(db) -> dict:
    """Something to find for every list and detail: a fleet, prices, weather, quotes, contracts and a run."""
    fleet = build_fleet()
    now = timezone.now()
    EnergyPriceFactory(site=fleet.oslo, interval_start=now - timedelta(minutes=5))
    MarketPriceFactory(interval_start=now - timedelta(minutes=5))
    WeatherReadingFactory(site=fleet.oslo, observed_at=now - timedelta(minutes=5))
    customer = CustomerFactory(user=UserFactory(username="alice"), name="Alice Labs")
    start = now + timedelta(hours=1)
    request = CapacityRequest(
        tier=fleet.standard, capacity_kw=Decimal("20"), starts_at=start, ends_at=start + timedelta(hours=4)
    )
    sla_services.create_quote(customer=customer, request=request)
    sla_services.create_contract(customer=customer, request=request)
    AllocationFactory(run=OptimizationRunFactory(), site=fleet.oslo)
    staff = UserFactory(username="ops", is_staff=True, is_superuser=True)
    return {
        "staff": Token.objects.create(user=staff).key,
        "customer": Token.objects.create(user=customer.user).key,
        "customer_id": customer.pk,
        "new_quote": lambda: sla_services.create_quote(customer=customer, request=request).pk,
    }


def _load_schema() -> schemathesis.schemas.BaseSchema:
    """The document /api/schema/ serves, generated in process: the view answers signed-in clients only, and there
    is no user before the test database exists. Cases then run against Django's WSGI application."""
    document = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = WSGIHandler()
    loaded.location = "/api/schema/"
    return loaded


# Loaded when the module is imported (generating the schema needs no database); one test per operation and role.
schema = _load_schema()
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: a CI failure reproduces locally
    database=None,
)


# Every check schemathesis has, but one: "schema-valid input must be accepted" cannot hold for business rules the
# schema cannot state (a start in the past, a quote already used, capacity that is short answer 400/409 by design).
EXCLUDED_CHECKS = [positive_data_acceptance]
# The buying operations, whose cases reaching a 2xx (a priced quote, an admitted contract) are counted and printed.
PURCHASES = ("POST /api/sla/quotes/", "POST /api/contracts/")


def _as_a_buyer(case, role: str, world: dict) -> None:
    """A generated purchase names what a buyer in this role can name, so valid bodies reach admission: staff buy
    for the world's customer (staff have no customer account), a customer for itself (naming anyone else is
    refused, tests/sla), and a purchase from a quote names a fresh quote of the customer (ids are not guessable)."""
    if not isinstance(case.body, dict) or f"{case.method.upper()} {case.operation.path}" not in PURCHASES:
        return
    if "customer" in case.body or role == "staff":
        if role == "staff":
            case.body["customer"] = world["customer_id"]
        else:
            del case.body["customer"]
    if isinstance(case.body.get("quote"), int):
        case.body["quote"] = world["new_quote"]()
    if isinstance(case.body.get("starts_at"), str):
        case.body["starts_at"] = _bookable(case.body["starts_at"])


EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _bookable(start: str) -> str:
    """A generated start moved into the window a buyer can book, from a minute ahead to MAX_START_AHEAD_DAYS
    (the schema cannot state "not in the past": now is no constant). The same string always lands on the same
    offset from now; a string the API does not read as a date-time is left as it is."""
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        return start
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ahead = (moment - EPOCH) % timedelta(days=MAX_START_AHEAD_DAYS - 1)
    return (timezone.now() + timedelta(minutes=1) + ahead).astimezone(moment.tzinfo).isoformat()


def _call(case, world: dict, role: str, stats) -> int:
    """Sends the case as `role`, counts it, checks the answer; returns its status code."""
    token = world[role]
    if case.meta is not None and not case.meta.generation.mode.is_negative:
        _as_a_buyer(case, role, world)
    stats["cases"] += 1
    stats[f"role:{role}"] += 1
    if case.meta is not None and case.meta.generation.mode.is_negative:
        stats["negative"] += 1
    headers = {"Authorization": f"Token {token}"}
    response = case.call(headers=headers)
    if response.status_code >= 500:
        stats["5xx"] += 1
    operation = f"{case.method.upper()} {case.operation.path}"
    if operation in PURCHASES:  # how deep the fuzz reaches: the cases admitted vs refused
        stats[f"{operation} {'2xx' if response.status_code < 300 else 'refused'}"] += 1
    case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)
    return response.status_code


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_staff(case, world, fuzz_stats):
    _call(case, world, "staff", fuzz_stats)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_customer(case, world, fuzz_stats):
    _call(case, world, "customer", fuzz_stats)


PURCHASE_EXAMPLES = int(os.environ.get("FUZZ_PURCHASE_EXAMPLES", str(4 * MAX_EXAMPLES)))


@pytest.mark.parametrize("role", ["staff", "customer"])
@pytest.mark.parametrize("operation", PURCHASES)
def test_valid_purchases_reach_admission(operation, role, world, fuzz_stats):
    """Schema-valid purchases, more of them than the run above draws: most are priced or admitted (the schema
    states each body form exactly, the buyer names what it may, and the start lands in the bookable window), so the
    fuzz reaches admission and the contract's answer; the rest are refused by capacity (409), never by the schema's
    imprecision. Every answer is checked as above."""
    method, path = operation.split()
    answers: Counter = Counter()

    @given(case=schema[path][method].as_strategy(GenerationMode.POSITIVE))
    @hypothesis_settings(FUZZ_SETTINGS, max_examples=PURCHASE_EXAMPLES)
    def purchase(case):
        answers[_call(case, world, role, fuzz_stats) // 100] += 1

    purchase()
    assert answers[2] >= 0.8 * sum(answers.values()), answers
