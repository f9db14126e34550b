from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared plumbing: the bottom layer, importing no project app (see the layer contracts in pyproject.toml)."""

    name = "core"
    verbose_name = "Core"
