"""Idempotent reference data of the commercial world: the four tiers and the demo logins."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from sites.seeding import sync_row

from ..models import (
    Customer,
    ServiceCreditRule,
    Tier,
)

# Default tiers: (code, name, uptime %, multiplier, priority, preemptible, min sites, N-1, credit schedule).
# Credit schedule: uptime below X % -> Y % of the month's charge credited (largest applicable step wins).
DEFAULT_TIERS = (
    ("premium", "Premium", "99.900", "3.50", 1, False, 2, True, (("99.900", "10"), ("99.000", "25"), ("95.000", "100"))),  # noqa: E501
    ("standard", "Standard", "95.000", "2.00", 2, False, 1, False, (("95.000", "10"), ("90.000", "25"), ("80.000", "100"))),  # noqa: E501
    ("flexible", "Flexible", "90.000", "1.20", 3, False, 1, False, (("90.000", "10"), ("80.000", "25"), ("70.000", "100"))),  # noqa: E501
    ("spot", "Spot", None, "0.40", 4, True, 1, False, ()),
)  # fmt: skip


@transaction.atomic
def seed_tiers() -> Counter:
    """The four SLA tiers and their credit schedules; idempotent. Returns counts per (model, outcome)."""
    outcomes: Counter = Counter()
    for code, name, uptime, multiplier, priority, preemptible, min_sites, n_minus_1, credits in DEFAULT_TIERS:
        values = {
            "name": name,
            "uptime_target_pct": Decimal(uptime) if uptime else None,
            "price_multiplier": Decimal(multiplier),
            "priority": priority,
            "is_preemptible": preemptible,
            "min_sites": min_sites,
            "requires_n_minus_1": n_minus_1,
        }
        tier, outcome = sync_row(Tier, lookup={"code": code}, values=values)
        outcomes["tiers", outcome] += 1
        for below, credit in credits:
            _, outcome = sync_row(
                ServiceCreditRule,
                lookup={"tier": tier, "uptime_below_pct": Decimal(below)},
                values={"credit_pct": Decimal(credit)},
            )
            outcomes["credit rules", outcome] += 1
    return outcomes


@dataclass(frozen=True)
class SeededUser:
    username: str
    password: str | None  # set only when the account was created now and its password generated
    created: bool
    token: str


@transaction.atomic
def ensure_user(*, username: str, password: str | None, staff: bool, customer_name: str = "") -> SeededUser:
    """Create a login (staff, or a customer with its Customer row) if it does not exist; never resets a password.

    A generated password is returned once, for the command to print; an existing account is left as it is.
    """
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    generated = None
    created = user is None
    if user is None:
        generated = None if password else secrets.token_urlsafe(12)
        user = User.objects.create_user(
            username=username,
            email=f"{username}@energyarb.local",
            password=password or generated,
            is_staff=staff,
            is_superuser=staff,
        )
    if customer_name and not hasattr(user, "customer"):
        Customer.objects.create(user=user, name=customer_name)
    token, _ = Token.objects.get_or_create(user=user)
    return SeededUser(username=username, password=generated, created=created, token=token.key)
