"""The contract state machine: every status change goes through `transition_contract` (locked, audited).

How a contract lives (requested -> active -> completed, with rejected / cancelled / terminated exits):
- Bought through the API, a contract is admitted at once: admission control reserves its placements under locks
  and sets `admitted_at`. It is ACTIVE immediately when its window has begun, otherwise REQUESTED (admitted,
  capacity held) until `start_due_contracts` (task `start_contracts`) activates it at `starts_at`.
- `complete_due_contracts` (task `expire_contracts`) completes it at `ends_at`.
- Staff may reject a request or terminate an active contract; the customer may cancel, at the fee its terms set
  (`cancellation_fee_pct` of the quoted total of the unserved part, kept in `cancellation_fee_usd`). Any ending
  releases the capacity: running placements are closed at that moment, future ones dropped, open downtime closed.
- A request typed in by staff has no placements until `admit_contract` places it. `approve_contract` is a plain
  state change (a staff override that reserves nothing), kept for the admin's approve action.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from core import lifecycle
from core.lifecycle import record_transition

from ..capacity import cancellation_fee_usd
from ..choices import ContractStatus
from ..models import (
    Contract,
)

ENDED = (
    ContractStatus.COMPLETED,
    ContractStatus.CANCELLED,
    ContractStatus.TERMINATED,
    ContractStatus.REJECTED,
)  # statuses in which a contract holds no capacity


class IllegalTransition(lifecycle.IllegalTransition):
    """The contract state machine does not allow this move."""


@transaction.atomic
def transition_contract(*, contract: Contract, to_status: str, reason: str = "", actor=None) -> Contract:
    """Move a contract along its lifecycle, or raise IllegalTransition.

    The row is locked (SELECT ... FOR UPDATE) so two concurrent moves from the same state cannot both
    succeed; the change is kept in the contract's history with who, when and why. Only the contract's row: its
    tier, read along, is not locked, or every placement written for that tier would wait (the trigger of sla
    migration 0013 reads the tier FOR SHARE), and a failover writing one would close a lock cycle with this.
    """
    locked = Contract.objects.select_for_update(of=("self",)).select_related("tier").get(pk=contract.pk)
    if not locked.can_transition_to(to_status):
        raise IllegalTransition(
            f"Contract {locked.pk} cannot go from {locked.get_status_display().lower()} to {to_status}."
        )
    if actor is not None and getattr(actor, "is_authenticated", False):
        locked._history_user = actor
    now = timezone.now()
    also: tuple[str, ...] = ()
    if to_status == ContractStatus.CANCELLED:  # the cancellation policy of its terms (quote or admission)
        locked.cancellation_fee_usd = cancellation_fee_usd(
            quoted_total_usd=locked.quoted_total_usd,
            fee_pct=locked.cancellation_fee_pct,
            starts_at=locked.starts_at,
            ends_at=locked.ends_at,
            at=now,
        )
        also = ("cancellation_fee_usd",)
    record_transition(locked, to_status=to_status, reason=reason, now=now, also=also)
    if to_status in ENDED:
        # A contract that stops running stops occupying capacity: close the placements that ran, and drop
        # those that never started (nothing ran there, so there is no history to keep). Placements end at the
        # contract's end, so "still running" means valid_to is empty or later than now.
        locked.placements.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=now), valid_from__lt=now).update(
            valid_to=now
        )
        locked.placements.filter(valid_from__gte=now).delete()
        locked.downtimes.filter(ended_at__isnull=True).update(ended_at=Greatest(F("started_at"), Value(now)))
    contract.refresh_from_db()
    return contract


def approve_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(
        contract=contract, to_status=ContractStatus.ACTIVE, actor=actor, reason=reason or "approved"
    )


def reject_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(
        contract=contract, to_status=ContractStatus.REJECTED, actor=actor, reason=reason or "rejected"
    )


def terminate_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(
        contract=contract, to_status=ContractStatus.TERMINATED, actor=actor, reason=reason or "terminated"
    )


def cancel_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(
        contract=contract, to_status=ContractStatus.CANCELLED, actor=actor, reason=reason or "cancelled"
    )


def complete_contract(*, contract: Contract, actor=None, reason: str = "") -> Contract:
    return transition_contract(
        contract=contract, to_status=ContractStatus.COMPLETED, actor=actor, reason=reason or "ended"
    )


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


def start_due_contracts(*, now: datetime) -> int:
    """Activate every admitted request whose window has begun; returns how many were started.

    Only admitted requests start (admission control set `admitted_at` when it placed them); a request typed in
    by staff without placements waits for `admit_contract`. Each move goes through transition_contract (row lock
    + state check), so two workers never start the same contract twice.
    """
    started = 0
    for contract in Contract.objects.due_to_start(now).only("pk"):
        try:
            transition_contract(contract=contract, to_status=ContractStatus.ACTIVE, reason="contract window began")
        except IllegalTransition:
            continue  # cancelled, rejected or started by another worker in between
        started += 1
    return started
