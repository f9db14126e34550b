"""Periodic work of the physical world: keep prices and weather fresh.

Both tasks are idempotent (natural-key inserts of deterministic or fetched rows), retry only transient source
errors with exponential backoff and jitter, and expire before their next period so a backlog never piles up.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from . import services
from .clients.errors import SourceUnavailable

logger = logging.getLogger(__name__)

# Transient: a source that does not answer, and a database that is stopped or restarting (as the sla and grid tasks
# retry it); bad data (SourceDataError) is not retried.
RETRY = {
    "autoretry_for": (SourceUnavailable, OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 3,
}


@shared_task(name="sites.tasks.refresh_market_prices", expires=240, **RETRY)
def refresh_market_prices() -> dict:
    """Store the newest energy and market prices from the configured source."""
    result = services.refresh_market_prices(at=timezone.now())
    return {"source": result.source, "rows_written": result.rows_written, "interval": result.interval_start.isoformat()}


@shared_task(name="sites.tasks.refresh_weather", expires=720, **RETRY)
def refresh_weather() -> dict:
    """Store the newest temperature readings for every site from the configured source."""
    result = services.refresh_weather(at=timezone.now())
    return {"source": result.source, "rows_written": result.rows_written, "interval": result.interval_start.isoformat()}


@shared_task(name="sites.tasks.prune_old_data", expires=6 * 3600)
def prune_old_data() -> dict:
    """Delete prices, weather and fetch records older than ENERGYARB["RETENTION_DAYS"] (daily; never by a GET)."""
    before = timezone.now() - timedelta(days=settings.ENERGYARB["RETENTION_DAYS"])
    counts = services.prune_old_prices(before=before)
    logger.info("Pruned data older than %s: %s", before.isoformat(), counts)
    return {"before": before.isoformat(), **counts}
