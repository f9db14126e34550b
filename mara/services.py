"""Writes of the served hackathon API, and its accounting of an allocation.

The accounting is the event's, per 5-minute interval, reused from ``optimizer.engine.mara.score_allocation``:
a type's revenue is ``units x hashrate x hash_price`` (miners) or ``units x tokens x token_price`` (inference), the
power cost is ``total watts x energy_price``, all at the newest served price (``mara.prices``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from django.db import transaction

from optimizer.engine.mara import API_FIELDS, HACKATHON_INVENTORY, MachinesReport, PriceRow, score_allocation
from sites.models import MARKET_API_SITE_POWER_W, MarketApiAllocation, MarketApiSite

from .prices import ServedPrice

COUNT_FIELDS = MarketApiAllocation.COUNT_FIELDS
NAME_MAX_LENGTH = cast(int, MarketApiSite._meta.get_field("name").max_length)
# Upper bound of one count: no site (power_w is a 32-bit integer of watts) can run a million 3.5 kW units, and
# the bound keeps absurd numbers out of the arithmetic before the power check refuses them.
MAX_UNITS = 1_000_000


def _watts_per_unit() -> dict[str, int]:
    """PUT /machines field -> watts per unit, from the event's inventory."""
    by_code = {**HACKATHON_INVENTORY["miners"], **HACKATHON_INVENTORY["inference"]}
    watts = {API_FIELDS[code]: int(spec["power"]) for code, spec in by_code.items()}
    if set(watts) != set(COUNT_FIELDS):  # the model and the inventory must name the same five types
        raise RuntimeError(f"inventory types {sorted(watts)} do not match allocation fields {COUNT_FIELDS}")
    return watts


WATTS_PER_UNIT = _watts_per_unit()


class MarketApiError(ValueError):
    """A request the served hackathon API refuses (the message is shown to the caller)."""


class AllocationOverPower(MarketApiError):
    """The allocation draws more watts than the site has."""

    def __init__(self, *, required_w: int, available_w: int) -> None:
        self.required_w = required_w
        self.available_w = available_w
        super().__init__(
            f"The allocation needs {required_w:,} W but the site has {available_w:,} W; "
            f"remove {required_w - available_w:,} W of machines."
        )


def allocation_power_w(counts: Mapping[str, int]) -> int:
    """Total watts of an allocation (API field -> units)."""
    return sum(WATTS_PER_UNIT[name] * units for name, units in counts.items())


@transaction.atomic
def create_market_api_site(*, name: str, power_w: int = MARKET_API_SITE_POWER_W) -> MarketApiSite:
    """A new tenant with a fresh API key and an empty allocation (so ``GET /machines`` answers from the start)."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise MarketApiError("A site needs a name.")
    if len(name) > NAME_MAX_LENGTH:
        raise MarketApiError(f"A site name has at most {NAME_MAX_LENGTH} characters.")
    if isinstance(power_w, bool) or not isinstance(power_w, int) or power_w <= 0:
        raise MarketApiError("A site's power must be a positive number of watts.")
    site = MarketApiSite.objects.create(name=name, power_w=power_w)
    MarketApiAllocation.objects.create(site=site)
    return site


@transaction.atomic
def set_market_api_allocation(*, site: MarketApiSite, counts: Mapping[str, int]) -> MarketApiAllocation:
    """Replace the site's allocation with ``counts`` (API field -> units; a field left out means 0 units).

    Refused with ``MarketApiError`` for an unknown field or a count that is not an integer in 0..MAX_UNITS, and
    with ``AllocationOverPower`` when the total exceeds the site's power; nothing is written then. The site row
    is locked, so a concurrent change of its power cannot slip between the check and the write.
    """
    unknown = sorted(set(counts) - set(COUNT_FIELDS))
    if unknown:
        raise MarketApiError(f"Unknown machine types: {', '.join(unknown)}.")
    full = {name: counts.get(name, 0) for name in COUNT_FIELDS}
    for name, units in full.items():
        if isinstance(units, bool) or not isinstance(units, int) or not 0 <= units <= MAX_UNITS:
            raise MarketApiError(f"{name} must be a whole number of units from 0 to {MAX_UNITS:,}.")
    locked = MarketApiSite.objects.select_for_update().get(pk=site.pk)
    required = allocation_power_w(full)
    if required > locked.power_w:
        raise AllocationOverPower(required_w=required, available_w=locked.power_w)
    allocation, _ = MarketApiAllocation.objects.select_for_update().get_or_create(site=locked)
    for name, units in full.items():
        setattr(allocation, name, units)
    allocation.save()
    return allocation


@dataclass(frozen=True)
class MachinesStatus:
    """What ``GET /machines`` reports: the allocation and its accounting at one served price."""

    allocation: MarketApiAllocation
    price: ServedPrice
    report: MachinesReport


def machines_status(*, allocation: MarketApiAllocation, price: ServedPrice) -> MachinesStatus:
    """The event's accounting of ``allocation`` at ``price`` (floats, as the event's server computed them).

    Raises ``AllocationOverPower`` if the stored allocation exceeds the site's power (possible only if the power
    was lowered by hand afterwards; the admin refuses that).
    """
    row = PriceRow(
        energy_price=float(price.energy_price),
        hash_price=float(price.hash_price),
        token_price=float(price.token_price),
    )
    power_w = allocation.site.power_w
    try:
        report = score_allocation(allocation.counts, row, power_w=power_w)
    except ValueError:
        raise AllocationOverPower(required_w=allocation_power_w(allocation.counts), available_w=power_w) from None
    return MachinesStatus(allocation=allocation, price=price, report=report)
