"""`manage.py seed_sites` builds the real fleet once and changes nothing the second time."""

from decimal import Decimal as D
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Sum

from sites.catalogue import FLEET_TOTALS
from sites.models import HardwareModel, Site, SiteInventory
from sla.models import ServiceCreditRule, Tier

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = StringIO()
    call_command("seed_sites", stdout=out)
    return out.getvalue()


def _counts() -> dict:
    return {
        model.__name__: model.objects.count()
        for model in (Site, HardwareModel, SiteInventory, Tier, ServiceCreditRule, get_user_model())
    }


def test_seed_creates_the_ten_sites_with_real_coordinates_and_time_zones():
    _seed()
    assert Site.objects.count() == 10
    oslo = Site.objects.get(code="site_3_norway")
    assert (str(oslo.latitude), str(oslo.longitude), oslo.time_zone) == ("59.913900", "10.752200", "Europe/Oslo")
    assert oslo.cooling_type == "immersion"
    sydney = Site.objects.get(code="site_8_australia")
    assert sydney.latitude < 0 and sydney.time_zone == "Australia/Sydney"


def test_seed_fleet_totals_are_exact():
    _seed()
    totals = dict(
        SiteInventory.objects.values_list("hardware_model__code").annotate(n=Sum("units_installed")).order_by()
    )
    assert totals == FLEET_TOTALS


def test_most_sites_have_more_hardware_than_power():
    _seed()
    oversubscribed = [s for s in Site.objects.with_power_summary() if s.installed_kw > s.power_capacity_kw]
    assert len(oversubscribed) >= 6


def test_seed_twice_changes_nothing_and_says_so():
    _seed()
    before = _counts()
    updated_at = dict(Site.objects.values_list("code", "updated_at"))
    output = _seed()
    assert _counts() == before
    assert dict(Site.objects.values_list("code", "updated_at")) == updated_at
    assert "Already seeded: nothing changed." in output


def test_seed_repairs_a_drifted_row():
    _seed()
    Site.objects.filter(code="site_5_texas").update(power_capacity_kw=1)
    output = _seed()
    assert Site.objects.get(code="site_5_texas").power_capacity_kw == 1500
    assert "1 updated" in output


def test_seed_tiers_match_the_product():
    _seed()
    tiers = {t.code: t for t in Tier.objects.all()}
    assert (tiers["premium"].uptime_target_pct, tiers["premium"].price_multiplier) == (D("99.9"), D("3.5"))
    assert (tiers["standard"].uptime_target_pct, tiers["standard"].price_multiplier) == (D("95"), D("2"))
    assert (tiers["flexible"].uptime_target_pct, tiers["flexible"].price_multiplier) == (D("90"), D("1.2"))
    assert tiers["spot"].uptime_target_pct is None and tiers["spot"].is_preemptible
    assert tiers["premium"].requires_n_minus_1 and tiers["premium"].min_sites == 2
    assert tiers["premium"].credit_pct_for(D("99.5")) == 10
    assert tiers["premium"].credit_pct_for(D("98")) == 25
    assert tiers["premium"].credit_pct_for(D("90")) == 100
    assert tiers["premium"].credit_pct_for(D("99.95")) == 0
    assert tiers["spot"].credit_pct_for(D("0")) == 0


def test_seed_users_get_credentials_from_environment(monkeypatch):
    monkeypatch.setenv("SEED_STAFF_USERNAME", "ops")
    monkeypatch.setenv("SEED_STAFF_PASSWORD", "s3cret-ops-pass")
    output = _seed()
    ops = get_user_model().objects.get(username="ops")
    assert ops.is_staff and ops.check_password("s3cret-ops-pass")
    assert "s3cret-ops-pass" not in output
    demo = get_user_model().objects.get(username="demo")
    assert demo.customer.name == "Demo Customer" and not demo.is_staff


def test_generated_password_is_printed_once_and_works():
    output = _seed()
    line = next(line for line in output.splitlines() if "Created customer user demo" in line)
    password = line.rsplit(" ", 1)[-1]
    assert get_user_model().objects.get(username="demo").check_password(password)
    assert "password" not in _seed()
