"""The sla admin, as staff use it: changelists, search, add forms, committed kW, and the contract actions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from sla.choices import ContractStatus, TierCode
from sla.models import Contract
from tests.factories import (
    T0,
    ContractFactory,
    CustomerFactory,
    PlacementFactory,
    ServiceCreditRuleFactory,
    SiteFactory,
    TierFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

MODELS = ("tier", "servicecreditrule", "customer", "contract", "placement")
SEARCHES = {
    "tier": "premium",
    "servicecreditrule": "premium",
    "customer": "acme",
    "contract": "acme",
    "placement": "oslo",
}


def _url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:sla_{model}_{view}", args=args)


@pytest.fixture(autouse=True)
def _now():
    # Mid-contract: T0 + 6 h lies inside the factories' 24-hour contracts.
    with time_machine.travel(T0 + timedelta(hours=6), tick=False):
        yield


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def premium():
    tier = TierFactory(code=TierCode.PREMIUM, uptime_target_pct=Decimal("99.900"), price_multiplier=Decimal("3.50"))
    ServiceCreditRuleFactory(tier=tier, uptime_below_pct=Decimal("99.900"), credit_pct=Decimal("10.00"))
    return tier


@pytest.fixture
def acme_contract(premium):
    """An active 500 kW Premium contract placed 300 kW now at Oslo, plus another customer's request at Texas."""
    acme = CustomerFactory(name="Acme AI", company="Acme Corp", user=UserFactory(username="acme"))
    contract = ContractFactory(customer=acme, tier=premium, status=ContractStatus.ACTIVE)
    PlacementFactory(contract=contract, site=SiteFactory(code="oslo_1"), capacity_kw=Decimal("300"))
    PlacementFactory(
        contract=contract,
        site=SiteFactory(code="bergen_1"),
        capacity_kw=Decimal("200"),
        valid_to=T0 + timedelta(hours=1),  # ended before now
    )
    other = ContractFactory(
        customer=CustomerFactory(name="Zeta ML", user=UserFactory(username="zeta")),
        tier=TierFactory(code=TierCode.SPOT),
    )
    PlacementFactory(contract=other, site=SiteFactory(code="texas_1"))
    return contract


@pytest.mark.parametrize("model", MODELS)
def test_changelist_answers_for_staff(admin_client, acme_contract, model):
    assert admin_client.get(_url(model)).status_code == 200


@pytest.mark.parametrize("model", SEARCHES)
def test_search_finds_only_the_matching_row(admin_client, acme_contract, model):
    response = admin_client.get(_url(model), {"q": SEARCHES[model]})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_contract_search_by_number(admin_client, acme_contract):
    response = admin_client.get(_url("contract"), {"q": str(acme_contract.pk)})

    assert list(response.context["cl"].result_list) == [acme_contract]


@pytest.mark.parametrize("model", MODELS)
def test_add_form_answers_for_staff(admin_client, model):
    assert admin_client.get(_url(model, "add")).status_code == 200


def test_contract_changelist_shows_the_kw_placed_now(admin_client, acme_contract):
    response = admin_client.get(_url("contract"), {"q": "acme"})

    [row] = response.context["cl"].result_list
    assert row.placed_kw_now == Decimal("300")  # the Bergen placement ended before now
    assert "300.0" in response.content.decode()


def test_tier_and_customer_changelists_show_committed_kw_of_active_contracts(admin_client, acme_contract):
    tiers = {t.code: t for t in admin_client.get(_url("tier")).context["cl"].result_list}
    customers = {c.name: c for c in admin_client.get(_url("customer")).context["cl"].result_list}

    assert tiers["premium"].committed_kw == Decimal("500")
    assert tiers["spot"].committed_kw == 0  # its contract is only requested
    assert customers["Acme AI"].committed_kw == Decimal("500")
    assert customers["Zeta ML"].open_contract_count == 1


def test_current_placement_filter(admin_client, acme_contract):
    running = admin_client.get(_url("placement"), {"current": "yes"}).context["cl"].result_list
    ended = admin_client.get(_url("placement"), {"current": "no"}).context["cl"].result_list

    assert sorted(p.site.code for p in running) == ["oslo_1", "texas_1"]
    assert [p.site.code for p in ended] == ["bergen_1"]


