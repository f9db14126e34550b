"""Health of the energyarb process that runs as PID 1 in this container: the image's HEALTHCHECK.

- web (gunicorn): `GET /api/health` on 127.0.0.1:$PORT answers 200 with `"status": "healthy"`, which needs the
  database; the Host header is the first concrete name of ALLOWED_HOSTS, so Django accepts the request.
- worker: the worker named `QUEUE@hostname` answers a Celery ping through the broker (its consumer loop is alive).
- beat: the broker accepts a connection (beat's only job is to publish to it).
- anything else (a one-shot management command): healthy while it runs.
Exit status 0 when healthy, 1 when not (Docker's contract); the reason goes to stdout, which `docker inspect` shows.
"""

import json
import os
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5.0


def role_of(argv: list[str]) -> tuple[str, str | None]:
    """(role, queue) from a command line as the entry point runs it (gunicorn / celery worker / celery beat)."""
    programs = [os.path.basename(arg) for arg in argv]
    if "gunicorn" in programs:
        return "web", None
    if "celery" in programs and "worker" in argv:
        queue = argv[argv.index("--queues") + 1] if "--queues" in argv[:-1] else None
        return "worker", queue
    if "celery" in programs and "beat" in argv:
        return "beat", None
    return "other", None


def pid1_argv() -> list[str]:
    with open("/proc/1/cmdline", "rb") as cmdline:
        return [arg.decode(errors="replace") for arg in cmdline.read().split(b"\0") if arg]


def request_host(allowed_hosts: str) -> str:
    """The first name ALLOWED_HOSTS accepts as such ('.example.com' -> 'example.com'); 'localhost' for '*'."""
    for name in (item.strip() for item in allowed_hosts.split(",")):
        if name and name != "*":
            return name.lstrip(".")
    return "localhost"


def check_web(url: str, host: str) -> tuple[bool, str]:
    request = urllib.request.Request(url, headers={"Host": host, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return False, f"{url} answered {error.code}"
    except (OSError, ValueError) as error:
        return False, f"{url}: {error}"
    return body.get("status") == "healthy", f"{url}: {body}"


def broker_app():
    """A bare Celery app on the broker the process uses (REDIS_URL): no Django import, so the check stays cheap."""
    from celery import Celery

    return Celery("healthcheck", broker=os.environ.get("REDIS_URL") or None)


def check_worker(queue: str | None) -> tuple[bool, str]:
    destination = f"{queue}@{socket.gethostname()}"
    replies = broker_app().control.ping(destination=[destination], timeout=TIMEOUT_S)
    return bool(replies), f"ping {destination}: {replies}"


def check_beat() -> tuple[bool, str]:
    with broker_app().connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=TIMEOUT_S)
    return True, "broker reachable"


def main() -> int:
    role, queue = role_of(pid1_argv())
    try:
        if role == "web":
            port = os.environ.get("PORT", "8000")
            healthy, reason = check_web(
                f"http://127.0.0.1:{port}/api/health", request_host(os.environ.get("ALLOWED_HOSTS", "localhost"))
            )
        elif role == "worker":
            healthy, reason = check_worker(queue)
        elif role == "beat":
            healthy, reason = check_beat()
        else:
            healthy, reason = True, "no health check for this command"
    except Exception as error:  # any failure of a check is "unhealthy", with its reason
        healthy, reason = False, f"{type(error).__name__}: {error}"
    print(f"{role}: {'healthy' if healthy else 'unhealthy'} ({reason})")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.path.insert(0, "/app")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    sys.exit(main())
