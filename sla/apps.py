from django.apps import AppConfig


class SlaConfig(AppConfig):
    """The commercial world: tiers, customers, contracts, placements, uptime and credits."""

    name = "sla"
    verbose_name = "SLA commerce"
