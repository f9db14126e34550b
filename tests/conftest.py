"""Shared fixtures: a fixed cast of users (staff, customer, outsider) and authenticated API clients."""

import pytest
from django.core.cache import caches
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import CustomerFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The manifest storage (DEBUG off) needs `collectstatic` before a page renders; tests skip that step.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Each test process gets its own in-memory cache: throttle counters and locks neither leak between tests
    # nor collide with a parallel test process (a shared Redis or file cache would). Tests of the Redis cache
    # itself configure it explicitly.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
    caches["default"].clear()
    yield


@pytest.fixture(autouse=True)
def _no_customer_cap(settings):
    """Tests of site limits, failover, migration and the optimizer fill the fleet as one customer: the per-customer
    cap (SLA_CUSTOMER_SHARE_PCT, 50 % by default) is off for them, and set by the tests of the cap itself
    (tests/sla/test_customer_cap.py, the race in tests/sla/test_race.py and the query counts of admission)."""
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT": 100.0, "SLA_CUSTOMER_SHARE_PCT_BY_TIER": {}}


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


@pytest.fixture
def customer(db):
    return CustomerFactory(user=UserFactory(username="alice"), name="Alice Labs")


@pytest.fixture
def outsider(db):
    return CustomerFactory(user=UserFactory(username="bob"), name="Bob Compute")


def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def staff_api(staff_user):
    return _token_client(staff_user)


@pytest.fixture
def customer_api(customer):
    return _token_client(customer.user)


@pytest.fixture
def outsider_api(outsider):
    return _token_client(outsider.user)
