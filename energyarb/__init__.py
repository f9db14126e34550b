"""energyarb: project wiring (settings, URLs, WSGI/ASGI, Celery). Shared plumbing lives in core, domain code in the
apps above it (sites, sla, optimizer, mara)."""

from .celery import app as celery_app

__all__ = ("celery_app",)
