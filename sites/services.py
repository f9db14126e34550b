"""Writes across rows of the physical world."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from simple_history.utils import update_change_reason

from .choices import SiteStatus
from .models import Site


class SiteStatusError(ValueError):
    """A status change that cannot be made (unknown status)."""


@transaction.atomic
def set_site_status(*, site: Site, status: str, reason: str = "", actor=None) -> bool:
    """Move a site to `status`; returns False when it already had it (nothing is written).

    Compare-and-swap on the old status keeps concurrent changes from overwriting each other silently;
    the change is recorded in the site's history with who and why.
    """
    if status not in SiteStatus.values:
        raise SiteStatusError(f"Unknown site status {status!r}.")
    locked = Site.objects.select_for_update().get(pk=site.pk)
    if locked.status == status:
        return False
    locked.status = status
    locked.status_changed_at = timezone.now()
    locked.status_reason = reason[:200]
    if actor is not None and actor.is_authenticated:
        locked._history_user = actor
    locked.save(update_fields=["status", "status_changed_at", "status_reason", "updated_at"])
    update_change_reason(locked, reason or f"status -> {status}")
    site.refresh_from_db()
    return True
