"""The original product's `POST /api/sla/request`: same fields, now admitted without overbooking."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sla.capacity import peak_kw
from sla.models import Contract
from sla.services import candidate_sites, load_bookings
from tests.factories import T0

pytestmark = pytest.mark.django_db

URL = "/api/sla/request"


def test_request_answers_the_original_fields(fleet, frozen, customer_api):
    response = customer_api.post(
        URL, {"tier": "premium", "power_requirement": 150, "duration_hours": 24}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {"sla_tier", "power_allocated", "optimal_site", "estimated_uptime", "price_multiplier"} <= set(body)
    assert body["sla_tier"] == "premium"
    assert body["power_allocated"] == 150.0
    assert body["optimal_site"] == "oslo"
    assert body["estimated_uptime"] == 99.9
    assert body["price_multiplier"] == 3.5
    assert body["sites"] == ["oslo", "texas"]
    contract = Contract.objects.get(pk=body["contract_id"])
    assert (contract.capacity_kw, contract.starts_at, body["status"]) == (Decimal("150"), T0, "active")


def test_trailing_slash_is_accepted(fleet, frozen, customer_api):
    response = customer_api.post(
        f"{URL}/", {"tier": "spot", "power_requirement": 1, "duration_hours": 1}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["estimated_uptime"] is None  # Spot promises no uptime


def test_fifty_requests_never_book_a_site_past_its_limit(fleet, frozen, customer_api):
    """The original put all 50 on one site (250 % of its power); now the fleet fills and then refuses."""
    statuses = [
        customer_api.post(
            URL, {"tier": "standard", "power_requirement": 50, "duration_hours": 2}, format="json"
        ).status_code
        for _ in range(50)
    ]

    assert statuses.count(201) == 32 and statuses.count(409) == 18  # 1,600 kW of SLA capacity / 50 kW
    rooms = candidate_sites(lock=False)
    load_bookings(rooms, start=T0, end=T0.replace(hour=2))
    assert all(peak_kw(r.bookings, T0, T0.replace(hour=2)) <= r.limit_kw for r in rooms)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tier": "platinum", "power_requirement": 10, "duration_hours": 1}, "tier"),
        ({"tier": "premium", "power_requirement": -10, "duration_hours": 1}, "power_requirement"),
        ({"tier": "premium", "power_requirement": 1e12, "duration_hours": 1}, "power_requirement"),
        ({"tier": "premium", "power_requirement": "lots", "duration_hours": 1}, "power_requirement"),
        ({"tier": "premium", "power_requirement": True, "duration_hours": 1}, "power_requirement"),
        ({"tier": "premium", "power_requirement": 10, "duration_hours": 0}, "duration_hours"),
        ({"tier": "premium", "power_requirement": 10}, "duration_hours"),
        ({"tier": "premium", "capacity_kw": 10, "power_requirement": 10, "duration_hours": 1}, "capacity_kw"),
    ],
)
def test_bad_input_is_400_not_500(fleet, frozen, customer_api, body, field):
    response = customer_api.post(URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Contract.objects.exists()


def test_capacity_short_is_409_not_an_overbooking(fleet, frozen, customer_api):
    response = customer_api.post(
        URL, {"tier": "premium", "power_requirement": 5000, "duration_hours": 1}, format="json"
    )

    assert response.status_code == 409
    assert not Contract.objects.exists()


def test_anonymous_request_is_401(fleet, anon_api):
    assert (
        anon_api.post(URL, {"tier": "spot", "power_requirement": 1, "duration_hours": 1}, format="json").status_code
        == 401
    )


def test_get_is_405(fleet, customer_api):
    assert customer_api.get(URL).status_code == 405


def test_staff_may_name_the_customer_here_as_on_quotes_and_contracts(fleet, frozen, staff_api, customer):
    body = {"tier": "standard", "power_requirement": 5, "duration_hours": 2, "customer": customer.pk}

    response = staff_api.post(URL, body, format="json")

    assert response.status_code == 201, response.json()
    assert Contract.objects.get(pk=response.json()["contract_id"]).customer == customer


def test_a_customer_naming_another_customer_here_is_refused_as_on_quotes(fleet, frozen, customer_api, outsider):
    body = {"tier": "standard", "power_requirement": 5, "duration_hours": 2, "customer": outsider.pk}

    for url in (URL, "/api/sla/quotes/"):
        sent = body if url == URL else {**body, "capacity_kw": 5} | {"power_requirement": None}
        sent = {k: v for k, v in sent.items() if v is not None}
        assert customer_api.post(url, sent, format="json").status_code == 403
    assert not Contract.objects.exists()
