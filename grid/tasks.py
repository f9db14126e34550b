"""Periodic work of grid programs: events start and end (and are settled) on time.

Both are idempotent (state-machine compare-and-swap under a row lock), so a retry or two beat schedulers never
move an event twice. Schedules (core.schedules): every 60 s, on the `grid` queue; the re-plan at notice already
plans the event's window.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from . import services

logger = logging.getLogger(__name__)

RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 3}


@shared_task(name="grid.tasks.start_grid_events", expires=50, **RETRY)
def start_grid_events() -> dict:
    """Activate notified events whose start has come."""
    return {"started": services.start_due_events(now=timezone.now())}


@shared_task(name="grid.tasks.complete_grid_events", expires=50, **RETRY)
def complete_grid_events() -> dict:
    """Complete and settle active events whose end has come."""
    return {"completed": services.complete_due_events(now=timezone.now())}


@shared_task(name="grid.tasks.poll_openadr_vtn", expires=50)
def poll_openadr_vtn() -> dict:
    """Poll the configured OpenADR 3 VTN (grid/ven.py); nothing to do when none is configured. A VTN that is down
    or refuses the credentials is logged and tried again at the next poll."""
    from .clients.openadr import VtnClient, VtnError, VtnSettings
    from .ven import sync_with_vtn

    conf = VtnSettings.from_settings()
    if conf is None:
        return {"skipped": "no OPENADR_VTN_URL"}
    try:
        client = VtnClient(conf)
        try:
            report = sync_with_vtn(client=client)
        finally:
            client.close()
    except VtnError as error:
        logger.warning("OpenADR poll failed: %s", error)
        return {"error": str(error)}
    return {
        "ven": report.ven_id,
        "created": report.created,
        "refused": report.refused,
        "cancelled": report.cancelled,
        "reported": report.reported,
    }
