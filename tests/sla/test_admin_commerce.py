"""The commerce records in the admin: staff can list, search and read them, never add, edit or delete them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from sites.choices import SiteStatus
from sla.models import ContractDelivery, Downtime, PreemptionNotice, Quote, ServiceCredit
from sla.services import (
    CapacityRequest,
    DeliveryRow,
    create_contract,
    create_quote,
    fail_over_site,
    issue_service_credits,
    record_deliveries,
)
from tests.factories import T0

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)
MODELS = ("quote", "preemptionnotice", "downtime", "contractdelivery", "servicecredit")


@pytest.fixture(autouse=True)
def _static_without_manifest(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def records(fleet, customer, outsider):
    """One of each record: a quote, a Spot displaced by failover, downtime, deliveries and a credit."""
    with time_machine.travel(T0, tick=False):
        ask = CapacityRequest(tier=fleet.premium, capacity_kw=Decimal("300"), starts_at=T0, ends_at=T0 + 24 * H)
        create_quote(customer=customer, request=ask)
        premium = create_contract(customer=customer, request=ask)
        spot = CapacityRequest(tier=fleet.spot, capacity_kw=Decimal("400"), starts_at=T0, ends_at=T0 + 24 * H)
        create_contract(customer=outsider, request=spot)
    with time_machine.travel(T0 + H, tick=False):
        fleet.oslo.status = SiteStatus.MAINTENANCE
        fleet.oslo.save()
        fail_over_site(site=fleet.oslo, reason="chiller swap")
    record_deliveries(rows=[DeliveryRow(premium.pk, T0 + n * H, 60, Decimal("300"), Decimal("150")) for n in range(3)])
    with time_machine.travel(T0 + 40 * 24 * H, tick=False):
        issue_service_credits(month=T0.date())
    for model in (Quote, PreemptionNotice, Downtime, ContractDelivery, ServiceCredit):
        assert model.objects.exists(), model
    return premium


@pytest.mark.parametrize("model", MODELS)
def test_changelist_search_and_detail_answer_for_staff(admin_client, records, model, django_assert_max_num_queries):
    url = reverse(f"admin:sla_{model}_changelist")

    with django_assert_max_num_queries(12):
        assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "Alice"}).status_code == 200
    pk = admin_client.get(url).context["cl"].result_list[0].pk
    assert admin_client.get(reverse(f"admin:sla_{model}_change", args=[pk])).status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_records_cannot_be_added_or_deleted(admin_client, records, model):
    assert admin_client.get(reverse(f"admin:sla_{model}_add")).status_code == 403
    pk = admin_client.get(reverse(f"admin:sla_{model}_changelist")).context["cl"].result_list[0].pk
    assert admin_client.post(reverse(f"admin:sla_{model}_delete", args=[pk]), {"post": "yes"}).status_code == 403


def test_credit_ledger_shows_uptime_and_amount(admin_client, records):
    [credit] = admin_client.get(reverse("admin:sla_servicecredit_changelist")).context["cl"].result_list

    assert (credit.uptime_pct, credit.credit_pct) == (Decimal("6.250"), Decimal("100.00"))  # 3 h at half of 24 h


def test_delivery_changelist_shows_the_served_share(admin_client, records):
    rows = admin_client.get(reverse("admin:sla_contractdelivery_changelist")).context["cl"].result_list

    assert {row.served_pct for row in rows} == {Decimal("50")}


def test_downtime_search_by_site(admin_client, records):
    response = admin_client.get(reverse("admin:sla_downtime_changelist"), {"q": "oslo"})

    assert response.context["cl"].result_count == Downtime.objects.filter(site__code="oslo").count() > 0
