"""`make compose-smoke`: the compose stack end to end, through the public API, bounded in time.

Starts PostgreSQL, Redis, the release step, web, a worker per queue and beat from docker-compose.yml; waits until
every service is healthy and the release step has exited 0; seeds (tokens from `seed_sites`); initializes as staff,
which queues a price and weather refresh that the data worker must store; quotes and buys capacity as the demo
customer; queues an optimization as staff and waits until the optimizer worker reports it succeeded. Then stops
and removes everything (containers, network, volumes), also on failure. Exits 1 with the services' logs on failure.

Environment: ENERGYARB_IMAGE (the image to test), POSTGRES_IMAGE / REDIS_IMAGE (defaults: the official images),
COMPOSE (default docker-compose), SMOKE_TIMEOUT_S (default 600, the whole run).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = "energyarb-smoke"
DEADLINE = time.monotonic() + float(os.environ.get("SMOKE_TIMEOUT_S", "600"))


class SmokeError(Exception):
    pass


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def compose_command(*args: str) -> list[str]:
    return [
        *os.environ.get("COMPOSE", "docker-compose").split(),
        "-p",
        PROJECT,
        "-f",
        str(HERE / "docker-compose.yml"),
        *args,
    ]


def compose(*args: str, capture: bool = False, check: bool = True) -> str:
    result = subprocess.run(
        compose_command(*args), cwd=HERE, text=True, capture_output=capture, timeout=max(remaining(), 30), check=False
    )
    if check and result.returncode != 0:
        raise SmokeError(f"docker-compose {' '.join(args)} exited {result.returncode}: {result.stderr or ''}")
    return result.stdout or ""


def remaining() -> float:
    left = DEADLINE - time.monotonic()
    if left <= 0:
        raise SmokeError("time is up")
    return left


def wait_for(what: str, probe, every_s: float = 2.0):
    """Call probe() until it returns a truthy value (returned) or the run's time is up."""
    step(f"waiting: {what}")
    while True:
        value = probe()
        if value:
            return value
        remaining()
        time.sleep(every_s)


def container_state(service: str) -> dict:
    ids = compose("ps", "-q", service, capture=True).split()
    if not ids:
        return {}
    out = subprocess.run(
        [os.environ.get("DOCKER", "docker"), "inspect", "-f", "{{json .State}}", ids[0]], capture_output=True, text=True
    )
    return json.loads(out.stdout) if out.returncode == 0 else {}


def all_healthy() -> bool:
    """True once the release step exited 0 and every service reports healthy. A crashed release step or service
    fails at once; "unhealthy" does not (a slow first start on a busy machine recovers), the deadline bounds it."""
    release = container_state("release")
    if release.get("Status") == "exited" and release.get("ExitCode") != 0:
        raise SmokeError(f"the release step exited {release.get('ExitCode')}")
    services = [name for name in compose("config", "--services", capture=True).split() if name != "release"]
    states = {service: container_state(service) for service in services}
    crashed = [name for name, state in states.items() if state.get("Status") in ("exited", "dead", "restarting")]
    if crashed:
        raise SmokeError(f"not running: {', '.join(crashed)}")
    health = {name: state.get("Health", {}).get("Status") for name, state in states.items()}
    return release.get("Status") == "exited" and all(status == "healthy" for status in health.values())


class Api:
    def __init__(self, base_url: str, token: str):
        self.base_url, self.token = base_url, token

    def call(self, method: str, path: str, body: dict | None = None, expect: tuple[int, ...] = (200,)) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Token {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        if status not in expect:
            raise SmokeError(f"{method} {path} answered {status}: {payload[:500]!r}")
        return json.loads(payload or b"{}")


def seeded_tokens() -> dict[str, str]:
    output = compose("exec", "-T", "web", "energyarb", "manage", "seed_sites", capture=True)
    tokens = dict(re.findall(r"API token for (\S+): (\S+)", output))
    if not {"admin", "demo"} <= tokens.keys():
        raise SmokeError(f"seed_sites printed no tokens for admin and demo:\n{output}")
    return tokens


def exercise(base_url: str) -> None:
    tokens = seeded_tokens()
    staff, customer = Api(base_url, tokens["admin"]), Api(base_url, tokens["demo"])

    step("initialize as staff: queues a price and weather refresh on the data worker")
    staff.call("POST", "/api/initialize")

    def prices_fresh():
        latest = staff.call("GET", "/api/latest-prices/")
        sites = latest.get("sites") or []
        return bool(sites) and not any(site["stale"] for site in sites) and latest.get("market")

    wait_for("the data worker to store fresh prices", prices_fresh)

    tiers = customer.call("GET", "/api/tiers/")["results"]
    tier = next((t for t in tiers if t["code"] == "standard"), tiers[0])["code"]
    quote = customer.call(
        "POST", "/api/sla/quotes/", {"tier": tier, "capacity_kw": "50", "duration_hours": 4}, expect=(200, 201)
    )
    step(f"quote {quote['id']}: {tier}, 50 kW for 4 h, total ${quote['total_usd']}")
    contract = customer.call("POST", "/api/contracts/", {"quote": quote["id"]}, expect=(201,))
    step(f"bought contract {contract['id']}: {contract['status']}")

    run = staff.call("POST", "/api/optimizer/runs/", {"strategy": "lp"}, expect=(202,))
    step(f"queued optimization run {run['id']}")

    def run_finished():
        current = staff.call("GET", f"/api/optimizer/runs/{run['id']}/")
        return current if current["status"] not in ("queued", "running") else None

    finished = wait_for("the optimizer worker to finish the run", run_finished)
    if finished["status"] != "succeeded":
        raise SmokeError(f"run {run['id']} ended {finished['status']}: {json.dumps(finished)[:800]}")
    step(f"run {run['id']} succeeded")
    placed = customer.call("GET", f"/api/contracts/{contract['id']}/")
    if not placed.get("placements"):
        raise SmokeError(f"contract {contract['id']} has no placements: {placed}")
    step(f"contract {contract['id']} placed on {', '.join(p['site'] for p in placed['placements'])}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    port = free_port()
    os.environ["WEB_PORT"] = str(port)
    started = time.monotonic()
    try:
        compose("down", "--volumes", "--remove-orphans", check=False)
        step(f"starting the stack (web on 127.0.0.1:{port})")
        compose("up", "-d")
        wait_for("every service healthy and the release step done", all_healthy, every_s=3)
        exercise(f"http://127.0.0.1:{port}")
        step(f"compose smoke passed in {time.monotonic() - started:.0f} s")
        return 0
    except (SmokeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as error:
        print(f"compose smoke FAILED: {error}", file=sys.stderr)
        subprocess.run(compose_command("ps"), cwd=HERE, timeout=60, check=False)
        subprocess.run(compose_command("logs", "--no-color", "--tail", "60"), cwd=HERE, timeout=60, check=False)
        return 1
    finally:
        step("stopping and removing the stack")
        down = compose_command("down", "--volumes", "--remove-orphans", "--timeout", "20")
        subprocess.run(down, cwd=HERE, timeout=180, check=False)


if __name__ == "__main__":
    sys.exit(main())