def _contract_form(customer, tier, **overrides) -> dict:
    data = {
        "customer": customer.pk,
        "tier": tier.pk,
        "capacity_kw": "250",
        "starts_at_0": "2026-07-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "2026-07-31",
        "ends_at_1": "00:00:00",
        "region_preference": "europe",
        "quoted_price_usd_per_kwh": "0.110000",
        "quoted_total_usd": "19800.00",
        "status": ContractStatus.ACTIVE,  # ignored: status is read-only
        "placements-TOTAL_FORMS": "0",
        "placements-INITIAL_FORMS": "0",
        "placements-MIN_NUM_FORMS": "0",
        "placements-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_adding_a_contract_creates_a_request_whatever_status_is_posted(admin_client, premium):
    customer = CustomerFactory()

    response = admin_client.post(_url("contract", "add"), _contract_form(customer, premium))

    assert response.status_code == 302
    contract = Contract.objects.get()
    assert contract.status == ContractStatus.REQUESTED


def test_adding_a_contract_that_ends_before_it_starts_shows_the_error(admin_client, premium):
    data = _contract_form(CustomerFactory(), premium, ends_at_0="2026-06-01")

    response = admin_client.post(_url("contract", "add"), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Contract.objects.exists()


def test_contract_change_page_shows_status_read_only_and_its_placements(admin_client, acme_contract):
    response = admin_client.get(_url("contract", "change", acme_contract.pk))

    assert response.status_code == 200
    assert "status" in response.context["adminform"].readonly_fields
    assert "status" not in response.context["adminform"].form.fields
    assert "oslo_1" in response.content.decode()


def test_contract_status_cannot_be_edited_on_the_change_form(admin_client, premium):
    contract = ContractFactory(tier=premium)
    data = _contract_form(contract.customer, premium, status=ContractStatus.COMPLETED, capacity_kw="750")

    response = admin_client.post(_url("contract", "change", contract.pk), data)

    assert response.status_code == 302
    contract.refresh_from_db()
    assert contract.status == ContractStatus.REQUESTED
    assert contract.capacity_kw == Decimal("750")


def _act(client, action: str, *contracts: Contract):
    data = {"action": action, "_selected_action": [c.pk for c in contracts]}
    response = client.post(_url("contract"), data, follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_approve_action_activates_a_requested_contract(staff_client, premium):
    contract = ContractFactory(tier=premium)

    messages = _act(staff_client, "approve", contract)

    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE
    assert messages == ["1 contract approved."]
    record = contract.history.first()
    assert (record.history_user.username, record.history_change_reason) == ("staff", "approved")


def test_reject_action_rejects_a_requested_contract(staff_client, premium):
    contract = ContractFactory(tier=premium)

    messages = _act(staff_client, "reject", contract)

    contract.refresh_from_db()
    assert contract.status == ContractStatus.REJECTED
    assert messages == ["1 contract rejected."]


def test_terminate_action_ends_an_active_contract_and_closes_its_placements(staff_client, acme_contract):
    messages = _act(staff_client, "terminate", acme_contract)

    acme_contract.refresh_from_db()
    assert acme_contract.status == ContractStatus.TERMINATED
    assert messages == ["1 contract terminated."]
    assert not acme_contract.placements.current(T0 + timedelta(hours=6)).exists()


def test_approving_a_completed_contract_is_refused_with_a_message(staff_client, premium):
    done = ContractFactory(tier=premium, status=ContractStatus.COMPLETED)

    messages = _act(staff_client, "approve", done)

    done.refresh_from_db()
    assert done.status == ContractStatus.COMPLETED
    assert messages[0].startswith(f"{done} was not approved: ")
    assert messages[1:] == ["1 contract refused."]
    assert done.history.count() == 1  # nothing was written


def test_mixed_selection_counts_successes_and_refusals(staff_client, premium):
    requested = ContractFactory(tier=premium)
    rejected = ContractFactory(tier=premium, status=ContractStatus.REJECTED)

    messages = _act(staff_client, "terminate", requested, rejected)

    assert {c.status for c in Contract.objects.all()} == {ContractStatus.REQUESTED, ContractStatus.REJECTED}
    assert len(messages) == 3
    assert messages[-1] == "2 contracts refused."

    messages = _act(staff_client, "reject", requested, rejected)

    assert messages[-2:] == ["1 contract rejected.", "1 contract refused."]
    assert set(Contract.objects.values_list("status", flat=True)) == {ContractStatus.REJECTED}


def test_contract_history_page_shows_who_approved(staff_client, premium):
    contract = ContractFactory(tier=premium)
    _act(staff_client, "approve", contract)

    content = staff_client.get(_url("contract", "history", contract.pk)).content.decode()

    assert "staff" in content
    assert "approved" in content


def test_reverting_a_contract_to_requested_is_refused(staff_client, premium):
    contract = ContractFactory(tier=premium)
    requested = contract.history.earliest()
    _act(staff_client, "approve", contract)
    url = reverse("admin:sla_contract_simple_history", args=(contract.pk, requested.history_id))

    assert staff_client.get(url).status_code == 200
    assert staff_client.post(url, _contract_form(contract.customer, premium)).status_code == 403
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE


@pytest.mark.parametrize("model", ["contract", "customer"])
def test_non_staff_user_is_sent_to_login(client, customer, model):
    client.force_login(customer.user)

    response = client.get(_url(model))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_non_staff_user_cannot_run_actions(client, premium):
    contract = ContractFactory(tier=premium)
    client.force_login(UserFactory(username="carol"))

    response = client.post(_url("contract"), {"action": "approve", "_selected_action": [contract.pk]})

    assert response.status_code == 302
    contract.refresh_from_db()
    assert contract.status == ContractStatus.REQUESTED
