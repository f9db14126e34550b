"""Writes of the fleet app: every writer (admin, API, task, command) goes through these."""

from .dispatch import dispatch_round
from .registry import import_devices_csv, register_device, set_device_status, set_kill_switch, sync_inventory
from .telemetry import poll_telemetry, prune_telemetry

__all__ = [
    "dispatch_round",
    "import_devices_csv",
    "poll_telemetry",
    "prune_telemetry",
    "register_device",
    "set_device_status",
    "set_kill_switch",
    "sync_inventory",
]
