"""Periodic work of grid programs: events start and end (and are settled) on time.

Both are idempotent (state-machine compare-and-swap under a row lock), so a retry or two beat schedulers never
move an event twice. Schedules (core.schedules): every 60 s, on the `grid` queue; the re-plan at notice already
plans the event's window.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from . import services

RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 3}


@shared_task(name="grid.tasks.start_grid_events", expires=50, **RETRY)
def start_grid_events() -> dict:
    """Activate notified events whose start has come."""
    return {"started": services.start_due_events(now=timezone.now())}


@shared_task(name="grid.tasks.complete_grid_events", expires=50, **RETRY)
def complete_grid_events() -> dict:
    """Complete and settle active events whose end has come."""
    return {"completed": services.complete_due_events(now=timezone.now())}
