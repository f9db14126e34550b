"""Periodic work of the commercial world: contracts start and end on time, credits are issued monthly.

Every task is idempotent (state-machine compare-and-swap, or a natural-key unique constraint), so a retry, a
duplicate delivery or two beat schedulers never do the work twice. Suggested schedules (core.schedules):
start_contracts and expire_contracts every 60 s, issue_service_credits every hour (it only acts once per month).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="sla.tasks.expire_contracts", expires=50)
def expire_contracts() -> dict:
    """Complete contracts whose end has passed (idempotent: a completed contract is never touched again)."""
    return {"completed": services.complete_due_contracts(now=timezone.now())}


# Transient database trouble (a dropped connection, a deadlock victim) is retried; anything else is a bug.
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 3}


@shared_task(name="sla.tasks.start_contracts", expires=50, **RETRY)
def start_contracts() -> dict:
    """Activate admitted contracts whose window has begun (idempotent: an active contract is never re-started)."""
    return {"started": services.start_due_contracts(now=timezone.now())}


@shared_task(name="sla.tasks.issue_service_credits", expires=3000, **RETRY)
def issue_service_credits(month: str | None = None) -> dict:
    """Issue the service credits of a finished month ("YYYY-MM"; default the previous month, UTC).

    Idempotent: one ledger entry per contract and month, so running it every hour issues each credit once.
    """
    if month:
        try:
            year, number = (int(part) for part in month.split("-"))
            first = date(year, number, 1)
        except ValueError:
            logger.error("issue_service_credits: %r is not a month (YYYY-MM); nothing issued", month)
            return {"month": month, "issued": 0, "error": "bad month"}
    else:
        first = (timezone.now().date().replace(day=1) - timedelta(days=1)).replace(day=1)
    try:
        issued = services.issue_service_credits(month=first)
    except ValueError as exc:  # the month has not ended
        logger.warning("issue_service_credits: %s", exc)
        return {"month": f"{first:%Y-%m}", "issued": 0, "error": str(exc)}
    return {"month": f"{first:%Y-%m}", "issued": issued}
