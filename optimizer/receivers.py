"""Receivers of the hooks lower layers offer (connected in OptimizerConfig.ready); each only queues work."""

from __future__ import annotations

from .choices import RunTrigger


def queue_replan(sender, **kwargs) -> None:
    """`sites.signals.replan_requested`: queue a run recorded as triggered by the site, with the task's own options
    (its expiry: a re-plan is stale after a tick). Sent after the change commits; a broker error propagates to
    the sender, which logs it."""
    from .tasks import run_optimization

    run_optimization.delay(trigger=RunTrigger.SITE)


def queue_fleet_replan(sender, **kwargs) -> None:
    """`fleet.signals.capacity_lost`: devices left the plan (faulted, offline, stopped serving); plan again without
    them, recorded as triggered by the fleet. Sent after commit with `send_robust`."""
    from .tasks import run_optimization

    run_optimization.delay(trigger=RunTrigger.FLEET)


def queue_grid_replan(sender, event_id: int, status: str, **kwargs) -> None:
    """`grid.signals.grid_event_changed`: re-plan at once on the high-priority `grid` queue (a new, started,
    completed or cancelled event changes what the fleet may draw)."""
    from .tasks import replan_for_grid_event

    replan_for_grid_event.delay(event_id=event_id, status=status)
