from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared plumbing: the bottom layer, importing no project app (see the layer contracts in pyproject.toml)."""

    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import numbers

        numbers.install()  # numbers, dates and ids in ASCII digits only, for every serializer, filter and form
