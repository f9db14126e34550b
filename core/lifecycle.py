"""The status lifecycle the apps' state machines share (a contract in `sla`, a grid event in `grid`).

A model with a lifecycle has `status`, `status_changed_at` and `status_reason` columns, simple-history's
`history`, and a table of the moves its statuses allow (`<app>.choices`). `LifecycleMixin` answers whether a move is
allowed from that table; `record_transition` writes one on the locked row, the way every app records it: the
status, when and why, and the reason in the row's history. No fields here: a mixin adds no column and no migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils import timezone
from simple_history.utils import update_change_reason

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


class IllegalTransition(ValueError):
    """A state machine does not allow this move (each app names its own subclass)."""


class HistoryHooksMixin:
    """simple-history's documented hooks on an instance, read when it writes the next history row: the user in
    ``_history_user`` is its author (None: nobody; unset: the request's user from its middleware), the text in
    ``_change_reason`` its reason. Declared only (no class attribute, no column)."""

    _history_user: AbstractBaseUser | None
    _change_reason: str


class LifecycleMixin(HistoryHooksMixin):
    """``can_transition_to`` from the model's ``TRANSITIONS`` (status -> the statuses it may move to)."""

    TRANSITIONS: ClassVar[Mapping[str, frozenset[str]]] = {}
    status: Any

    def can_transition_to(self, status: str) -> bool:
        """Whether the lifecycle allows moving from the current status to `status` (pure)."""
        return status in self.TRANSITIONS.get(self.status, frozenset())


def record_transition(
    instance: Any, *, to_status: str, reason: str, now: datetime | None = None, also: Sequence[str] = ()
) -> datetime:
    """Write a move on a locked row: status, `status_changed_at` (`now`, by default the present; returned),
    `status_reason` (first 200 characters), the fields named in `also` (set by the caller for this move, in the
    same write and history record), and the change reason in its history (``status -> <to_status>`` without a
    reason). Set the history's author (``instance._history_user``) before, if there is one."""
    now = now or timezone.now()
    instance.status = to_status
    instance.status_changed_at = now
    instance.status_reason = reason[:200]
    instance.save(update_fields=["status", "status_changed_at", "status_reason", *also])
    update_change_reason(instance, reason or f"status -> {to_status}")
    return now
