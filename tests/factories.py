"""factory_boy factories for every model; sensible real-unit defaults."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from optimizer.models import Allocation, OptimizationRun
from sites.choices import ClimateZone, CoolingType, DataSource, HardwareKind, MarketRegion
from sites.models import EnergyPrice, HardwareModel, MarketPrice, Site, SiteInventory, WeatherReading
from sla.choices import TierCode
from sla.models import Contract, Customer, Placement, ServiceCreditRule, Tier

T0 = datetime(2026, 6, 1, tzinfo=UTC)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests-1")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    code = factory.Sequence(lambda n: f"site_{n}")
    name = factory.Sequence(lambda n: f"Site {n}")
    country = "NO"
    latitude = Decimal("59.913900")
    longitude = Decimal("10.752200")
    time_zone = "Europe/Oslo"
    climate_zone = ClimateZone.CONTINENTAL
    cooling_type = CoolingType.IMMERSION
    market_region = MarketRegion.EUROPE
    power_capacity_kw = Decimal("10000")
    renewable_share = Decimal("0.950")
    grid_region = "NO1"
    grid_carbon_kg_per_mwh = Decimal("30")
    energy_cost_multiplier = Decimal("0.5")


class HardwareModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HardwareModel

    code = factory.Sequence(lambda n: f"miner_{n}")
    name = factory.Sequence(lambda n: f"Miner {n}")
    kind = HardwareKind.MINER
    cooling_type = CoolingType.AIR
    power_kw_per_unit = Decimal("3.500")
    hashrate_th_per_s = Decimal("200")
    tokens_per_s = None

    class Params:
        inference = factory.Trait(
            code=factory.Sequence(lambda n: f"gpu_{n}"),
            name=factory.Sequence(lambda n: f"GPU node {n}"),
            kind=HardwareKind.INFERENCE,
            power_kw_per_unit=Decimal("10.200"),
            hashrate_th_per_s=None,
            tokens_per_s=Decimal("12000"),
        )


class SiteInventoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteInventory

    site = factory.SubFactory(SiteFactory)
    hardware_model = factory.SubFactory(HardwareModelFactory)
    units_installed = 100
    units_available = factory.LazyAttribute(lambda o: o.units_installed)


class WeatherReadingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WeatherReading

    site = factory.SubFactory(SiteFactory)
    observed_at = factory.Sequence(lambda n: T0 + timedelta(hours=n))
    temperature_c = Decimal("15.00")
    source = DataSource.SIMULATOR


class EnergyPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnergyPrice

    site = factory.SubFactory(SiteFactory)
    grid_region = ""
    interval_start = factory.Sequence(lambda n: T0 + timedelta(minutes=5 * n))
    price_usd_per_mwh = Decimal("45.00")
    source = DataSource.SIMULATOR


class MarketPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MarketPrice

    interval_start = factory.Sequence(lambda n: T0 + timedelta(minutes=5 * n))
    hashprice_usd_per_ph_day = Decimal("50.0000")
    inference_price_usd_per_mtok = Decimal("2.0000")
    source = DataSource.SIMULATOR


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier
        django_get_or_create = ("code",)

    code = TierCode.STANDARD
    name = factory.LazyAttribute(lambda t: t.code.title())
    uptime_target_pct = Decimal("95.000")
    price_multiplier = Decimal("2.00")
    priority = factory.LazyAttribute(lambda t: [c.value for c in TierCode].index(t.code) + 1)
    is_preemptible = False
    min_sites = 1
    requires_n_minus_1 = False


class ServiceCreditRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceCreditRule

    tier = factory.SubFactory(TierFactory)
    uptime_below_pct = Decimal("95.000")
    credit_pct = Decimal("10.00")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Customer {n}")


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contract

    customer = factory.SubFactory(CustomerFactory)
    tier = factory.SubFactory(TierFactory)
    capacity_kw = Decimal("500.000")
    starts_at = T0
    ends_at = factory.LazyAttribute(lambda c: c.starts_at + timedelta(hours=24))
    quoted_price_usd_per_kwh = Decimal("0.120000")
    quoted_total_usd = Decimal("1440.00")


class PlacementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Placement

    contract = factory.SubFactory(ContractFactory)
    site = factory.SubFactory(SiteFactory)
    capacity_kw = Decimal("500.000")
    valid_from = T0


class OptimizationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OptimizationRun

    trigger = "manual"
    strategy = "lp"
    status = "succeeded"
    started_at = T0
    finished_at = factory.LazyAttribute(lambda r: r.started_at + timedelta(seconds=1))
    revenue_usd_per_h = Decimal("1000.00")
    energy_cost_usd_per_h = Decimal("400.00")


class AllocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Allocation

    run = factory.SubFactory(OptimizationRunFactory)
    site = factory.SubFactory(SiteFactory)
    hardware_model = factory.SubFactory(HardwareModelFactory)
    units_running = 10
    it_power_kw = Decimal("35.000")
    facility_power_kw = Decimal("38.500")
    revenue_usd_per_h = Decimal("10.0000")
    energy_cost_usd_per_h = Decimal("2.0000")
