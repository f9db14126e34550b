"""Numbers, dates and ids are read in ASCII digits only (#14 item 11d): Python's int(), Decimal() and float() read
U+0661 (Arabic-Indic one) and U+FF11 (fullwidth one) as 1, and so did every DRF and django-filter field built on them.
A policy in core (core.numbers) refuses them with a field message, for every serializer and filter, and a path id
in them is not found."""

from __future__ import annotations

import pytest

from optimizer.choices import RunTrigger
from optimizer.models import OptimizationRun
from sla.models import Contract, Placement, Quote
from tests.factories import T0
from tests.sla.test_placement_limits import ADD, H, admit, form

pytestmark = pytest.mark.django_db

YEAR_2026 = "\u0662\u0660\u0662\u0666"  # in Arabic-Indic digits
FOREIGN_ONES = ["\u0661", "\uff11", "\u06f1", "\u0967"]  # Arabic-Indic, fullwidth, Extended Arabic-Indic, Devanagari


@pytest.mark.parametrize("one", FOREIGN_ONES)
@pytest.mark.parametrize("field", ["capacity_kw", "duration_hours"])
def test_a_quote_refuses_a_number_in_foreign_digits(fleet, frozen, customer_api, one, field):
    body = {"tier": "standard", "capacity_kw": "5", "duration_hours": "2", field: f"{one}0"}

    response = customer_api.post("/api/sla/quotes/", body, format="json")

    assert response.status_code == 400
    assert "ASCII digits" in response.json()[field][0]
    assert not Quote.objects.exists()


@pytest.mark.parametrize("one", FOREIGN_ONES[:2])
def test_the_original_request_and_an_inline_purchase_refuse_them_too(fleet, frozen, customer_api, one):
    original = {"tier": "standard", "power_requirement": f"{one}0", "duration_hours": "2"}
    inline = {"tier": "standard", "capacity_kw": "5", "duration_hours": one}

    first = customer_api.post("/api/sla/request", original, format="json")
    second = customer_api.post("/api/contracts/", inline, format="json")

    assert first.status_code == 400 and "power_requirement" in first.json()
    assert second.status_code == 400 and "duration_hours" in second.json()
    assert not Contract.objects.exists()


def test_an_integer_field_refuses_them(fleet, frozen, staff_api, customer):
    body = {"tier": "standard", "capacity_kw": "5", "duration_hours": "2", "customer": "\u0661"}

    response = staff_api.post("/api/sla/quotes/", body, format="json")

    assert response.status_code == 400 and "ASCII digits" in response.json()["customer"][0]


def test_a_date_in_foreign_digits_is_refused(fleet, frozen, customer_api):
    body = {"tier": "standard", "capacity_kw": "5", "duration_hours": "2", "starts_at": f"{YEAR_2026}-06-01T00:00:00Z"}

    response = customer_api.post("/api/sla/quotes/", body, format="json")

    assert response.status_code == 400 and "starts_at" in response.json()


def test_a_query_filter_refuses_them(customer_api):
    response = customer_api.get("/api/contracts/", {"created_after": f"{YEAR_2026}-01-01T00:00:00Z"})

    assert response.status_code == 400 and "created_after" in response.json()


def test_an_id_in_foreign_digits_in_a_path_is_not_found(staff_api):
    run = OptimizationRun.objects.create(trigger=RunTrigger.MANUAL)
    assert str(run.pk).isascii()
    foreign = "".join(chr(0x0660 + int(digit)) for digit in str(run.pk))

    assert staff_api.get(f"/api/optimizer/runs/{run.pk}/").status_code == 200
    assert staff_api.get(f"/api/optimizer/runs/{foreign}/").status_code == 404


def test_the_admin_form_refuses_them_too(client, staff_user, fleet, frozen, customer):
    contract = admit(customer, fleet.standard, "100")
    Placement.objects.filter(contract=contract).update(valid_to=T0 + 2 * H)
    client.force_login(staff_user)

    response = client.post(ADD, form(contract, fleet.dublin, "\u0661\u0660\u0660", start=T0 + 2 * H))

    assert response.status_code == 200
    assert "ASCII digits" in response.context["adminform"].form.errors["capacity_kw"][0]
    assert not Placement.objects.filter(contract=contract, site=fleet.dublin).exists()
