"""energyarb's WSGI app plus `/__probe__`, which answers what the gunicorn worker serving it looks like (a test
app only: tests/test_gunicorn_config.py runs it under deploy/gunicorn.conf.py on loopback)."""

import gc
import json
import os

from energyarb.wsgi import application as energyarb_application

LOADED_BY = os.getpid()  # the master when the app is preloaded, else the worker
AT_FORK: dict[str, int] = {}


def _after_fork_in_child() -> None:
    from django.db import connections

    AT_FORK["frozen_objects"] = gc.get_freeze_count()
    AT_FORK["open_database_connections"] = sum(c.connection is not None for c in connections.all(initialized_only=True))


os.register_at_fork(after_in_child=_after_fork_in_child)


def _heartbeat_files() -> list[str]:
    """Where the worker's heartbeat file lives (gunicorn unlinks it at once; its descriptor still names it)."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used
            continue
    return [name for name in names if "wgunicorn-" in name]


def application(environ, start_response):
    if environ["PATH_INFO"] != "/__probe__":
        return energyarb_application(environ, start_response)
    body = json.dumps(
        {
            "pid": os.getpid(),
            "loaded_by": LOADED_BY,
            "at_fork": AT_FORK,
            "frozen_objects": gc.get_freeze_count(),
            "gc_thresholds": gc.get_threshold(),
            "heartbeat_files": _heartbeat_files(),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
