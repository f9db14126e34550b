"""Default periodic schedules, declared in code and installed into django-celery-beat.

Staff can change intervals or disable entries in the admin afterwards; installing again never overwrites
a staff edit of an existing entry (it only creates missing ones), unless `reset=True`.
Every periodic task carries `expires` shorter than its period so a backlog never piles up.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    every_seconds: int
    queue: str

    @property
    def expires_seconds(self) -> int:
        return max(30, int(self.every_seconds * 0.8))


DEFAULT_SCHEDULES: tuple[DefaultSchedule, ...] = (
    DefaultSchedule("refresh market prices", "sites.tasks.refresh_market_prices", 5 * 60, "data"),
    DefaultSchedule("refresh weather", "sites.tasks.refresh_weather", 15 * 60, "data"),
    DefaultSchedule("run optimization", "optimizer.tasks.run_optimization", 5 * 60, "optimizer"),
    DefaultSchedule("expire contracts", "sla.tasks.expire_contracts", 60, "default"),
    DefaultSchedule("start contracts", "sla.tasks.start_contracts", 60, "default"),
    DefaultSchedule("start grid events", "grid.tasks.start_grid_events", 60, "grid"),
    DefaultSchedule("complete grid events", "grid.tasks.complete_grid_events", 60, "grid"),
    DefaultSchedule("poll OpenADR VTN", "grid.tasks.poll_openadr_vtn", 60, "grid"),
    DefaultSchedule("issue service credits", "sla.tasks.issue_service_credits", 3600, "default"),
    # Retention (ENERGYARB["RETENTION_DAYS"]): old prices, weather and finished runs are deleted here, never by a GET.
    DefaultSchedule("prune old data", "sites.tasks.prune_old_data", 24 * 3600, "data"),
    DefaultSchedule("prune old runs", "optimizer.tasks.prune_old_runs", 24 * 3600, "default"),
    # The machines: a dispatch round every minute carries on ramps the last round deferred; telemetry every minute.
    DefaultSchedule("dispatch fleet", "fleet.tasks.dispatch_fleet", 60, "fleet"),
    DefaultSchedule("poll fleet telemetry", "fleet.tasks.poll_fleet_telemetry", 60, "fleet"),
    DefaultSchedule("prune fleet telemetry", "fleet.tasks.prune_fleet_telemetry", 24 * 3600, "fleet"),
)


@transaction.atomic
def install_default_schedules(*, reset: bool = False) -> dict[str, str]:
    """Create (or with reset, restore) each default periodic task; returns name -> created/reset/kept."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    outcomes = {}
    for entry in DEFAULT_SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=entry.every_seconds, period=IntervalSchedule.SECONDS)
        values = {
            "task": entry.task,
            "interval": interval,
            "queue": entry.queue,
            "expire_seconds": entry.expires_seconds,
            "enabled": True,
        }
        task = PeriodicTask.objects.filter(name=entry.name).first()
        if task is None:
            PeriodicTask.objects.create(name=entry.name, **values)
            outcomes[entry.name] = "created"
        elif reset:
            for field, value in values.items():
                setattr(task, field, value)
            task.save()
            outcomes[entry.name] = "reset"
        else:
            outcomes[entry.name] = "kept"
    return outcomes
