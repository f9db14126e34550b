"""Reads of the machines."""

from __future__ import annotations

from django.db import models
from django.db.models import Count, Q

from .choices import PLANNABLE_STATUSES, DeviceStatus, Driver


class DeviceQuerySet(models.QuerySet):
    def plannable(self):
        """Devices the plan may count on (not faulted, offline or disabled)."""
        return self.filter(status__in=PLANNABLE_STATUSES)

    def miners(self):
        return self.exclude(driver=Driver.NODE_AGENT)

    def nodes(self):
        return self.filter(driver=Driver.NODE_AGENT)

    def inventory_counts(self):
        """Per (site, hardware model): devices installed and devices the plan may count on; one GROUP BY."""
        return (
            self.order_by()
            .values("site_id", "hardware_model_id")
            .annotate(installed=Count("id"), available=Count("id", filter=Q(status__in=PLANNABLE_STATUSES)))
        )

    def status_counts(self):
        """Per site: devices online and faulted (dashboard)."""
        return (
            self.order_by()
            .values("site_id")
            .annotate(
                online=Count("id", filter=Q(status=DeviceStatus.ONLINE)),
                faulted=Count("id", filter=Q(status=DeviceStatus.FAULTED)),
                offline=Count("id", filter=Q(status=DeviceStatus.OFFLINE)),
                total=Count("id"),
            )
        )
