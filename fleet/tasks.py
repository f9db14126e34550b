"""Periodic and triggered work of the machines: dispatch rounds, telemetry polls, retention.

One dispatch round at a time across all workers (a cache lock): two rounds must never command the same device
at once. A round that finds the lock taken is skipped; the next minute's round carries on.
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.core.cache import cache
from django.db import OperationalError

from . import services

logger = logging.getLogger(__name__)
LOCK_KEY = "fleet:dispatch-lock"
LOCK_SECONDS = 300
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 3}


@shared_task(name="fleet.tasks.dispatch_fleet", expires=50, **RETRY)
def dispatch_fleet(trigger: str = "schedule", run_id: int | None = None, planned_at: str | None = None) -> dict:
    """Carry the applied plan out on the devices once (ids and ISO strings in, a small summary out)."""
    if not cache.add(LOCK_KEY, "1", timeout=LOCK_SECONDS):
        logger.info("A dispatch round is running; this %s round is skipped.", trigger)
        return {"skipped": True}
    try:
        round_ = services.dispatch_round(
            trigger=trigger,
            run_id=run_id,
            planned_at=datetime.fromisoformat(planned_at) if planned_at else None,
        )
    finally:
        cache.delete(LOCK_KEY)
    return {"round": round_.pk, "sites": round_.summary}


@shared_task(name="fleet.tasks.poll_fleet_telemetry", expires=50, **RETRY)
def poll_fleet_telemetry() -> dict:
    return services.poll_telemetry()


@shared_task(name="fleet.tasks.prune_fleet_telemetry", expires=3600, **RETRY)
def prune_fleet_telemetry() -> dict:
    return services.prune_telemetry()
