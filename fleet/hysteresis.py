"""The fleet's hysteresis as the engine sees it: per site, hardware and period, the units that must still run and
the units that may run (`optimizer.engine.unit_commitment.UnitLimits`). One query over the registered devices
and one over the starts of the last 24 h; numpy out, no engine import (the optimizer wraps the arrays)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Count

from .choices import PLANNABLE_STATUSES, Action
from .models import Device, DeviceCommand, SiteFleet


def unit_limits(
    *, site_ids: Sequence[int], hardware_ids: Sequence[int], period_starts: Sequence[datetime], now: datetime
) -> tuple[np.ndarray, np.ndarray] | None:
    """(min_units, max_units), each [S, H, T]; None when no site has registered devices.

    A (site, hardware) without registered devices is unbounded (0 .. inf): its inventory is staff-maintained.
    """
    devices = list(
        Device.objects.filter(
            site_id__in=site_ids, hardware_model_id__in=hardware_ids, status__in=PLANNABLE_STATUSES
        ).values_list("pk", "site_id", "hardware_model_id", "is_running", "running_changed_at")
    )
    if not devices:
        return None
    shape = (len(site_ids), len(hardware_ids), len(period_starts))
    s_of = {pk: i for i, pk in enumerate(site_ids)}
    h_of = {pk: i for i, pk in enumerate(hardware_ids)}
    floor, ceiling = np.zeros(shape), np.full(shape, np.inf)
    rules = {f.site_id: f for f in SiteFleet.objects.filter(site_id__in=site_ids)}
    starts = dict(
        DeviceCommand.objects.filter(action=Action.START, sent=True, created_at__gte=now - timedelta(days=1))
        .order_by()
        .values_list("device_id")
        .annotate(n=Count("id"))
    )
    registered = {(s_of[site], h_of[hw]) for _pk, site, hw, _on, _at in devices}
    for s, h in registered:
        ceiling[s, h, :] = 0
    starts_at = np.array([(t - now).total_seconds() / 60 for t in period_starts])  # minutes from now
    for pk, site, hw, running, changed_at in devices:
        rule = rules.get(site) or SiteFleet()
        s, h = s_of[site], h_of[hw]
        since = (now - changed_at).total_seconds() / 60 if changed_at else np.inf  # minutes in its state
        if running:
            floor[s, h, :] += (since + starts_at) < rule.min_on_minutes
            ceiling[s, h, :] += 1
        elif starts.get(pk, 0) < rule.max_restarts_per_day:
            ceiling[s, h, :] += (since + starts_at) >= rule.min_off_minutes
    return floor, ceiling
