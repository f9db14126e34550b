"""Database constraints of the physical world reject bad rows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from sites.choices import HardwareKind
from sites.models import EnergyPrice, HardwareModel, Site
from tests.factories import (
    EnergyPriceFactory,
    HardwareModelFactory,
    SiteFactory,
    SiteInventoryFactory,
    WeatherReadingFactory,
)

pytestmark = pytest.mark.django_db


def _rejects(factory, **kwargs):
    with pytest.raises(IntegrityError), transaction.atomic():
        factory(**kwargs)


def test_latitude_out_of_range_is_rejected():
    _rejects(SiteFactory, latitude=Decimal("91"))


def test_renewable_share_above_one_is_rejected():
    _rejects(SiteFactory, renewable_share=Decimal("1.2"))


def test_negative_capacity_is_rejected():
    _rejects(SiteFactory, power_capacity_kw=Decimal("-1"))


def test_unknown_status_is_rejected():
    _rejects(SiteFactory, status="exploded")


def test_zero_cost_multiplier_is_rejected():
    _rejects(SiteFactory, energy_cost_multiplier=Decimal("0"))


def test_unknown_time_zone_fails_validation():
    site = SiteFactory.build(time_zone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError) as exc:
        site.full_clean(exclude=["code"])
    assert "time_zone" in exc.value.message_dict


def test_miner_without_hashrate_is_rejected():
    _rejects(HardwareModelFactory, hashrate_th_per_s=None)


def test_inference_node_with_hashrate_is_rejected():
    _rejects(HardwareModelFactory, inference=True, hashrate_th_per_s=Decimal("100"))


def test_zero_power_hardware_is_rejected():
    _rejects(HardwareModelFactory, power_kw_per_unit=Decimal("0"))


def test_inventory_available_above_installed_is_rejected():
    _rejects(SiteInventoryFactory, units_installed=10, units_available=11)


def test_inventory_running_above_available_is_rejected():
    _rejects(SiteInventoryFactory, units_installed=10, units_available=5, units_running=6)


def test_inventory_is_unique_per_site_and_hardware():
    inventory = SiteInventoryFactory()
    _rejects(SiteInventoryFactory, site=inventory.site, hardware_model=inventory.hardware_model)


def test_weather_is_unique_per_site_and_time():
    reading = WeatherReadingFactory()
    _rejects(WeatherReadingFactory, site=reading.site, observed_at=reading.observed_at)


def test_weather_temperature_is_plausible():
    _rejects(WeatherReadingFactory, temperature_c=Decimal("75"))


def test_energy_price_may_be_negative():
    price = EnergyPriceFactory(price_usd_per_mwh=Decimal("-35.50"))
    assert EnergyPrice.objects.get(pk=price.pk).price_usd_per_mwh == Decimal("-35.50")


def test_energy_price_is_unique_per_site_and_interval():
    price = EnergyPriceFactory()
    _rejects(EnergyPriceFactory, site=price.site, interval_start=price.interval_start)


def test_energy_price_is_unique_per_region_and_interval():
    price = EnergyPriceFactory(site=None, grid_region="ERCOT")
    _rejects(EnergyPriceFactory, site=None, grid_region="ERCOT", interval_start=price.interval_start)


def test_energy_price_needs_site_or_region_not_both():
    _rejects(EnergyPriceFactory, site=None, grid_region="")
    _rejects(EnergyPriceFactory, grid_region="ERCOT")


def test_site_model_methods_are_pure():
    site = Site(power_capacity_kw=Decimal("2500"), status="maintenance")
    assert site.power_capacity_mw == Decimal("2.5")
    assert site.is_available is False
    miner = HardwareModel(kind=HardwareKind.MINER, power_kw_per_unit=Decimal("3.5"), hashrate_th_per_s=Decimal("200"))
    assert miner.efficiency_j_per_th == Decimal("17.5")


def test_the_latest_temperature_is_the_newest_observation_not_a_stored_forecast():
    site = SiteFactory()
    now = datetime.now(UTC)  # the database's clock: not travelled
    WeatherReadingFactory(site=site, observed_at=now - timedelta(hours=1), temperature_c=Decimal("10.0"))
    WeatherReadingFactory(site=site, observed_at=now + timedelta(hours=3), temperature_c=Decimal("40.0"))

    observed = Site.objects.with_latest_temperature().get(pk=site.pk)
    later = Site.objects.with_latest_temperature(now + timedelta(hours=4)).get(pk=site.pk)

    assert observed.latest_temperature_c == Decimal("10.0")
    assert observed.latest_temperature_at == now - timedelta(hours=1)
    assert later.latest_temperature_c == Decimal("40.0")
