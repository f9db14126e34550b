"""Reads of grid programs: enrollments in force and events by state and window."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from .choices import OPEN_EVENT_STATUSES, EventStatus


class EnrollmentQuerySet(models.QuerySet):
    def in_force(self, start: datetime, end: datetime | None = None) -> EnrollmentQuerySet:
        """Enrollments covering [start, end) (or the moment `start`)."""
        return self.filter(starts_at__lte=start, ends_at__gte=end or start)


class GridEventQuerySet(models.QuerySet):
    def open(self) -> GridEventQuerySet:
        return self.filter(status__in=OPEN_EVENT_STATUSES)

    def overlapping(self, start: datetime, end: datetime) -> GridEventQuerySet:
        return self.filter(starts_at__lt=end, ends_at__gt=start)

    def due_to_start(self, now: datetime) -> GridEventQuerySet:
        return self.filter(status=EventStatus.NOTIFIED, starts_at__lte=now)

    def due_to_end(self, now: datetime) -> GridEventQuerySet:
        return self.filter(status=EventStatus.ACTIVE, ends_at__lte=now)
