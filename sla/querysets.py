"""Chainable reads of the commercial world."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from .choices import ContractStatus


class ContractQuerySet(models.QuerySet):
    def for_user(self, user) -> ContractQuerySet:
        """Staff see every contract; a customer only its own; anyone else nothing."""
        if user.is_staff:
            return self
        return self.filter(customer__user=user)

    def open(self) -> ContractQuerySet:
        return self.filter(status__in=(ContractStatus.REQUESTED, ContractStatus.ACTIVE))

    def overlapping(self, start: datetime, end: datetime) -> ContractQuerySet:
        return self.filter(starts_at__lt=end, ends_at__gt=start)

    def due_to_end(self, now: datetime) -> ContractQuerySet:
        return self.filter(status=ContractStatus.ACTIVE, ends_at__lte=now)


class PlacementQuerySet(models.QuerySet):
    def current(self, at: datetime) -> PlacementQuerySet:
        return self.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at), valid_from__lte=at)

    def overlapping(self, start: datetime, end: datetime) -> PlacementQuerySet:
        return self.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start), valid_from__lt=end)
