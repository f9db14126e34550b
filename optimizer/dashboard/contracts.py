"""The SLA panel's reads: uptime by tier (cached for a minute) and the latest contracts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from django.core.cache import cache
from django.db import connection

from sla.choices import ContractStatus
from sla.models import Contract

from .formatting import _f, _iso
from .reads import _static_rows

UPTIME_WINDOW_DAYS = 30
UPTIME_CACHE_SECONDS = 60
LATEST_CONTRACTS = 10
CUSTOMER_CHOICES_LIMIT = 500
CONTRACT_STATUS_LABELS = dict(ContractStatus.choices)


def uptime_by_tier(*, now: datetime) -> dict[str, float | None]:
    """Delivered / committed kW-minutes per tier over the last UPTIME_WINDOW_DAYS, in percent.

    The one read whose cost grows with the fleet's activity (it sums every delivery record of the window, ~10 ms
    per 30,000 records), for a figure a minute cannot move: cached for UPTIME_CACHE_SECONDS per time bucket.
    """
    bucket = int(now.timestamp() // UPTIME_CACHE_SECONDS)

    def compute() -> dict[str, float | None]:
        since = now - timedelta(days=UPTIME_WINDOW_DAYS)
        return {
            code: (float(delivered) / float(committed) * 100 if committed else None)
            for code, delivered, committed in Contract.objects.uptime_by_tier(since=since)
        }

    # The database name keeps apart databases that share one cache (test workers, staging next to production).
    key = f"dashboard:uptime-by-tier:{connection.settings_dict['NAME']}:{UPTIME_WINDOW_DAYS}:{bucket}"
    return cast(dict[str, float | None], cache.get_or_set(key, compute, UPTIME_CACHE_SECONDS))


def _latest_contracts() -> list[dict]:
    rows = _static_rows(
        "latest-contracts",
        lambda: Contract.objects.order_by("-created_at", "-id").values_list(
            "id",
            "customer__name",
            "tier__code",
            "tier__name",
            "capacity_kw",
            "starts_at",
            "ends_at",
            "status",
            "quoted_total_usd",
            "created_at",
        )[:LATEST_CONTRACTS],
    )
    return [
        {
            "id": pk,
            "customer": customer,
            "tier": tier,
            "tier_name": tier_name,
            "capacity_kw": _f(capacity_kw, 3),
            "starts_at": _iso(starts_at),
            "ends_at": _iso(ends_at),
            "status": status,
            "status_label": CONTRACT_STATUS_LABELS.get(status, status),  # Contract.get_status_display()
            "quoted_total_usd": _f(quoted_total_usd),
            "created_at": _iso(created_at),
        }
        for pk, customer, tier, tier_name, capacity_kw, starts_at, ends_at, status, quoted_total_usd, created_at in rows
    ]
