"""energyarb's WSGI app plus `/__probe__`, which answers what the gunicorn worker serving it looks like, and a few
`/__probe__/...` answers of the shapes gunicorn closes differently (a test app only: tests/test_gunicorn_config.py
runs it under deploy/gunicorn.conf.py on loopback)."""

import gc
import json
import os
import time

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


def _answer(start_response, body: bytes, *, length: bool = True):
    headers = [("Content-Type", "application/json")]
    if length:
        headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]


def _read_body(environ, start_response):
    """Reads the request body to its end and answers how long it was."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return _answer(start_response, json.dumps({"read": len(body)}).encode())


def _slow(environ, start_response):
    """Answers after 0.3 s (a client's further bytes arrive meanwhile)."""
    time.sleep(0.3)
    return _answer(start_response, b'{"slow": true}')


def _unknown_length(environ, start_response):
    """An answer without Content-Length (gunicorn sends it chunked to an HTTP/1.1 client)."""
    return _answer(start_response, b'{"length": "unknown"}', length=False)


def _fails_after_its_headers(environ, start_response):
    """Starts an empty answer (Content-Length: 0), then fails before gunicorn sends it: gunicorn answers 500."""
    start_response("200 OK", [("Content-Length", "0")])
    raise RuntimeError("the probe fails on purpose")


ANSWERS = {
    "/__probe__/read-body": _read_body,
    "/__probe__/slow": _slow,
    "/__probe__/unknown-length": _unknown_length,
    "/__probe__/fails": _fails_after_its_headers,
}


def application(environ, start_response):
    if environ["PATH_INFO"] in ANSWERS:
        return ANSWERS[environ["PATH_INFO"]](environ, start_response)
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
    return _answer(start_response, body)
