"""Grid fixtures: two ERCOT sites enrolled in the seeded programs, with running miners, at a frozen moment."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from grid.models import GridProgram
from grid.seeding import seed_programs
from grid.services import enroll_site
from tests.factories import T0, HardwareModelFactory, SiteFactory, SiteInventoryFactory


@pytest.fixture
def frozen():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ercot(db, frozen):
    """Two ERCOT sites with 500 kW (texas) and 350 kW (west) of miners running, enrolled in DR and ECRS."""
    seed_programs()
    miner = HardwareModelFactory(code="s19", power_kw_per_unit=Decimal("3.5"))
    sites = {}
    for code, units in (("texas", 100), ("west", 100)):
        site = SiteFactory(code=code, grid_region="ERCOT", time_zone="America/Chicago")
        SiteInventoryFactory(site=site, hardware_model=miner, units_installed=units, units_running=units)
        sites[code] = site
    dr = GridProgram.objects.get(code="ercot-dr")
    ecrs = GridProgram.objects.get(code="ercot-ecrs")
    for site in sites.values():
        for program in (dr, ecrs):
            enroll_site(
                site=site,
                program=program,
                committed_mw=Decimal("0.200"),
                starts_at=T0 - timedelta(days=1),
                ends_at=T0 + timedelta(days=60),
            )
    return {"dr": dr, "ecrs": ecrs, **sites}
