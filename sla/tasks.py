"""Periodic work of the commercial world."""

from celery import shared_task
from django.utils import timezone

from .services import complete_due_contracts


@shared_task(name="sla.tasks.expire_contracts", expires=50)
def expire_contracts() -> dict:
    """Complete contracts whose end has passed (idempotent: a completed contract is never touched again)."""
    return {"completed": complete_due_contracts(now=timezone.now())}
