"""The customer API: quotes, contracts, tenancy, filters, cancel, and what a contract shows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from rest_framework import serializers

from sites.choices import SiteStatus
from sla.api.serializers import OutputDecimalField, SharedFieldsMixin
from sla.choices import ContractStatus
from sla.models import Contract, Quote
from sla.services import DeliveryRow, fail_over_site, issue_service_credits, record_deliveries
from tests.factories import T0, ContractFactory, CustomerFactory, MarketPriceFactory, UserFactory

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)
QUOTES = reverse("quote-list")
CONTRACTS = reverse("contract-list")


def buy(api, **fields):
    body = {"tier": "standard", "capacity_kw": "100", "duration_hours": "2", **fields}
    return api.post(CONTRACTS, body, format="json")


def test_quote_shows_price_breakdown_sites_and_deadline(fleet, frozen, customer_api):
    MarketPriceFactory(interval_start=T0 - H, inference_price_usd_per_mtok=Decimal("2.5000"))

    response = customer_api.post(
        QUOTES,
        {"tier": "premium", "capacity_kw": "80", "starts_at": "2026-06-01T06:00:00Z", "duration_hours": "10"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["tier"] == "premium"
    assert (body["starts_at"], body["ends_at"]) == ("2026-06-01T06:00:00Z", "2026-06-01T16:00:00Z")
    assert body["breakdown"] == {
        "base_rate_usd_per_kw_month": "415.00",
        "price_usd_per_kw_month": "1558.17",  # 415 x 3.5 x (1 + 0.5 x 14.55 %)
        "token_price_usd_per_mtok": "2.5000",
        "token_price_source": "market",
        "tokens_per_s_per_kw": "1200.00",
        "base_value_usd_per_kwh": "10.800000",
        "tier_multiplier": "3.50",
        "utilization_pct": "14.55",  # (80 + 80) kW of 800 + 300 kW
        "utilization_factor": "1.0728",
    }
    assert body["price_usd_per_kwh"] == "2.134479"  # 1,558.17 / 730 h
    assert body["total_usd"] == "1707.58"  # x 80 kW x 10 h
    assert [(s["site"], s["capacity_kw"]) for s in body["sites"]] == [("oslo", "80.000"), ("texas", "80.000")]
    assert body["valid_until"] == "2026-06-01T00:15:00Z"
    assert not Contract.objects.exists()


def test_contract_from_quote_is_admitted_at_the_quoted_price(fleet, frozen, customer_api, customer):
    quote = customer_api.post(QUOTES, {"tier": "standard", "capacity_kw": "50", "duration_hours": "3"}, format="json")

    response = customer_api.post(CONTRACTS, {"quote": quote.json()["id"]}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["quote"] == quote.json()["id"]
    assert body["status"] == ContractStatus.ACTIVE
    assert body["quoted_price_usd_per_kwh"] == quote.json()["price_usd_per_kwh"]
    assert body["placements"] == [
        {
            "site": "oslo",
            "capacity_kw": "50.000",
            "valid_from": "2026-06-01T00:00:00Z",
            "valid_to": "2026-06-01T03:00:00Z",
            "kind": "admission",
            "moved_from": None,
            "reason": f"admitted (quote {quote.json()['id']})",
        }
    ]
    assert (body["uptime_to_date_pct"], body["service_credits"]) == (None, [])
    assert Contract.objects.get().customer == customer


def test_quote_can_be_bought_only_once(fleet, frozen, customer_api):
    quote_id = customer_api.post(QUOTES, {"tier": "spot", "capacity_kw": "5", "duration_hours": "1"}, format="json")
    quote_id = quote_id.json()["id"]
    assert customer_api.post(CONTRACTS, {"quote": quote_id}, format="json").status_code == 201

    again = customer_api.post(CONTRACTS, {"quote": quote_id}, format="json")

    assert again.status_code == 409
    assert again.json()["detail"] == f"Quote {quote_id} was already used for a contract."
    assert Contract.objects.count() == 1


def test_expired_quote_is_refused(fleet, frozen, customer_api):
    quote_id = customer_api.post(QUOTES, {"tier": "spot", "capacity_kw": "5", "duration_hours": "1"}, format="json")

    with time_machine.travel(T0 + timedelta(minutes=16), tick=False):
        response = customer_api.post(CONTRACTS, {"quote": quote_id.json()["id"]}, format="json")

    assert response.status_code == 400
    assert "expired" in response.json()["quote"][0]


def test_another_customers_quote_cannot_be_bought_or_seen(fleet, frozen, customer_api, outsider_api):
    quote_id = customer_api.post(QUOTES, {"tier": "spot", "capacity_kw": "5", "duration_hours": "1"}, format="json")
    quote_id = quote_id.json()["id"]

    assert outsider_api.post(CONTRACTS, {"quote": quote_id}, format="json").json() == {"quote": ["No such quote."]}
    assert outsider_api.get(reverse("quote-detail", args=[quote_id])).status_code == 404
    assert customer_api.get(reverse("quote-detail", args=[quote_id])).status_code == 200


def test_quote_fields_cannot_be_overridden_when_buying_a_quote(fleet, frozen, customer_api):
    quote_id = customer_api.post(QUOTES, {"tier": "spot", "capacity_kw": "5", "duration_hours": "1"}, format="json")

    response = customer_api.post(CONTRACTS, {"quote": quote_id.json()["id"], "capacity_kw": "500"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"capacity_kw": ["Not allowed with a quote: the quote fixes it."]}


def test_inline_contract_is_admitted_and_placed(fleet, frozen, customer_api):
    response = buy(customer_api, tier="premium", capacity_kw="300", region_preference="europe")

    assert response.status_code == 201, response.json()
    assert sorted((p["site"], p["capacity_kw"]) for p in response.json()["placements"]) == [
        ("dublin", "300.000"),
        ("oslo", "300.000"),
    ]


def test_a_purchase_answers_and_writes_the_same_when_the_one_statement_is_refused(
    fleet, frozen, customer_api, monkeypatch
):
    """The ORM compiling the contract's INSERT in a shape core.db.PreparedInsertWithChildren does not expect (another
    Django version) must not fail the purchase: it writes the contract and its placements in two statements, and
    answers and writes what the one statement does (tests/test_db.py fails loudly on the shape itself)."""
    import re

    from django.db import connection, transaction

    import core.db
    from sla.models import HistoricalContract, Placement
    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT

    def bought():
        response = buy(customer_api, tier="premium", capacity_kw="300", region_preference="europe")
        contract = response.json()["id"]
        rows = [
            list(model.objects.filter(**{key: contract}).order_by("pk").values_list(*columns))
            for model, key, columns in (
                (Contract, "pk", [f.attname for f in Contract._meta.concrete_fields if not f.primary_key]),
                (Placement, "contract", ["site_id", "capacity_kw", "valid_from", "valid_to", "kind", "reason"]),
                (HistoricalContract, "id", ["history_type", "history_change_reason", "status", "capacity_kw"]),
            )
        ]
        body = response.json()
        del body["id"]
        return response.status_code, body, rows

    with transaction.atomic():
        expected = bought()
        transaction.set_rollback(True)
    monkeypatch.setattr(core.db, "_INSERT", re.compile(r"a shape no Django compiles"))
    monkeypatch.setattr(CONTRACT_WITH_PLACEMENTS_INSERT, "_compiled", {})  # compiled again, in the new "shape"

    status, body, rows = bought()

    assert (status, body, rows) == expected and status == 201
    assert len(rows[1]) == 2 and len(rows[2]) == 1
    two_statements = [None] if connection.vendor == "postgresql" else []  # refused; elsewhere never compiled
    assert list(CONTRACT_WITH_PLACEMENTS_INSERT._compiled.values()) == two_statements


def test_contract_detail_shows_where_a_failed_over_placement_came_from(fleet, frozen, customer_api):
    contract_id = buy(customer_api, tier="standard", capacity_kw="100", duration_hours="4").json()["id"]
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        fleet.oslo.status = SiteStatus.MAINTENANCE
        fleet.oslo.save()
        fail_over_site(site=fleet.oslo, reason="chiller swap")

    placements = customer_api.get(reverse("contract-detail", args=[contract_id])).json()["placements"]

    assert [(p["site"], p["kind"], p["moved_from"]) for p in placements] == [
        ("oslo", "admission", None),
        ("texas", "failover", "oslo"),  # the cheapest site with room (energy x 0.8 against dublin's 0.9)
    ]


def test_capacity_short_is_409_with_the_reason_and_nothing_written(fleet, frozen, customer_api):
    response = buy(customer_api, capacity_kw="2000")

    assert response.status_code == 409
    assert response.json()["detail"].startswith("Not enough free inference capacity for 2000.000 kW of Standard")
    assert not Contract.objects.exists()


def test_quote_refused_when_capacity_is_short(fleet, frozen, customer_api):
    response = customer_api.post(
        QUOTES, {"tier": "premium", "capacity_kw": "900", "duration_hours": "1"}, format="json"
    )

    assert response.status_code == 409
    assert "N-1" in response.json()["detail"]
    assert not Quote.objects.exists()


def test_contract_list_shows_only_own_contracts(fleet, frozen, customer_api, outsider_api, customer, outsider):
    mine = ContractFactory(customer=customer, tier=fleet.standard)
    ContractFactory(customer=outsider, tier=fleet.standard)

    response = customer_api.get(CONTRACTS)

    assert [row["id"] for row in response.json()["results"]] == [mine.pk]


def test_another_customers_contract_answers_404(fleet, frozen, customer_api, outsider):
    theirs = ContractFactory(customer=outsider, tier=fleet.standard)

    assert customer_api.get(reverse("contract-detail", args=[theirs.pk])).status_code == 404
    assert customer_api.post(reverse("contract-cancel", args=[theirs.pk]), {}, format="json").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == ContractStatus.REQUESTED


def test_staff_see_every_contract_but_cannot_buy_without_a_customer_account(fleet, frozen, staff_api, customer):
    ContractFactory(customer=customer, tier=fleet.standard)
    ContractFactory(tier=fleet.spot)

    assert staff_api.get(CONTRACTS).json()["count"] == 2
    response = buy(staff_api)
    assert response.status_code == 403
    assert response.json()["detail"] == "Only customer accounts can quote or buy capacity."


def test_anonymous_requests_are_refused(fleet, anon_api):
    assert anon_api.get(CONTRACTS).status_code == 401
    assert buy(anon_api).status_code == 401
    assert anon_api.post(QUOTES, {}, format="json").status_code == 401


def test_contract_list_filters_by_status_tier_and_dates(fleet, frozen, customer_api, customer):
    early = ContractFactory(customer=customer, tier=fleet.standard, starts_at=T0, status=ContractStatus.ACTIVE)
    late = ContractFactory(customer=customer, tier=fleet.spot, starts_at=T0 + 48 * H)
    ContractFactory(customer=customer, tier=fleet.standard, starts_at=T0 + 96 * H, status=ContractStatus.CANCELLED)

    def ids(**params):
        response = customer_api.get(CONTRACTS, params)
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids(status="active") == {early.pk}
    assert ids(status=["active", "requested"]) == {early.pk, late.pk}
    assert ids(tier="spot") == {late.pk}
    assert ids(starts_after="2026-06-02T00:00:00Z", starts_before="2026-06-04T00:00:00Z") == {late.pk}
    assert ids(ends_before="2026-06-02T00:00:00Z") == {early.pk}
    assert customer_api.get(CONTRACTS, {"status": "bogus"}).status_code == 400
    assert customer_api.get(CONTRACTS, {"starts_after": "yesterday"}).status_code == 400


def test_contract_list_costs_a_constant_number_of_queries(
    fleet, frozen, customer_api, customer, django_assert_num_queries
):
    for _ in range(3):
        buy(customer_api, tier="premium", capacity_kw="10")
    # token, count, contracts (uptime as subqueries), placements, credits, notices, downtimes
    with django_assert_num_queries(7):
        response = customer_api.get(CONTRACTS)
    assert response.json()["count"] == 3


def test_contract_detail_shows_uptime_to_date_and_credits(fleet, customer_api, customer):
    with time_machine.travel(T0, tick=False):
        contract_id = buy(customer_api, tier="premium", capacity_kw="100", duration_hours="48").json()["id"]
    # Two hours measured: one in full, one at 50 %, and one over-delivered (counts as 100 %, not more).
    record_deliveries(
        rows=[
            DeliveryRow(contract_id, T0, 60, Decimal("100"), Decimal("100")),
            DeliveryRow(contract_id, T0 + H, 60, Decimal("100"), Decimal("50")),
            DeliveryRow(contract_id, T0 + 2 * H, 60, Decimal("100"), Decimal("130")),
        ]
    )
    with time_machine.travel(T0 + 3 * H, tick=False):
        body = customer_api.get(reverse("contract-detail", args=[contract_id])).json()
    assert body["uptime_to_date_pct"] == "83.333"
    assert (body["delivered_kwh"], body["committed_kwh"]) == ("250.000", "300.000")
    with time_machine.travel(T0 + 4 * H, tick=False):  # the fourth hour has no record: undelivered
        body = customer_api.get(reverse("contract-detail", args=[contract_id])).json()
    assert (body["uptime_to_date_pct"], body["committed_kwh"]) == ("62.500", "400.000")

    with time_machine.travel(T0 + 40 * 24 * H, tick=False):
        issue_service_credits(month=T0.date())
        body = customer_api.get(reverse("contract-detail", args=[contract_id])).json()

    # The 45 hours after the records have none: 250 kWh served of 4,800 owed.
    [credit] = body["service_credits"]
    assert (credit["month"], credit["uptime_pct"], credit["credit_pct"]) == ("2026-06-01", "5.208", "100.00")
    assert credit["credit_usd"] == credit["charge_usd"]


def test_customer_cancels_own_contract_once(fleet, frozen, customer_api):
    contract_id = buy(customer_api).json()["id"]
    url = reverse("contract-cancel", args=[contract_id])

    response = customer_api.post(url, {"reason": "project ended"}, format="json")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == ("cancelled", "project ended")
    again = customer_api.post(url, {}, format="json")
    assert again.status_code == 409
    assert "cannot go from cancelled to cancelled" in again.json()["detail"]
    record = Contract.objects.get().history.first()
    assert (record.history_user.username, record.history_change_reason) == ("alice", "project ended")


def test_cancel_without_a_body_uses_a_default_reason(fleet, frozen, customer_api):
    contract_id = buy(customer_api).json()["id"]

    response = customer_api.post(reverse("contract-cancel", args=[contract_id]))

    assert response.status_code == 200
    assert response.json()["status_reason"] == "cancelled by the customer"


def test_cancelled_capacity_can_be_bought_again(fleet, frozen, customer_api):
    first = buy(customer_api, capacity_kw="1600").json()["id"]
    assert buy(customer_api, capacity_kw="1").status_code == 409

    customer_api.post(reverse("contract-cancel", args=[first]), {}, format="json")

    assert buy(customer_api, capacity_kw="1600").status_code == 201


def test_contract_ids_that_cannot_exist_answer_404(fleet, customer_api):
    assert customer_api.get(f"{CONTRACTS}99999999999999999999999/").status_code == 404
    assert customer_api.get(f"{CONTRACTS}abc/").status_code == 404


def test_session_user_without_customer_sees_nothing(fleet, frozen, client):
    ContractFactory(customer=CustomerFactory(), tier=fleet.standard)
    client.force_login(UserFactory(username="nobody"))

    assert client.get(CONTRACTS).json()["count"] == 0


def test_staff_quote_and_buy_for_a_chosen_customer(fleet, frozen, staff_api, customer_api, customer, outsider):
    body = {"tier": "standard", "capacity_kw": "50", "duration_hours": "3", "customer": customer.pk}
    quote = staff_api.post(QUOTES, body, format="json")
    assert quote.status_code == 201, quote.json()
    assert Quote.objects.get(pk=quote.json()["id"]).customer == customer

    bought = staff_api.post(CONTRACTS, {"quote": quote.json()["id"], "customer": customer.pk}, format="json")

    assert bought.status_code == 201, bought.json()
    contract = Contract.objects.get(pk=bought.json()["id"])
    assert contract.customer == customer
    assert customer_api.get(f"{CONTRACTS}{contract.pk}/").status_code == 200


def test_only_staff_may_name_a_customer_and_only_a_real_one(fleet, frozen, staff_api, customer_api, outsider):
    body = {"tier": "standard", "capacity_kw": "50", "duration_hours": "3"}
    assert customer_api.post(QUOTES, {**body, "customer": outsider.pk}, format="json").status_code == 403
    unknown = staff_api.post(QUOTES, {**body, "customer": 999999}, format="json")
    assert unknown.status_code == 400 and "customer" in unknown.json()
    for bad in ("x", "²", True, 0, 2**63, [1]):  # "²" is a digit to str.isdigit(), not to int()
        refused = staff_api.post(QUOTES, {**body, "customer": bad}, format="json")
        assert refused.status_code == 400 and "customer" in refused.json(), bad
    assert not Quote.objects.exists()


def test_buying_a_quote_through_the_api_costs_a_fixed_number_of_queries(
    fleet, frozen, customer_api, settings, django_assert_num_queries
):
    """The hot path's purchase (bench/api_load.py), pinned so that a query cannot creep back: the quote, then
    admission's BEGIN (a savepoint here), contract + placements + history row (one statement on PostgreSQL: 12 -> 11
    -> 10 as the placements, then the history row joined the contract's INSERT; three elsewhere), the customer's
    lock, its contracts and the fleet's SLA capacity (its cap), the plan's sites locked with their limits, the peaks
    on them, COMMIT.
    Plus the token: inside the test's transaction nothing is kept per process (core.db.LocalReadCache keeps rows
    read outside transactions only), so the token and the fleet are read here and kept in production."""
    from django.db import connection

    settings.API_READ_CACHE_SECONDS = 60
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT": 50.0}  # the deployed default: a cap binds
    body = {"tier": "standard", "capacity_kw": "5", "duration_hours": "1"}
    quote = customer_api.post(QUOTES, body, format="json").json()["id"]

    with django_assert_num_queries(10 if connection.vendor == "postgresql" else 12):
        response = customer_api.post(CONTRACTS, {"quote": quote}, format="json")

    assert response.status_code == 201
    assert Contract.objects.get(pk=response.json()["id"]).quote_id == quote


DECIMALS = [
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "0.005",
    "0.0049999",
    "-0.005",
    "2.675",
    "1.0005",
    "123.4565",
    "9999.995",
    "99999999.995",
    "1E+3",
    "1E-9",
    "-1.2345E-7",
    "12345678901.2345",
    "3.14159265358979323846264338327950288",
    "0.1250",
    "5E+20",
    "Infinity",
    "-Infinity",
    "NaN",
    "sNaN",
]


@pytest.mark.parametrize(("max_digits", "places"), [(None, None), (None, 0), (5, 2), (6, 4), (12, 3), (20, 3), (16, 2)])
@pytest.mark.parametrize("rounding", [None, "ROUND_HALF_UP", "ROUND_DOWN"])
@pytest.mark.parametrize("coerce", [True, False])
def test_an_output_decimal_answers_what_drfs_decimal_field_answers(max_digits, places, rounding, coerce):
    """OutputDecimalField keeps the exponent DRF's DecimalField works out per value: same string or Decimal
    (digits and exponent), or the same error, for every value, precision, rounding and coercion."""
    import decimal

    kwargs = {"max_digits": max_digits, "decimal_places": places, "rounding": rounding, "coerce_to_string": coerce}
    ours, drfs = OutputDecimalField(read_only=True, **kwargs), serializers.DecimalField(read_only=True, **kwargs)
    for text in DECIMALS:
        for value in (Decimal(text), text, float(text) if "NaN" not in text else text):
            answers = []
            for field in (ours, drfs):
                try:
                    answer = field.to_representation(value)
                    answers.append((type(answer), str(answer)))
                except (decimal.DecimalException, ValueError, TypeError) as error:
                    answers.append((type(error), None))
            assert answers[0] == answers[1], (text, value)


def test_an_output_decimal_works_its_exponent_out_once(monkeypatch):
    """Every value DRF's DecimalField answers builds Decimal(".1") ** places again; an output field builds it once,
    when the field is made (so the quote's and the contract's answers, ~20 decimals each, do not)."""
    import decimal
    import types

    from rest_framework import fields as drf_fields

    field = OutputDecimalField(max_digits=12, decimal_places=3, read_only=True)
    built = []

    class Counting(decimal.Decimal):  # what DRF's fields module builds its Decimals with, each one noted
        def __new__(cls, *args, **kwargs):
            built.append(args)
            return decimal.Decimal(*args, **kwargs)

    monkeypatch.setattr(drf_fields, "decimal", types.SimpleNamespace(**{**vars(decimal), "Decimal": Counting}))
    assert [field.to_representation(Decimal(v)) for v in ("1.23456", "7", "-0.0005")] == ["1.235", "7.000", "-0.000"]
    assert (".1",) not in built


def test_the_output_serializers_answer_exactly_what_drfs_serializer_would(fleet, customer_api, monkeypatch):
    """SharedFieldsMixin.to_representation reads attributes its own way (the hot path's responses); the answers of
    quotes and contracts, with a failover (moved_from), a cancellation (its fee), credits, notices and nulls, are
    the same as DRF's Serializer.to_representation gives."""
    with time_machine.travel(T0, tick=False):
        body = {"tier": "standard", "capacity_kw": "50", "duration_hours": "2"}
        quote_id = customer_api.post(QUOTES, body, format="json").json()["id"]
        bought = customer_api.post(CONTRACTS, {"quote": quote_id}, format="json").json()["id"]
        failed_over = buy(customer_api, tier="standard", capacity_kw="100", duration_hours="48").json()["id"]
        cancelled = buy(customer_api, tier="premium", capacity_kw="10").json()["id"]
        customer_api.post(reverse("contract-cancel", args=[cancelled]), {"reason": "ended"}, format="json")
    record_deliveries(rows=[DeliveryRow(failed_over, T0, 60, Decimal("100"), Decimal("50"))])
    with time_machine.travel(T0 + H, tick=False):
        fleet.oslo.status = SiteStatus.MAINTENANCE
        fleet.oslo.save()
        fail_over_site(site=fleet.oslo, reason="chiller swap")
    with time_machine.travel(T0 + 40 * 24 * H, tick=False):
        issue_service_credits(month=T0.date())
    paths = [reverse("quote-list"), reverse("quote-detail", args=[quote_id]), CONTRACTS]
    paths += [reverse("contract-detail", args=[pk]) for pk in (bought, failed_over, cancelled)]

    with time_machine.travel(T0 + 41 * 24 * H, tick=False):
        ours = [customer_api.get(path).json() for path in paths]
        monkeypatch.setattr(SharedFieldsMixin, "to_representation", serializers.Serializer.to_representation)
        monkeypatch.setattr(OutputDecimalField, "quantize", serializers.DecimalField.quantize)
        drfs = [customer_api.get(path).json() for path in paths]

    assert ours == drfs
    details = {contract["id"]: contract for contract in ours[2]["results"]}
    assert [p["moved_from"] for p in details[failed_over]["placements"]] == [None, "oslo"]
    assert details[failed_over]["service_credits"] and details[failed_over]["preemption_notices"] is not None
    assert details[cancelled]["cancellation_fee_usd"] is not None and details[bought]["cancellation_fee_usd"] is None
    assert ours[1]["breakdown"]["tier_multiplier"] and ours[1]["terms"]["cancellation_policy"]
