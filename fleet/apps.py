from django.apps import AppConfig


class FleetConfig(AppConfig):
    """The machines: device registry, drivers, dispatch of applied plans, telemetry and measured uptime."""

    name = "fleet"
    verbose_name = "Fleet (devices and dispatch)"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects to the plan-applied hook)
