"""The fleet app's answer to the plan-applied hook of the sites layer: enqueue a dispatch round, never block.

The optimizer sends `sites.signals.allocation_applied` after its transaction commits; this receiver only
queues `dispatch_fleet` on the `fleet` queue, so a slow or unreachable device never delays an optimization.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.dispatch import receiver

from sites.signals import allocation_applied

logger = logging.getLogger(__name__)


@receiver(allocation_applied, dispatch_uid="fleet.dispatch_after_plan")
def dispatch_after_plan(sender, *, run_id, applied_at, **kwargs) -> None:
    if not settings.FLEET["DISPATCH_ON_PLAN"]:
        return
    from .models import Device
    from .tasks import dispatch_fleet

    if not Device.objects.exists():
        return
    try:
        dispatch_fleet.apply_async(
            kwargs={"trigger": "plan", "run_id": run_id, "planned_at": applied_at.isoformat()}, queue="fleet"
        )
    except Exception:  # a broker outage must not fail the optimizer; the periodic round catches up
        logger.exception("Could not queue the dispatch of run %s", run_id)
