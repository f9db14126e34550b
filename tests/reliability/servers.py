"""Private servers for fault tests: a PostgreSQL cluster, a Redis, gunicorn and Celery workers, all on free ports.

The shared PostgreSQL (5432) and Redis (6379) serve every engineer's test runs and are never stopped here. A
fault test that must stop a server starts its own: `PrivatePostgres` (initdb into a temporary directory owned by
the postgres OS user, started with pg_ctl) or `PrivateRedis` (redis-server as a child process), and kills only
that. Every wait is bounded; every process started here is stopped on exit, by its own pid.

Policy (see `require_postgresql`): these tests need PostgreSQL (a database the server processes can share). On a
plain SQLite run they skip with the reason; with DATABASE_URL on PostgreSQL a server that cannot start fails the
test, never skips it.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
PG_BIN = Path(os.environ.get("PRIVATE_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 30.0
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
STOP_TIMEOUT_S = 15.0


def require_postgresql() -> None:
    """Skip on SQLite (nothing to share with server processes); on PostgreSQL the test must run."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "Fault injection needs PostgreSQL and private PostgreSQL/Redis servers; this is a plain "
            f"{connection.vendor} run (set DATABASE_URL=postgres://... as CI does)."
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str, log: Path | None = None) -> float:
    """Poll until `condition()`; returns the seconds waited, fails with `log`'s tail after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if condition():
                return time.monotonic() - started
        except Exception:  # a server still starting refuses connections: keep polling
            pass
        time.sleep(0.1)
    pytest.fail(f"No {what} within {timeout_s:.0f} s.\n{log_tail(log) if log else ''}")


def log_tail(path: Path | None, lines: int = 60) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen, *, sig: int = signal.SIGTERM) -> None:
    """Stop one process we started (its whole session when it leads one), by pid; kill it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def postgres_url(settings_dict: Mapping[str, object]) -> str:
    """A DATABASE_URL for a database described by Django connection settings (e.g. this run's test database)."""
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = settings_dict.get("PASSWORD")
    credentials = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(str(settings_dict['NAME']), safe='')}"


def server_environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    """This process's environment for a web or worker process of the project (own var dir, no REDIS_URL unless
    given). DEBUG=1 only so that pages render without `collectstatic`; nothing under test depends on it."""
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="energyarb.settings",
        ENERGYARB_VAR_DIR=str(var_dir),
        DEBUG="1",
        PRICE_SOURCE="simulator",
        WEATHER_SOURCE="simulator",
        CELERY_TASK_ALWAYS_EAGER="0",
        ANTHROPIC_API_KEY="",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


# PostgreSQL -------------------------------------------------------------------------------------------------


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster on a free port, in a temporary directory owned by the postgres user."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.fail(f"PostgreSQL server binaries are missing at {PG_BIN} (apt-get install postgresql-15).")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="energyarb-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/energyarb"

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        command = [*(["runuser", "-u", "postgres", "--"] if self._as_postgres else []), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def _check(self, completed: subprocess.CompletedProcess, what: str) -> None:
        if completed.returncode:
            pytest.fail(f"{what} failed ({completed.returncode}):\n{completed.stderr}\n{log_tail(self.log)}")

    def init(self) -> None:
        self._check(
            self._run(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ),
            "initdb",
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=60"
        completed = self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "30", "start"
        )
        self._check(completed, "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def psql(self, sql: str, database: str = "energyarb") -> str:
        completed = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        self._check(completed, f"psql {sql[:60]!r}")
        return completed.stdout.strip()

    def copy_schema_from(self, settings_dict: Mapping[str, object]) -> None:
        """Create database `energyarb` with the schema of the given (migrated) database: faster than migrating."""
        self.psql("CREATE DATABASE energyarb", database="postgres")
        dump = subprocess.run(
            [str(PG_BIN / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", postgres_url(settings_dict)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        self._check(dump, "pg_dump --schema-only")
        load = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "energyarb",
            ],
            input=dump.stdout,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        self._check(load, "loading the schema")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# Redis ------------------------------------------------------------------------------------------------------


class PrivateRedis:
    """redis-server on a free port, as a child process. Append-only with fsync on every write, as a broker
    should be configured (docs/deployment.md): a crash (SIGKILL) then loses no queued message."""

    def __init__(self, root: Path, *extra: str) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is missing (apt-get install redis-server).")
        self.extra = extra  # more redis-server options, e.g. ("--maxmemory", "2mb")
        self.port = free_port()
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = root / "redis.log"
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.root),
            *self.extra,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        wait_for(client.ping, timeout_s=START_TIMEOUT_S, what=f"Redis on port {self.port}", log=self.log)

    def crash(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the append-only file already holds survives."""
        if self.process is not None:
            stop_process(self.process, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# gunicorn and Celery workers --------------------------------------------------------------------------------


@contextmanager
def gunicorn(env: Mapping[str, str], log: Path, *, workers: int = 2, threads: int = 4) -> Iterator[str]:
    """The project's WSGI app under gunicorn (as deployed) on a free port; yields its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "energyarb.wsgi:application",
        "--config",
        "deploy/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "30",
        "--graceful-timeout",
        "5",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        def answering() -> bool:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_tail(log)}")
            return httpx.get(f"{base}/login/", timeout=2).status_code == 200

        wait_for(answering, timeout_s=START_TIMEOUT_S * 2, what=f"gunicorn answering on {base}", log=log)
        yield base
    finally:
        stop_process(process)


def worker_command(queues: str, *, pool: str = "prefork", launcher: str | None = None) -> list[str]:
    entry = ["-m", launcher] if launcher else ["-m", "celery"]
    return [
        sys.executable,
        *entry,
        "-A",
        "energyarb",
        "worker",
        "-Q",
        queues,
        "--pool",
        pool,
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        f"fault-{uuid.uuid4().hex[:8]}@%h",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--prefetch-multiplier",
        "1",
    ]


def start_worker(env: Mapping[str, str], log: Path, queues: str, **kwargs) -> subprocess.Popen:
    """A Celery worker in its own session (so a test can SIGKILL the whole worker); see `wait_ready`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            worker_command(queues, **kwargs),
            cwd=BASE_DIR,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(process: subprocess.Popen, log: Path) -> None:
    wait_for(
        lambda: b"ready." in log.read_bytes() or process.poll() is not None,
        timeout_s=START_TIMEOUT_S * 2,
        what="a ready worker",
        log=log,
    )
    if process.poll() is not None:
        pytest.fail(f"The worker exited with {process.returncode}:\n{log_tail(log)}")


@contextmanager
def celery_worker(env: Mapping[str, str], log: Path, queues: str, **kwargs) -> Iterator[subprocess.Popen]:
    """A ready worker, stopped (warm shutdown, then SIGKILL if it lingers) on exit."""
    process = start_worker(env, log, queues, **kwargs)
    try:
        wait_ready(process, log)
        yield process
    finally:
        stop_process(process)
