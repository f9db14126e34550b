"""A placement never holds more than its contract or its site allows, whoever writes it: staff in the admin,
failover, re-placement, and (last guard) the database.

The outside probe added, through /admin/sla/placement/add/, 99,999 kW to a 1 kW contract on a site whose limit is
1,260 kW; it saved, and failover then re-placed the whole booking across four sites.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.urls import reverse

from sites.choices import SiteStatus
from sla.capacity import contract_limit_kw
from sla.models import Placement
from sla.services import CapacityRequest, create_contract, fail_over_site, replace_lost_capacity
from tests.factories import T0

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)
ADD = reverse("admin:sla_placement_add")


def admit(customer, tier, kw, *, start=T0, hours=4):
    return create_contract(
        customer=customer,
        request=CapacityRequest(tier=tier, capacity_kw=Decimal(kw), starts_at=start, ends_at=start + hours * H),
    )


def form(contract, site, kw, *, start=T0, end=None) -> dict[str, str]:
    end = end or contract.ends_at
    return {
        "contract": str(contract.pk),
        "site": str(site.pk),
        "capacity_kw": str(kw),
        "valid_from_0": f"{start:%Y-%m-%d}",
        "valid_from_1": f"{start:%H:%M:%S}",
        "valid_to_0": f"{end:%Y-%m-%d}",
        "valid_to_1": f"{end:%H:%M:%S}",
        "kind": "admission",
        "moved_from": "",
        "reason": "typed in by staff",
    }


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def test_the_admin_refuses_a_placement_larger_than_its_contract(staff, fleet, frozen, customer):
    contract = admit(customer, fleet.standard, "1")

    response = staff.post(ADD, form(contract, fleet.dublin, "99999"))

    assert response.status_code == 200
    assert "more than contract" in response.context["adminform"].form.errors["capacity_kw"][0]
    assert Placement.objects.filter(contract=contract).count() == 1


def test_the_admin_refuses_a_placement_beyond_the_site_limit(staff, fleet, frozen, customer, outsider):
    admit(outsider, fleet.standard, "800")  # Oslo full
    small = admit(customer, fleet.standard, "100")  # placed elsewhere
    before = Placement.objects.count()

    response = staff.post(ADD, form(small, fleet.oslo, "50", start=T0 + H, end=T0 + 2 * H))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["capacity_kw"]
    assert "oslo would exceed its SLA limit of 800.000 kW" in errors[0]
    assert Placement.objects.count() == before


def test_the_admin_refuses_concurrent_placements_summing_above_the_contract(staff, fleet, frozen, customer):
    contract = admit(customer, fleet.standard, "100")  # 100 kW at Oslo for the whole window

    response = staff.post(ADD, form(contract, fleet.dublin, "40", start=T0 + H, end=T0 + 2 * H))

    assert response.status_code == 200
    assert "its other placements leave 0.000 kW" in response.context["adminform"].form.errors["capacity_kw"][0]


def test_the_admin_saves_a_placement_within_every_limit(staff, fleet, frozen, customer):
    contract = admit(customer, fleet.standard, "100")
    Placement.objects.filter(contract=contract).update(valid_to=T0 + 2 * H)  # short from T0 + 2 h on

    response = staff.post(ADD, form(contract, fleet.dublin, "100", start=T0 + 2 * H))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Placement.objects.filter(contract=contract, site=fleet.dublin, capacity_kw=Decimal("100")).exists()


def test_the_admin_refuses_a_placement_outside_the_contract_window(staff, fleet, frozen, customer):
    contract = admit(customer, fleet.standard, "100", hours=2)
    Placement.objects.filter(contract=contract).delete()

    response = staff.post(ADD, form(contract, fleet.dublin, "100", start=T0, end=T0 + 5 * H))

    assert response.status_code == 200
    assert "inside its contract's window" in response.context["adminform"].form.errors["valid_from"][0]


def test_the_database_refuses_a_placement_above_its_contract(fleet, frozen, customer):
    contract = admit(customer, fleet.standard, "1")

    with pytest.raises(IntegrityError, match="more than the capacity of its contract"), transaction.atomic():
        Placement.objects.create(contract=contract, site=fleet.dublin, capacity_kw=Decimal("99999"), valid_from=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Placement.objects.filter(contract=contract).update(capacity_kw=Decimal("2"))


def test_failover_never_places_more_than_the_contract_holds(fleet, frozen, customer):
    """Two concurrent 100 kW placements of a 100 kW contract (each within it, together twice it): losing one of
    the sites re-places nothing, since the other already holds the whole contract."""
    contract = admit(customer, fleet.standard, "100")  # 100 kW at Oslo
    Placement.objects.create(contract=contract, site=fleet.dublin, capacity_kw=Decimal("100"), valid_from=T0,
                             valid_to=contract.ends_at)  # fmt: skip
    with time_machine.travel(T0 + H, tick=False):
        fleet.dublin.status = SiteStatus.MAINTENANCE
        fleet.dublin.save()
        report = fail_over_site(site=fleet.dublin)

    assert report.moved == [] and report.downtimes == []
    held = Placement.objects.filter(contract=contract).current(T0 + 2 * H)
    assert sum(p.capacity_kw for p in held) == Decimal("100")


def test_failover_of_an_n_minus_1_contract_keeps_its_redundancy(fleet, frozen, customer):
    admit(customer, fleet.premium, "200")  # 200 at Oslo and 200 at Texas
    with time_machine.travel(T0 + H, tick=False):
        fleet.oslo.status = SiteStatus.MAINTENANCE
        fleet.oslo.save()
        report = fail_over_site(site=fleet.oslo)

    assert [(site, kw) for _, site, kw in report.moved] == [("dublin", Decimal("200"))]
    assert contract_limit_kw(Decimal("200"), n_minus_1=True, min_sites=2) == Decimal("400")


def test_re_placement_never_places_more_than_the_contract_holds(fleet, frozen, customer):
    """Short now, but holding its whole capacity later: re-placing the gap until its end would double it then."""
    contract = admit(customer, fleet.standard, "100")
    Placement.objects.filter(contract=contract).update(valid_from=T0 + 2 * H)
    contract.status = "active"
    contract.save()

    report = replace_lost_capacity(now=T0 + H)

    for moment in (T0 + H, T0 + 3 * H):
        held = Placement.objects.filter(contract=contract).current(moment)
        assert sum(p.capacity_kw for p in held) <= Decimal("100")
    assert report.short == [(contract.pk, Decimal("100"))]
