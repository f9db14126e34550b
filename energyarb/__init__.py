"""energyarb: project wiring (settings, URLs, Celery). Domain code lives in sites, sla and optimizer."""

from .celery import app as celery_app

__all__ = ("celery_app",)
