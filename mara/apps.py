from django.apps import AppConfig


class MaraConfig(AppConfig):
    """The MARA Hackathon 2025 market API served under /mara/: above `sites` (its tenants and prices) and the
    engine (its accounting, optimizer.engine.mara)."""

    name = "mara"
    verbose_name = "MARA hackathon API"
