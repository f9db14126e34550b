"""Writes across rows of the commercial world: contract lifecycle."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from simple_history.utils import update_change_reason

from .choices import ContractStatus
from .models import Contract


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
