from django.apps import AppConfig


class GridConfig(AppConfig):
    """Grid programs: coincident-peak charges, ancillary services, demand-response events and their settlement."""

    name = "grid"
    verbose_name = "Grid programs"
