from typing import cast

from django.apps import AppConfig
from django.core import checks


class SlaConfig(AppConfig):
    """The commercial world: tiers, customers, contracts, placements, uptime and credits."""

    name = "sla"
    verbose_name = "SLA commerce"

    def ready(self) -> None:
        checks.register(check_customer_caps)


def check_customer_caps(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """SLA_CUSTOMER_SHARE_PCT_BY_TIER names tiers that exist (a typo would silently leave a tier uncapped)."""
    from django.conf import settings

    from .choices import TierCode

    by_tier = cast("dict[str, float]", settings.ENERGYARB.get("SLA_CUSTOMER_SHARE_PCT_BY_TIER") or {})
    unknown = sorted(set(by_tier) - set(TierCode.values))
    return (
        [
            checks.Error(
                f"SLA_CUSTOMER_SHARE_PCT_BY_TIER names unknown tiers: {', '.join(unknown)}.",
                hint=f"Use tier codes: {', '.join(TierCode.values)}.",
                id="sla.E001",
            )
        ]
        if unknown
        else []
    )
