"""Bad input gets a clear 4xx answer with field-level messages and writes nothing; nothing answers 500."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse
from rest_framework.throttling import SimpleRateThrottle

from core.parsers import MAX_BODY_BYTES, PayloadTooLarge
from core.parsers import StrictJSONParser as BoundedJSONParser
from sla.models import Contract, Placement, Quote

pytestmark = pytest.mark.django_db

QUOTES = reverse("quote-list")
CONTRACTS = reverse("contract-list")
ORIGINAL = "/api/sla/request"
GOOD = {"tier": "standard", "capacity_kw": "10", "duration_hours": "2"}
ENDPOINTS = [QUOTES, CONTRACTS]


def nothing_written() -> bool:
    return not (Quote.objects.exists() or Contract.objects.exists() or Placement.objects.exists())


BAD_FIELDS = [
    ("capacity_kw", "-5", "greater than or equal to 0.001"),
    ("capacity_kw", "0", "greater than or equal to 0.001"),
    ("capacity_kw", -5, "greater than or equal to 0.001"),
    ("capacity_kw", "abc", "A valid number is required."),
    ("capacity_kw", True, "A number is required, not true or false."),
    ("capacity_kw", False, "A number is required, not true or false."),
    ("capacity_kw", "1e30", "no more than 12 digits"),
    ("capacity_kw", 10**40, "no more than 12 digits"),
    ("capacity_kw", "100001", "less than or equal to 100000"),
    ("capacity_kw", "1.0001", "no more than 3 decimal places"),
    ("capacity_kw", None, "This field may not be null."),
    ("capacity_kw", [10], "A valid number is required."),
    ("capacity_kw", {"kw": 10}, "A valid number is required."),
    ("capacity_kw", "NaN", "A valid number is required."),
    ("capacity_kw", "Infinity", "A valid number is required."),
    ("tier", "platinum", '"platinum" is not a valid choice.'),
    ("tier", "", '"" is not a valid choice.'),
    ("tier", 1, '"1" is not a valid choice.'),
    ("starts_at", "2026-05-31T23:00:00Z", "The start must not be in the past."),
    ("starts_at", "2027-06-02T00:00:00Z", "The start must be within 365 days from now."),
    ("starts_at", "next tuesday", "Datetime has wrong format."),
    ("duration_hours", "0", "greater than or equal to 1"),
    ("duration_hours", "0.5", "greater than or equal to 1"),
    ("duration_hours", "-3", "greater than or equal to 1"),
    ("duration_hours", "8761", "less than or equal to 8760"),
    ("duration_hours", True, "A number is required, not true or false."),
    ("region_preference", "mars", '"mars" is not a valid choice.'),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS)
def test_bad_field_is_400_with_a_field_message_and_nothing_written(
    fleet, frozen, customer_api, endpoint, field, value, message
):
    response = customer_api.post(endpoint, {**GOOD, field: value}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {field}
    assert message in response.json()[field][0]
    assert nothing_written()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_missing_fields_are_each_named(fleet, frozen, customer_api, endpoint):
    response = customer_api.post(endpoint, {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"tier", "capacity_kw", "duration_hours"}
    assert nothing_written()


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, ORIGINAL])
def test_unknown_fields_are_refused_by_name(fleet, frozen, customer_api, endpoint):
    response = customer_api.post(endpoint, {**GOOD, "power_requirement": "10", "priority": "high"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body.get("priority") == ["Unknown field."]
    assert nothing_written()


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, ORIGINAL])
@pytest.mark.parametrize(
    "raw",
    [b'{"tier": "standard", "capacity_kw": ', b"not json at all", b'{"capacity_kw": NaN}', b"\xff\xfe{}", b"[" * 5000],
)
def test_malformed_json_is_400(fleet, frozen, customer_api, endpoint, raw):
    response = customer_api.post(endpoint, raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert nothing_written()


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, ORIGINAL])
@pytest.mark.parametrize("body", [[GOOD], "standard", 42, None])
def test_a_body_that_is_not_an_object_is_400(fleet, frozen, customer_api, endpoint, body):
    response = customer_api.post(endpoint, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert nothing_written()


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, ORIGINAL])
def test_oversized_body_is_413(fleet, frozen, customer_api, endpoint):
    body = json.dumps({**GOOD, "padding": "x" * MAX_BODY_BYTES})

    response = customer_api.post(endpoint, body, content_type="application/json")

    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert nothing_written()


def test_parser_bounds_the_bytes_it_reads_even_without_content_length():
    # Django reads nothing without a Content-Length; the parser still refuses to read past its bound.
    body = json.dumps({**GOOD, "padding": "x" * MAX_BODY_BYTES}).encode()
    request = type("Request", (), {"META": {}})()

    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(io.BytesIO(body), "application/json", {"request": request})
    assert BoundedJSONParser().parse(io.BytesIO(json.dumps(GOOD).encode()), None, {"request": request}) == GOOD


def test_form_encoded_body_is_415(fleet, frozen, customer_api):
    response = customer_api.post(CONTRACTS, GOOD)  # multipart form

    assert response.status_code == 415
    assert nothing_written()


@pytest.mark.parametrize("quote", ["abc", -1, 0, True, 10**30, 3.5])
def test_bad_quote_reference_is_400(fleet, frozen, customer_api, quote):
    response = customer_api.post(CONTRACTS, {"quote": quote}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"quote"}
    assert nothing_written()


def test_unknown_quote_is_400(fleet, frozen, customer_api):
    response = customer_api.post(CONTRACTS, {"quote": 123456}, format="json")

    assert response.json() == {"quote": ["No such quote."]}


@pytest.mark.parametrize("body", [{"reason": "x" * 201}, {"why": "because"}, {"reason": ["a"]}])
def test_bad_cancel_body_is_400_and_cancels_nothing(fleet, frozen, customer_api, body):
    contract_id = customer_api.post(CONTRACTS, GOOD, format="json").json()["id"]

    response = customer_api.post(reverse("contract-cancel", args=[contract_id]), body, format="json")

    assert response.status_code == 400
    assert Contract.objects.get().status == "active"


def test_writes_are_throttled_per_customer_with_429(fleet, frozen, customer_api, outsider_api, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "contracts", "3/min")
    statuses = [customer_api.post(QUOTES, GOOD, format="json").status_code for _ in range(4)]

    assert statuses == [201, 201, 201, 429]
    assert customer_api.post(CONTRACTS, GOOD, format="json").status_code == 429
    assert customer_api.get(CONTRACTS).status_code == 200  # reads are not in the write scope
    assert outsider_api.post(QUOTES, GOOD, format="json").status_code == 201  # per customer
    assert Quote.objects.count() == 4 and not Contract.objects.exists()


def test_tier_that_is_valid_but_not_set_up_is_400(frozen, customer_api):
    response = customer_api.post(QUOTES, GOOD, format="json")

    assert response.status_code == 400
    assert response.json() == {"tier": ["Tier 'standard' is not offered."]}


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_contracts_cannot_be_edited_or_deleted_through_the_api(fleet, frozen, customer_api, method):
    contract_id = customer_api.post(CONTRACTS, GOOD, format="json").json()["id"]

    response = getattr(customer_api, method)(reverse("contract-detail", args=[contract_id]), GOOD, format="json")

    assert response.status_code == 405
    assert Contract.objects.get().status == "active"
