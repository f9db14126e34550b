"""A small hand-made fleet for SLA tests: three online sites with round SLA limits, and the four seeded tiers.

    oslo    europe    energy x 0.5  limit  800 kW (80 GPU x 10 kW; 1,000 kW of power, 967 kW of IT at design PUE)
    dublin  europe    energy x 0.9  limit  500 kW (50 GPU, 2,000 kW of power)
    texas   americas  energy x 0.8  limit  300 kW (30 GPU, 3,000 kW of power)

All three are immersion-cooled and so are their GPU nodes (tanks, PUE 1.034 on the 28.9 degC design day), so their
hardware binds.

Oslo also has miners, which never count toward SLA capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
import time_machine

from sites.choices import CoolingType, MarketRegion
from sites.models import Site
from sla.models import Tier
from sla.services import seed_tiers
from tests.factories import T0, HardwareModelFactory, SiteFactory, SiteInventoryFactory


@dataclass
class Fleet:
    oslo: Site
    dublin: Site
    texas: Site
    premium: Tier
    standard: Tier
    flexible: Tier
    spot: Tier


def build_fleet() -> Fleet:
    gpu = HardwareModelFactory(
        inference=True,
        code="gpu_node",
        power_kw_per_unit=Decimal("10"),
        tokens_per_s=Decimal("12000"),
        cooling_type=CoolingType.IMMERSION,
    )
    miner = HardwareModelFactory(code="miner_air")
    oslo = SiteFactory(
        code="oslo", name="Oslo", power_capacity_kw=Decimal("1000"), energy_cost_multiplier=Decimal("0.5")
    )
    dublin = SiteFactory(
        code="dublin", name="Dublin", power_capacity_kw=Decimal("2000"), energy_cost_multiplier=Decimal("0.9")
    )
    texas = SiteFactory(
        code="texas",
        name="Texas",
        market_region=MarketRegion.AMERICAS,
        power_capacity_kw=Decimal("3000"),
        energy_cost_multiplier=Decimal("0.8"),
    )
    SiteInventoryFactory(site=oslo, hardware_model=gpu, units_installed=80)
    SiteInventoryFactory(site=oslo, hardware_model=miner, units_installed=100)
    SiteInventoryFactory(site=dublin, hardware_model=gpu, units_installed=50)
    SiteInventoryFactory(site=texas, hardware_model=gpu, units_installed=30)
    seed_tiers()
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    return Fleet(
        oslo=oslo,
        dublin=dublin,
        texas=texas,
        premium=tiers["premium"],
        standard=tiers["standard"],
        flexible=tiers["flexible"],
        spot=tiers["spot"],
    )


@pytest.fixture
def fleet(db) -> Fleet:
    return build_fleet()


@pytest.fixture
def frozen():
    """Now is T0 (2026-06-01 00:00 UTC), and stays there."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller
