"""Enumerations of the machines: drivers, device states, commands and their outcomes."""

from django.db import models


class Driver(models.TextChoices):
    """How a device is spoken to (see `fleet.drivers.FIRMWARES` for what each supports)."""

    LUXOS = "luxos", "LuxOS miner (pyasic, CGMiner RPC 4028)"
    AVALON = "avalon", "Avalon stock firmware (pyasic, CGMiner RPC 4028)"
    NODE_AGENT = "node_agent", "Inference node agent (HTTP)"


class DeviceStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown (not polled yet)"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline (did not answer)"
    FAULTED = "faulted", "Faulted (did not follow a command; out of the plan)"
    DISABLED = "disabled", "Disabled by staff"


# Devices the plan may count on: everything not known to be broken or taken out.
PLANNABLE_STATUSES = (DeviceStatus.UNKNOWN, DeviceStatus.ONLINE)


class Action(models.TextChoices):
    START = "start", "Start"
    STOP = "stop", "Stop"
    SET_POWER = "set_power", "Set power target"
    SERVE = "serve", "Serve placements"
    DRAIN = "drain", "Drain"


class Outcome(models.TextChoices):
    OK = "ok", "Followed (read back as desired)"
    FAULTED = "faulted", "Faulted (read back differed after every retry)"
    UNREACHABLE = "unreachable", "Unreachable"
    DRY_RUN = "dry_run", "Dry run (logged, not sent)"
    DEFERRED = "deferred", "Deferred by the site's ramp limit"
    HELD = "held", "Held (minimum on/off time or restart cap)"


class RoundTrigger(models.TextChoices):
    PLAN = "plan", "An applied plan"
    SCHEDULE = "schedule", "Periodic"
    MANUAL = "manual", "Command or staff"
    KILL_SWITCH = "kill_switch", "Kill switch"
