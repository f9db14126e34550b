"""A booked fleet for the benchmarks: N running contracts of random tiers, admitted as customers buy them.

Every contract goes through ``sla.services.admission.create_contract`` (placement, locks, pricing), as an
operator's book would be built, so the optimizer sees the placements admission really makes. The book belongs to
one benchmark customer (``bench-book``): earlier books of that customer are deleted first, nothing else is touched.
Requests the fleet has no room for are refused by admission and counted, not retried.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

BOOK_USERNAME = "bench-book"
TIER_WEIGHTS = (("premium", 1), ("standard", 3), ("flexible", 3), ("spot", 3))


@dataclass(frozen=True)
class Book:
    """What was booked: admitted and refused requests, committed kW, and how long admission took."""

    admitted: int
    refused: int
    committed_kw: float
    seconds: float

    def line(self) -> str:
        return (
            f"{self.admitted} running contracts admitted ({self.refused} refused: no room), "
            f"{self.committed_kw:,.0f} kW committed, booked in {self.seconds:.1f} s"
        )


def delete_book(username: str = BOOK_USERNAME) -> None:
    """Forget the benchmark customer's contracts and what hangs off them (earlier books)."""
    from django.db import transaction

    from sla.models import Contract, ContractDelivery, Downtime, Placement, PreemptionNotice, Quote, ServiceCredit

    with transaction.atomic():
        contracts = Contract.objects.filter(customer__user__username=username)
        for model in (ContractDelivery, Downtime, PreemptionNotice, Placement, ServiceCredit):
            model.objects.filter(contract__in=contracts).delete()
        Contract.history.filter(customer__user__username=username).delete()
        contracts.delete()
        Quote.objects.filter(customer__user__username=username).delete()


def book_running_contracts(
    *,
    contracts: int,
    kw_range: tuple[int, int],
    start: datetime,
    hours: float = 24.0,
    seed: int = 13,
    username: str = BOOK_USERNAME,
    reuse: bool = False,
) -> Book:
    """Replace the benchmark customer's book with ``contracts`` requests of ``kw_range`` kW (whole kW, uniform)
    and random tiers, each running from ``start`` for ``hours``; a progress bar on stderr. ``reuse``: keep a book of
    exactly ``contracts`` contracts still running at ``start`` (booking 3,000 takes minutes)."""
    from django.conf import settings
    from django.db.models import Sum

    from sla.models import Contract, Customer, Tier
    from sla.services import AdmissionRefused, CapacityRequest, create_contract
    from sla.services.seeding import ensure_user

    running = Contract.objects.filter(
        customer__user__username=username, starts_at__lte=start, ends_at__gt=start + timedelta(hours=6)
    )
    if (
        reuse
        and running.count() == contracts
        and Contract.objects.filter(customer__user__username=username).count() == contracts
    ):
        committed = running.aggregate(kw=Sum("capacity_kw"))["kw"]
        return Book(contracts, 0, float(committed), 0.0)
    delete_book(username)
    # One benchmark customer stands for the operator's whole book: the per-customer cap does not apply to it.
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT": 100.0, "SLA_CUSTOMER_SHARE_PCT_BY_TIER": {}}
    ensure_user(username=username, password=None, staff=False, customer_name="Benchmark book")
    customer = Customer.objects.get(user__username=username)
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    codes = [code for code, _ in TIER_WEIGHTS if code in tiers]
    weights = [weight for code, weight in TIER_WEIGHTS if code in tiers]
    rng = random.Random(seed)
    admitted = refused = 0
    committed = Decimal(0)
    started = time.perf_counter()
    for i in range(contracts):
        request = CapacityRequest(
            tier=tiers[rng.choices(codes, weights)[0]],
            capacity_kw=Decimal(rng.randint(*kw_range)),
            starts_at=start,
            ends_at=start + timedelta(hours=hours),
        )
        try:
            create_contract(customer=customer, request=request)
        except AdmissionRefused:
            refused += 1
        else:
            admitted += 1
            committed += request.capacity_kw
        if (i + 1) % max(contracts // 50, 1) == 0 or i + 1 == contracts:
            done = (i + 1) / contracts
            sys.stderr.write(f"\r  booking [{'#' * int(done * 30):<30}] {i + 1}/{contracts}")
            sys.stderr.flush()
    sys.stderr.write("\n")
    return Book(admitted, refused, float(committed), time.perf_counter() - started)
