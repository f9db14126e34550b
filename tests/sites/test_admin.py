"""The sites admin, as staff use it: changelists, search, add forms, status actions, history, query cost."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sites.choices import DataSource, SiteStatus
from sites.models import HackathonPrice, Site, SourceFetch
from tests.factories import (
    T0,
    EnergyPriceFactory,
    HardwareModelFactory,
    MarketPriceFactory,
    SiteFactory,
    SiteInventoryFactory,
    UserFactory,
    WeatherReadingFactory,
)

pytestmark = pytest.mark.django_db

MODELS = (
    "site",
    "hardwaremodel",
    "siteinventory",
    "weatherreading",
    "energyprice",
    "marketprice",
    "hackathonprice",
    "sourcefetch",
)
# model -> (search term that finds exactly the one fixture row); models without text to search are left out.
SEARCHES = {
    "site": "oslo",
    "hardwaremodel": "s21",
    "siteinventory": "oslo",
    "weatherreading": "oslo",
    "energyprice": "oslo",
    "sourcefetch": "timeout",
}


def _url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:sites_{model}_{view}", args=args)


def _messages(response) -> list[str]:
    """Messages shown on the page the action redirected to."""
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def world():
    """One row of every model, plus a second site that searches must not return."""
    oslo = SiteFactory(code="oslo_1", name="Oslo", power_capacity_kw=Decimal("1000"))
    SiteFactory(code="texas_1", name="Texas", country="US", grid_region="ERCOT")
    miner = HardwareModelFactory(code="s21", name="Antminer S21", power_kw_per_unit=Decimal("3.500"))
    SiteInventoryFactory(site=oslo, hardware_model=miner, units_installed=100, units_available=80, units_running=40)
    WeatherReadingFactory(site=oslo)
    EnergyPriceFactory(site=oslo, interval_start=T0, price_usd_per_mwh=Decimal("41.50"))
    MarketPriceFactory()
    HackathonPrice.objects.create(
        interval_start=T0,
        energy_price=Decimal("0.65"),
        hash_price=Decimal("8.5"),
        token_price=Decimal("2.9"),
        source=DataSource.HACKATHON_API,
    )
    SourceFetch.objects.create(
        kind=SourceFetch.Kind.WEATHER,
        source=DataSource.OPEN_METEO,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        error="read timeout",
    )
    return oslo


@pytest.mark.parametrize("model", MODELS)
def test_changelist_answers_for_staff(admin_client, world, model):
    assert admin_client.get(_url(model)).status_code == 200


@pytest.mark.parametrize("model", SEARCHES)
def test_search_finds_only_the_matching_row(admin_client, world, model):
    response = admin_client.get(_url(model), {"q": SEARCHES[model]})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


@pytest.mark.parametrize("model", [m for m in MODELS if m != "sourcefetch"])
def test_add_form_answers_for_staff(admin_client, model):
    assert admin_client.get(_url(model, "add")).status_code == 200


def test_source_fetches_cannot_be_added_or_edited(admin_client, world):
    fetch = SourceFetch.objects.get()

    assert admin_client.get(_url("sourcefetch", "add")).status_code == 403
    response = admin_client.post(_url("sourcefetch", "change", fetch.pk), {"error": "rewritten"})
    assert response.status_code == 403
    fetch.refresh_from_db()
    assert fetch.error == "read timeout"


def test_site_changelist_shows_power_utilization_and_latest_price(admin_client, world):
    # 100 units installed and 40 running at 3.5 kW each on a 1,000 kW site: 350 kW, 140 kW, 14 %.
    EnergyPriceFactory(site=world, interval_start=T0 - timedelta(hours=1), price_usd_per_mwh=Decimal("99.00"))

    content = admin_client.get(_url("site"), {"q": "oslo"}).content.decode()

    assert "350.0" in content
    assert "140.0" in content
    assert "14.0 %" in content
    assert "41.50" in content  # the newest price, not the older 99.00
    assert "99.00" not in content


def test_site_changelist_sorts_by_utilization(admin_client, world):
    response = admin_client.get(_url("site"), {"o": "8"})  # column 8 = utilization (after the checkbox), ascending

    assert [site.code for site in response.context["cl"].result_list] == ["texas_1", "oslo_1"]


def test_site_changelist_cost_does_not_grow_with_sites(admin_client, django_assert_max_num_queries):
    def changelist_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(_url("site")).status_code == 200
        return len(queries)

    miner = HardwareModelFactory()
    SiteInventoryFactory(hardware_model=miner)
    one_site = changelist_queries()
    for site in SiteFactory.create_batch(7):
        SiteInventoryFactory(site=site, hardware_model=miner)
        EnergyPriceFactory(site=site)

    with django_assert_max_num_queries(one_site):
        changelist_queries()


def _site_form(**overrides) -> dict:
    data = {
        "code": "reykjavik_1",
        "name": "Reykjavik",
        "country": "IS",
        "status": SiteStatus.OFFLINE,
        "latitude": "64.146600",
        "longitude": "-21.942600",
        "time_zone": "Atlantic/Reykjavik",
        "climate_zone": "subarctic",
        "market_region": "europe",
        "power_capacity_kw": "5000",
        "cooling_type": "free_air",
        "renewable_share": "1.000",
        "grid_region": "IS",
        "grid_carbon_kg_per_mwh": "10",
        "energy_cost_multiplier": "0.800",
        "inventories-TOTAL_FORMS": "0",
        "inventories-INITIAL_FORMS": "0",
        "inventories-MIN_NUM_FORMS": "0",
        "inventories-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_adding_a_site_with_its_inventory_creates_both(admin_client):
    miner = HardwareModelFactory()
    data = _site_form(
        **{
            "inventories-TOTAL_FORMS": "1",
            "inventories-0-hardware_model": str(miner.pk),
            "inventories-0-units_installed": "20",
            "inventories-0-units_available": "18",
        }
    )

    response = admin_client.post(_url("site", "add"), data)

    assert response.status_code == 302
    site = Site.objects.get(code="reykjavik_1")
    assert site.status == SiteStatus.OFFLINE
    assert site.inventories.get().units_available == 18


@pytest.mark.parametrize(
    ("field", "value"),
    [("time_zone", "Mars/Olympus_Mons"), ("latitude", "95"), ("renewable_share", "1.5")],
)
def test_adding_an_invalid_site_shows_the_error_and_writes_nothing(admin_client, field, value):
    response = admin_client.post(_url("site", "add"), _site_form(**{field: value}))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Site.objects.exists()


def test_inventory_available_above_installed_is_refused_in_the_inline(admin_client, world):
    inventory = world.inventories.get()
    data = {
        "code": world.code,
        **{k: v for k, v in _site_form().items() if k not in ("code", "status")},
        "inventories-TOTAL_FORMS": "1",
        "inventories-INITIAL_FORMS": "1",
        "inventories-0-id": str(inventory.pk),
        "inventories-0-site": str(world.pk),
        "inventories-0-hardware_model": str(inventory.hardware_model_id),
        "inventories-0-units_installed": "10",
        "inventories-0-units_available": "50",
    }

    response = admin_client.post(_url("site", "change", world.pk), data)

    assert response.status_code == 200
    inventory.refresh_from_db()
    assert inventory.units_installed == 100


def test_lowering_availability_below_running_units_is_refused(admin_client, world):
    inventory = world.inventories.get()  # 40 running
    data = {"site": world.pk, "hardware_model": inventory.hardware_model_id, "units_installed": 100}

    response = admin_client.post(_url("siteinventory", "change", inventory.pk), {**data, "units_available": 30})

    assert response.status_code == 200
    assert "units_available" in response.context["adminform"].form.errors
    inventory.refresh_from_db()
    assert inventory.units_available == 80


def test_site_change_page_shows_inventory_and_status_read_only(admin_client, world):
    response = admin_client.get(_url("site", "change", world.pk))

    assert response.status_code == 200
    assert "status" not in response.context["adminform"].form.fields
    assert "Antminer S21" in response.content.decode()


def test_site_status_cannot_be_edited_on_the_change_form(admin_client, world):
    data = {**_site_form(), "code": world.code, "status": SiteStatus.OFFLINE}

    response = admin_client.post(_url("site", "change", world.pk), data)

    assert response.status_code == 302
    world.refresh_from_db()
    assert world.status == SiteStatus.ONLINE
    assert world.name == "Reykjavik"  # the rest of the form was saved


def _act(client, action: str, *sites: Site):
    return client.post(_url("site"), {"action": action, "_selected_action": [s.pk for s in sites]}, follow=True)


def test_maintenance_action_then_back_online(staff_client, world):
    response = _act(staff_client, "put_into_maintenance", world)

    world.refresh_from_db()
    assert world.status == SiteStatus.MAINTENANCE
    assert world.status_changed_at is not None
    assert _messages(response)[-1] == "1 site put into maintenance."  # after the SLA failover report

    response = _act(staff_client, "bring_back_online", world)

    world.refresh_from_db()
    assert world.status == SiteStatus.ONLINE
    assert _messages(response) == ["1 site brought back online."]


def test_maintenance_action_counts_sites_already_in_maintenance(staff_client, world):
    texas = Site.objects.get(code="texas_1")
    _act(staff_client, "put_into_maintenance", texas)

    response = _act(staff_client, "put_into_maintenance", world, texas)

    assert _messages(response)[-2:] == ["1 site put into maintenance.", "1 site was already in maintenance."]
    assert set(Site.objects.values_list("status", flat=True)) == {SiteStatus.MAINTENANCE}


def test_site_history_shows_who_put_it_into_maintenance(staff_client, world):
    _act(staff_client, "put_into_maintenance", world)

    record = world.history.first()
    assert record.history_user.username == "staff"
    assert record.history_change_reason == "Put into maintenance from the admin"
    content = staff_client.get(_url("site", "history", world.pk)).content.decode()
    assert "staff" in content
    assert "Put into maintenance from the admin" in content


def test_reverting_a_site_to_an_old_version_is_refused(staff_client, world):
    old = world.history.earliest()
    _act(staff_client, "put_into_maintenance", world)
    url = reverse("admin:sites_site_simple_history", args=(world.pk, old.history_id))

    assert staff_client.get(url).status_code == 200
    assert staff_client.post(url, _site_form(code=world.code)).status_code == 403
    world.refresh_from_db()
    assert world.status == SiteStatus.MAINTENANCE


@pytest.mark.parametrize("model", ["site", "energyprice"])
def test_non_staff_user_is_sent_to_login(client, world, model):
    client.force_login(UserFactory(username="carol"))

    response = client.get(_url(model))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
