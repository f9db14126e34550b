from django.apps import AppConfig


class OptimizerConfig(AppConfig):
    """Decisions: optimization runs, allocations, strategies, backtests and the Claude advisor."""

    name = "optimizer"
    verbose_name = "Optimizer"

    def ready(self) -> None:
        from fleet.signals import capacity_lost
        from grid.baselines import register_load_source
        from grid.signals import grid_event_changed
        from sites.signals import replan_requested

        from .load_history import site_it_load, site_measured_it_load
        from .receivers import queue_fleet_replan, queue_grid_replan, queue_replan

        replan_requested.connect(queue_replan, dispatch_uid="optimizer.queue_replan")
        capacity_lost.connect(queue_fleet_replan, dispatch_uid="optimizer.queue_fleet_replan")
        grid_event_changed.connect(queue_grid_replan, dispatch_uid="optimizer.queue_grid_replan")
        # grid baselines read fleet telemetry and applied plans through these; events settle on the telemetry
        register_load_source(site_it_load, measured=site_measured_it_load)
