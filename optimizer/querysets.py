"""Chainable reads of decisions."""

from __future__ import annotations

from django.db import models

from .choices import RunStatus


class OptimizationRunQuerySet(models.QuerySet):
    def succeeded(self) -> OptimizationRunQuerySet:
        return self.filter(status=RunStatus.SUCCEEDED)

    def applied(self) -> OptimizationRunQuerySet:
        return self.filter(status=RunStatus.SUCCEEDED, is_applied=True)

    def latest_finished(self):
        """The newest run that ended (succeeded, failed, skipped or rejected)."""
        return self.exclude(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).order_by("-queued_at", "-id").first()

    def latest_applied(self):
        return self.applied().order_by("-finished_at", "-id").first()
