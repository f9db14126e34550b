"""Writes across rows of the commercial world: contract lifecycle."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from simple_history.utils import update_change_reason

from rest_framework.authtoken.models import Token

from sites.seeding import sync_row

from .choices import ContractStatus
from .models import Contract, Customer, ServiceCreditRule, Tier


class IllegalTransition(ValueError):
    """The contract state machine does not allow this move."""


@transaction.atomic
def transition_contract(*, contract: Contract, to_status: str, reason: str = "", actor=None) -> Contract:
    """Move a contract along its lifecycle, or raise IllegalTransition.

    The row is locked (SELECT ... FOR UPDATE) so two concurrent moves from the same state cannot both
    succeed; the change is kept in the contract's history with who, when and why.
    """
    locked = Contract.objects.select_for_update().select_related("tier").get(pk=contract.pk)
    if not locked.can_transition_to(to_status):
        raise IllegalTransition(
            f"Contract {locked.pk} cannot go from {locked.get_status_display().lower()} to {to_status}."
        )
    now = timezone.now()
    locked.status = to_status
    locked.status_changed_at = now
    locked.status_reason = reason[:200]
    if actor is not None and getattr(actor, "is_authenticated", False):
        locked._history_user = actor
    locked.save(update_fields=["status", "status_changed_at", "status_reason"])
    update_change_reason(locked, reason or f"status -> {to_status}")
    if to_status in (ContractStatus.COMPLETED, ContractStatus.CANCELLED, ContractStatus.TERMINATED):
        # A contract that stops running stops occupying capacity: close the placements that ran, and drop
        # those that never started (nothing ran there, so there is no history to keep).
        locked.placements.filter(valid_to__isnull=True, valid_from__lt=now).update(valid_to=now)
        locked.placements.filter(valid_from__gte=now).delete()
    contract.refresh_from_db()
    return contract


def approve_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(contract=contract, to_status=ContractStatus.ACTIVE, actor=actor, reason=reason or "approved")


def reject_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(contract=contract, to_status=ContractStatus.REJECTED, actor=actor, reason=reason or "rejected")


def terminate_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(
        contract=contract, to_status=ContractStatus.TERMINATED, actor=actor, reason=reason or "terminated"
    )


def cancel_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(contract=contract, to_status=ContractStatus.CANCELLED, actor=actor, reason=reason or "cancelled")


def complete_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(contract=contract, to_status=ContractStatus.COMPLETED, actor=actor, reason=reason or "ended")


# Default tiers: (code, name, uptime %, multiplier, priority, preemptible, min sites, N-1, credit schedule).
# Credit schedule: uptime below X % -> Y % of the month's charge credited (largest applicable step wins).
DEFAULT_TIERS = (
    ("premium", "Premium", "99.900", "3.50", 1, False, 2, True, (("99.900", "10"), ("99.000", "25"), ("95.000", "100"))),
    ("standard", "Standard", "95.000", "2.00", 2, False, 1, False, (("95.000", "10"), ("90.000", "25"), ("80.000", "100"))),
    ("flexible", "Flexible", "90.000", "1.20", 3, False, 1, False, (("90.000", "10"), ("80.000", "25"), ("70.000", "100"))),
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
    if created:
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


def complete_due_contracts(*, now) -> int:
    """Complete every active contract whose window has ended; returns how many were completed.

    Each contract moves through transition_contract (row lock + state check), so running this twice, or on
    two workers at once, completes each contract exactly once.
    """
    completed = 0
    for contract in Contract.objects.due_to_end(now).only("pk"):
        try:
            complete_contract(contract=contract, reason="contract window ended")
        except IllegalTransition:
            continue  # another worker got there first
        completed += 1
    return completed
