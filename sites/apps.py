from django.apps import AppConfig


class SitesConfig(AppConfig):
    """The physical world: sites, hardware, inventory, weather, energy and market prices."""

    name = "sites"
    verbose_name = "Sites and markets"
