"""The per-customer cap and the cancellation policy (#14 item 12).

The outside probe booked all free capacity as one customer and cancelled it at no cost. Now no customer's open
contracts hold, at any moment, more than SLA_CUSTOMER_SHARE_PCT of the fleet's SLA capacity (per tier optionally
less), whoever writes them (API, the original request, staff in the admin, services), and cancelling costs the fee
the quote's terms state. The fleet of tests/sla/conftest.py has 1,600 kW of SLA capacity.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from sla.models import Contract, Quote
from sla.services import (
    AdmissionRefused,
    CapacityRequest,
    admit_contract,
    cancel_contract,
    create_contract,
    create_contract_from_quote,
    create_quote,
    terminate_contract,
)
from tests.factories import T0, ContractFactory

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


@pytest.fixture
def half(settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT": 50.0, "SLA_CUSTOMER_SHARE_PCT_BY_TIER": {}}
    return settings


def ask(tier, kw, *, start=T0, hours=2) -> CapacityRequest:
    return CapacityRequest(tier=tier, capacity_kw=Decimal(kw), starts_at=start, ends_at=start + hours * H)


def test_a_customer_holds_at_most_its_share_of_the_fleet_at_any_moment(half, fleet, frozen, customer, outsider):
    create_contract(customer=customer, request=ask(fleet.standard, "500"))

    with pytest.raises(AdmissionRefused, match=r"would hold 900\.000 kW .* cap of 800\.000 kW \(50 %"):
        create_contract(customer=customer, request=ask(fleet.standard, "400", start=T0 + H))

    create_contract(customer=customer, request=ask(fleet.standard, "300", start=T0 + H))  # 800: exactly the cap
    create_contract(customer=customer, request=ask(fleet.standard, "800", start=T0 + 3 * H))  # after: free again
    create_contract(customer=outsider, request=ask(fleet.standard, "100"))  # another customer's own cap
    assert Contract.objects.filter(customer=customer).count() == 3


def test_a_tier_may_have_a_tighter_cap(half, fleet, frozen, customer):
    half.ENERGYARB = {**half.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT_BY_TIER": {"premium": 10.0}}
    create_contract(customer=customer, request=ask(fleet.premium, "150"))

    with pytest.raises(AdmissionRefused, match=r"Premium contracts would hold 170\.000 kW .* cap of 160\.000 kW"):
        create_contract(customer=customer, request=ask(fleet.premium, "20"))

    create_contract(customer=customer, request=ask(fleet.standard, "600"))  # the 50 % cap counts every tier
    with pytest.raises(AdmissionRefused, match=r"cap of 800\.000 kW"):
        create_contract(customer=customer, request=ask(fleet.standard, "60"))


def test_ending_a_contract_frees_its_share(half, fleet, frozen, customer):
    first = create_contract(customer=customer, request=ask(fleet.standard, "800"))
    with pytest.raises(AdmissionRefused):
        create_contract(customer=customer, request=ask(fleet.standard, "100"))

    cancel_contract(contract=first)

    create_contract(customer=customer, request=ask(fleet.standard, "800"))


def test_quotes_purchases_and_the_original_request_answer_409_past_the_cap(half, fleet, frozen, customer, customer_api):
    create_contract(customer=customer, request=ask(fleet.standard, "700"))
    quotes_before = Quote.objects.count()

    quote = customer_api.post(
        "/api/sla/quotes/", {"tier": "standard", "capacity_kw": 200, "duration_hours": 2}, format="json"
    )
    bought = customer_api.post(
        "/api/contracts/", {"tier": "standard", "capacity_kw": 200, "duration_hours": 2}, format="json"
    )
    original = customer_api.post(
        "/api/sla/request", {"tier": "spot", "power_requirement": 200, "duration_hours": 2}, format="json"
    )

    for response in (quote, bought, original):
        assert response.status_code == 409, response.json()
        assert "cap of 800.000 kW" in response.json()["detail"]
    assert Quote.objects.count() == quotes_before and Contract.objects.count() == 1


def test_a_quote_bought_after_the_customer_filled_its_share_is_refused(half, fleet, frozen, customer):
    quote = create_quote(customer=customer, request=ask(fleet.standard, "500"))
    create_contract(customer=customer, request=ask(fleet.standard, "500"))

    with pytest.raises(AdmissionRefused, match=r"cap of 800\.000 kW"):
        create_contract_from_quote(quote=quote)


def test_staff_admitting_a_typed_request_is_bound_by_the_cap(half, fleet, frozen, customer):
    create_contract(customer=customer, request=ask(fleet.standard, "500"))
    typed = ContractFactory(
        customer=customer, tier=fleet.standard, capacity_kw=Decimal("400"), starts_at=T0, ends_at=T0 + 2 * H
    )

    with pytest.raises(AdmissionRefused, match=r"would hold 900\.000 kW"):
        admit_contract(contract=typed)


def test_the_admin_contract_form_is_bound_by_the_cap(half, fleet, frozen, customer, client, staff_user):
    create_contract(customer=customer, request=ask(fleet.standard, "500"))
    client.force_login(staff_user)
    form = {
        "customer": customer.pk,
        "tier": fleet.standard.pk,
        "capacity_kw": "400",
        "starts_at_0": "2026-06-01",
        "starts_at_1": "00:30:00",
        "ends_at_0": "2026-06-01",
        "ends_at_1": "01:30:00",
        "region_preference": "",
        "quoted_price_usd_per_kwh": "0.1",
        "quoted_total_usd": "40",
        "cancellation_fee_pct": "25",
        "placements-TOTAL_FORMS": "0",
        "placements-INITIAL_FORMS": "0",
    }

    refused = client.post(reverse("admin:sla_contract_add"), form)
    form["capacity_kw"] = "300"
    saved = client.post(reverse("admin:sla_contract_add"), form)

    assert refused.status_code == 200
    assert "cap of 800.000 kW" in refused.context["adminform"].form.errors["capacity_kw"][0]
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert Contract.objects.filter(customer=customer, capacity_kw=Decimal("300")).count() == 1


def test_a_quote_states_its_cancellation_terms_and_its_contract_keeps_them(settings, fleet, frozen, customer_api):
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CANCELLATION_FEE_PCT": 20.0}
    quote = customer_api.post(
        "/api/sla/quotes/", {"tier": "standard", "capacity_kw": 10, "duration_hours": 4}, format="json"
    ).json()
    assert quote["terms"]["cancellation_fee_pct"] == "20.00"
    assert "20.00 % of the quoted total" in quote["terms"]["cancellation_policy"]

    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CANCELLATION_FEE_PCT": 90.0}  # later policy: not this quote's
    contract = customer_api.post("/api/contracts/", {"quote": quote["id"]}, format="json").json()

    assert contract["cancellation_fee_pct"] == "20.00" and contract["cancellation_fee_usd"] is None


def test_cancelling_charges_the_fee_on_the_unserved_part(settings, fleet, frozen, customer, customer_api):
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CANCELLATION_FEE_PCT": 20.0}
    later = create_contract(customer=customer, request=ask(fleet.standard, "10", start=T0 + H, hours=4))
    running = create_contract(customer=customer, request=ask(fleet.standard, "10", hours=4))

    before_start = customer_api.post(f"/api/contracts/{later.pk}/cancel/", {}, format="json").json()
    with time_machine.travel(T0 + 3 * H, tick=False):  # a quarter of the window left
        mid_window = customer_api.post(f"/api/contracts/{running.pk}/cancel/", {}, format="json").json()

    assert Decimal(before_start["cancellation_fee_usd"]) == (later.quoted_total_usd * Decimal("0.2")).quantize(
        Decimal("0.01")
    )
    assert Decimal(mid_window["cancellation_fee_usd"]) == (running.quoted_total_usd * Decimal("0.05")).quantize(
        Decimal("0.01")
    )
    assert Decimal(mid_window["cancellation_fee_usd"]) > 0
    running.refresh_from_db()
    assert running.history.first().cancellation_fee_usd == Decimal(mid_window["cancellation_fee_usd"])  # audited


def test_staff_terminating_a_contract_charges_no_cancellation_fee(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.standard, "10"))

    terminate_contract(contract=contract)

    contract.refresh_from_db()
    assert contract.cancellation_fee_usd is None


def test_a_cap_for_an_unknown_tier_is_a_configuration_error(settings):
    from sla.apps import check_customer_caps

    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT_BY_TIER": {"premum": 10.0}}

    assert [error.id for error in check_customer_caps()] == ["sla.E001"]
