"""Requests an outside probe sent to find 500s and HTML answers: NUL bytes in lookup paths, lone UTF-16 surrogates
in JSON, oversized bodies, unknown hosts, parse errors quoting Python, and guessed credentials.

Every one answers a JSON 4xx (never a 500), echoes nothing that cannot be encoded, and stores nothing.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle

from sla.models import Contract, Quote
from tests.factories import HardwareModelFactory, SiteFactory, TierFactory

pytestmark = pytest.mark.django_db

SURROGATE_VALUE = '{"tier": "standard", "capacity_kw": "\\ud800", "duration_hours": "4"}'
SURROGATE_KEY = '{"\\udfff": 1, "tier": "standard", "capacity_kw": "5", "duration_hours": "4"}'


@pytest.mark.parametrize(
    "path", ["/api/sites/%00/", "/api/sites/a%00b/", "/api/tiers/%00/", "/api/hardware-models/%00/"]
)
def test_a_nul_byte_in_a_lookup_path_is_a_json_404(customer_api, path):
    SiteFactory(code="oslo"), TierFactory(), HardwareModelFactory()

    response = customer_api.get(path)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("body", [SURROGATE_VALUE, SURROGATE_KEY])
@pytest.mark.parametrize("path", ["/api/sla/quotes/", "/api/contracts/", "/api/sla/request"])
def test_a_lone_surrogate_in_json_is_a_400_that_echoes_nothing_unencodable(customer_api, path, body):
    response = customer_api.post(path, body, content_type="application/json")

    assert response.status_code == 400
    response.content.decode("utf-8")  # encodable: no lone surrogate echoed
    assert "surrogate" in response.json()["detail"]
    assert not Quote.objects.exists() and not Contract.objects.exists()


@pytest.mark.parametrize("path", ["/api/scenarios/", "/api/optimizer/runs/"])
def test_staff_endpoints_refuse_a_lone_surrogate_too(staff_api, path):
    response = staff_api.post(path, '{"scenario": "\\ud800", "strategy": "\\ud800"}', content_type="application/json")

    assert response.status_code == 400
    assert "surrogate" in response.json()["detail"]


def test_the_mara_api_refuses_a_lone_surrogate_in_machines():
    client = APIClient()
    key = client.post("/mara/sites", {"name": "probe", "power": 1000000}, format="json").json()["api_key"]

    response = client.put(
        "/mara/machines", '{"air_miners": "\\ud800"}', content_type="application/json", HTTP_X_API_KEY=key
    )

    assert response.status_code == 400
    response.content.decode("utf-8")


@pytest.mark.parametrize("size", [20 * 1024, 3 * 1024 * 1024, 10 * 1024 * 1024])
@pytest.mark.parametrize("path", ["/api/sla/quotes/", "/api/scenarios/", "/mara/machines"])
def test_every_oversized_body_is_a_json_413(staff_api, path, size):
    body = json.dumps({"padding": "x" * size})

    response = staff_api.post(path, body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["detail"]


def test_an_unknown_host_is_a_json_400_under_the_api(client):
    response = client.get("/api/health", HTTP_HOST="evil.example.com")

    assert response.status_code == 400
    assert response.json() == {"detail": "Unknown host."}


@pytest.mark.parametrize(
    ("raw", "said"),
    [("1" * 5000, "too many digits"), ('{"tier": ', "line 1, column 10"), ('{"a": NaN}', "NaN is not a JSON number")],
)
def test_json_parse_errors_speak_json_not_python(customer_api, raw, said):
    response = customer_api.post("/api/sla/quotes/", raw, content_type="application/json")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert said in detail
    assert "sys." not in detail and "set_int_max_str_digits" not in detail


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/api/sites/", {"HTTP_AUTHORIZATION": "Token not-a-token"}), ("/mara/machines", {"HTTP_X_API_KEY": "guess"})],
)
def test_failed_authentication_is_throttled_like_anonymous_traffic(monkeypatch, path, headers):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "5/min"})
    client = APIClient()

    statuses = [client.get(path, **headers).status_code for _ in range(8)]

    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3


def test_an_outage_is_logged_once_at_warning_with_a_count(staff_api, monkeypatch, caplog):
    """22,000 ERROR lines in 18 s from django.request during a PostgreSQL stop: now one WARNING when it starts and
    one with the count when it ends."""
    staff_api.get("/api/health")

    def unreachable(self, *args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", unreachable)
    answers = [staff_api.get("/api/sites/").status_code for _ in range(20)]
    monkeypatch.undo()
    assert staff_api.get("/api/sites/").status_code == 200

    assert answers == [503] * 20
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    outage = [r.getMessage() for r in caplog.records if r.name == "core.middleware"]
    assert errors == []
    assert len(outage) == 2 and all(r.levelno == logging.WARNING for r in caplog.records if r.name == "core.middleware")
    assert outage[0].startswith("database unavailable (OperationalError")
    assert outage[1].startswith("database is back after") and outage[1].endswith("20 requests answered 503")


def test_a_nul_in_a_search_answers_a_400_object_as_documented(customer_api):
    response = customer_api.get("/api/sla/quotes/", {"search": "a\x00b"})

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Null characters are not allowed."]}
