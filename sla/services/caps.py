"""The per-customer cap: no customer's admitted contracts hold, at any moment, more than a share of the fleet's SLA
capacity (setting SLA_CUSTOMER_SHARE_PCT, per tier optionally SLA_CUSTOMER_SHARE_PCT_BY_TIER), so one customer
cannot book all free capacity.

Admission checks it for every writer (API purchases, the original request, staff admitting a request, services)
inside its transaction, after locking the customer's row (`lock_customer`): two purchases of one customer
serialize on that lock, each reading the other's committed contracts, so parallel purchases cannot exceed the cap.
Quotes check it without the lock (a quote reserves nothing; its purchase is checked again).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import cast

from django.conf import settings

from ..capacity import KW_STEP, customer_peak_kw
from ..models import Contract, Customer, Tier

HUNDRED = Decimal("100")


def shares_pct(tier: Tier) -> list[tuple[Decimal, str | None]]:
    """The caps that bind a request of `tier`: (share %, tier code or None for all tiers), those below 100 %."""
    config = settings.ENERGYARB
    caps: list[tuple[Decimal, str | None]] = [(Decimal(str(config["SLA_CUSTOMER_SHARE_PCT"])), None)]
    by_tier = cast("dict[str, float]", config.get("SLA_CUSTOMER_SHARE_PCT_BY_TIER") or {})
    if tier.code in by_tier:
        caps.append((Decimal(str(by_tier[tier.code])), tier.code))
    return [(pct, code) for pct, code in caps if pct < HUNDRED]


def lock_customer(customer_id: int, tier: Tier) -> None:
    """Lock the customer's row until the transaction ends, when a cap binds `tier` (FOR NO KEY UPDATE: inserting
    contracts that reference it, which takes KEY SHARE, is not blocked; a second admission for the customer is)."""
    if shares_pct(tier):
        list(Customer.objects.filter(pk=customer_id).order_by().select_for_update(no_key=True).values_list("pk"))


def check_customer_cap(
    *,
    customer_id: int,
    tier: Tier,
    capacity_kw: Decimal,
    start: datetime,
    end: datetime,
    fleet_kw: Callable[[], Decimal],
    exclude_contract: int | None = None,
) -> str | None:
    """Why admitting `capacity_kw` of `tier` over [start, end) would take the customer past a cap, or None.

    Counted: the customer's open contracts (requested or active, admitted or typed in by staff) overlapping the
    window, at their contracted kW (a Premium contract's redundant copy is the operator's, not the customer's),
    plus this request.
    `fleet_kw` gives the fleet's SLA capacity (asked only when a cap binds). One read; none when no cap binds.
    """
    caps = shares_pct(tier)
    if not caps:
        return None
    contracts = Contract.objects.open().filter(customer_id=customer_id)
    if exclude_contract is not None:
        contracts = contracts.exclude(pk=exclude_contract)
    rows = contracts.overlapping(start, end).values_list("capacity_kw", "starts_at", "ends_at", "tier__code")
    held = [*rows, (capacity_kw, start, end, tier.code)]
    fleet = fleet_kw()
    for pct, code in caps:
        limit = (fleet * pct / HUNDRED).quantize(KW_STEP)
        peak = customer_peak_kw(((kw, s, e) for kw, s, e, c in held if code in (None, c)), start, end)
        if peak > limit:
            scope = f"{tier.name} contracts" if code else "contracts"
            return (
                f"The customer's {scope} would hold {peak} kW at their peak in this window, above its cap of "
                f"{limit} kW ({pct.normalize():f} % of the fleet's {fleet} kW of SLA capacity)."
            )
    return None
