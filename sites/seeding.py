"""Idempotent seeding of reference data (the services behind `manage.py seed_sites`)."""

from __future__ import annotations

from collections import Counter
from typing import TypeVar

from django.db import models, transaction

from .catalogue import (
    HARDWARE,
    INVENTORY,
    INVENTORY_COLUMNS,
    RETIRED_HARDWARE,
    SITES,
    hardware_defaults,
    site_defaults,
)
from .markets.seeding import seed_price_nodes
from .models import HardwareModel, Site, SiteInventory

_Row = TypeVar("_Row", bound=models.Model)


def sync_row(model: type[_Row], *, lookup: dict, values: dict) -> tuple[_Row, str]:
    """Create the row, or bring it to `values`; returns (row, "created" | "updated" | "unchanged").

    Unlike update_or_create this writes nothing when every value already matches, so a second seeding run
    leaves timestamps and history untouched and can say that nothing changed.
    """
    rows = model._default_manager
    row = rows.filter(**lookup).first()
    if row is None:
        return rows.create(**lookup, **values), "created"
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    if not changed:
        return row, "unchanged"
    for name in changed:
        setattr(row, name, values[name])
    row.save()
    return row, "updated"


@transaction.atomic
def seed_physical_world() -> Counter:
    """Ten sites, the hardware catalogue and the fleet inventory; returns counts per (model, outcome).

    Running units are a decision of the optimizer and are left alone; available units are reset to
    installed only when a row is created. Units of retired hardware (`RETIRED_HARDWARE`, no public figure) stay
    installed but none is available, so nothing plans or sells on them.
    """
    outcomes: Counter = Counter()
    hardware: dict[str, HardwareModel] = {}
    sites: dict[str, Site] = {}
    for hardware_seed in HARDWARE:
        row, outcome = sync_row(
            HardwareModel, lookup={"code": hardware_seed.code}, values=hardware_defaults(hardware_seed)
        )
        hardware[hardware_seed.code] = row
        outcomes["hardware models", outcome] += 1
    for seed in SITES:
        site, outcome = sync_row(Site, lookup={"code": seed.code}, values=site_defaults(seed))
        sites[seed.code] = site
        outcomes["sites", outcome] += 1
        for code, units in zip(INVENTORY_COLUMNS, INVENTORY[seed.code], strict=True):
            if units == 0:
                continue
            inventory = SiteInventory.objects.filter(site=site, hardware_model=hardware[code]).first()
            if inventory is None:
                SiteInventory.objects.create(
                    site=site, hardware_model=hardware[code], units_installed=units, units_available=units
                )
                outcomes["inventories", "created"] += 1
            elif inventory.units_installed != units:
                inventory.units_installed = units
                inventory.units_available = min(inventory.units_available, units)
                inventory.units_running = min(inventory.units_running, inventory.units_available)
                inventory.save()
                outcomes["inventories", "updated"] += 1
            else:
                outcomes["inventories", "unchanged"] += 1
    retired = SiteInventory.objects.filter(hardware_model__code__in=RETIRED_HARDWARE).exclude(units_available=0)
    outcomes["retired inventories", "updated"] += retired.update(units_available=0, units_running=0)
    outcomes.update(seed_price_nodes(sites))
    return outcomes
