"""Real Celery worker processes (not eager mode) take a queued refresh and write its rows.

Two brokers, as deployed:

- Redis (``REDIS_URL``) with PostgreSQL: the worker is started against this test run's own PostgreSQL test
  database, the test enqueues ``refresh_market_prices.delay()`` and waits for the rows. It needs both servers:
  without ``REDIS_URL`` (a plain local run on SQLite) it is skipped; with ``REDIS_URL`` set and Redis not
  answering it fails, because CI sets ``REDIS_URL`` precisely to run it.
- kombu's ``filesystem://`` transport, the embedded default of ``make run``: no server at all. The worker and a
  second process that enqueues the task (as the web server would) share only a folder and an SQLite file under
  ``tmp_path``, so this one runs everywhere.

Each worker consumes ``data,default,optimizer`` with the solo pool, writes its log to ``tmp_path`` (shown when the
test fails) and is stopped with SIGTERM (warm shutdown), then killed if it lingers.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from sites.models import EnergyPrice, MarketPrice, SourceFetch
from sites.services import REFRESH_WINDOW_INTERVALS
from sites.tasks import refresh_market_prices
from tests.factories import SiteFactory

pytestmark = pytest.mark.worker

BASE_DIR = Path(settings.BASE_DIR)
QUEUES = "data,default,optimizer"
# A bound on waiting for a subprocess (migrate, a task), not a speed target: generous, since the suite runs two
# workers beside it and migrate alone took over 60 s on a loaded machine.
TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 20.0
SEEDED_SITES = 10


def worker_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """This process's environment with the worker's own var dir; ``REDIS_URL`` only when passed in."""
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="energyarb.settings",
        ENERGYARB_VAR_DIR=str(tmp_path / "var"),
        DB_CONN_MAX_AGE="0",  # no connection outlives a task: the test database is dropped after the run
        PRICE_SOURCE="simulator",
        CELERY_TASK_ALWAYS_EAGER="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def log_tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def celery_worker(env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """A worker process on the given environment, stopped (warm shutdown) on exit."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "energyarb",
        "worker",
        "-Q",
        QUEUES,
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        f"pytest-{uuid.uuid4().hex[:8]}@%h",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(condition: Callable[[], bool], *, worker: subprocess.Popen, log_path: Path, what: str) -> None:
    """Poll ``condition`` for up to TIMEOUT_S; fail with the worker's log if it exits or time runs out."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        if worker.poll() is not None:
            pytest.fail(f"The worker exited with {worker.returncode} before {what}. Its log:\n{log_tail(log_path)}")
        time.sleep(0.25)
    pytest.fail(f"No {what} within {TIMEOUT_S:.0f} s. The worker's log:\n{log_tail(log_path)}")


def postgres_url(settings_dict: Mapping[str, object]) -> str:
    """A DATABASE_URL for the database this test process is connected to (the test database)."""
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = settings_dict.get("PASSWORD")
    credentials = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(str(settings_dict['NAME']), safe='')}"


def require_redis_and_postgres() -> str:
    """REDIS_URL when the Redis test can run; skips without REDIS_URL or PostgreSQL, fails when Redis is down."""
    redis_url = settings.REDIS_URL
    if not redis_url:
        pytest.skip("REDIS_URL is not set: the Redis worker test needs Redis and PostgreSQL (CI sets both).")
    if connection.vendor != "postgresql":
        pytest.skip(
            f"The Redis worker test needs PostgreSQL (a database the worker can share), not {connection.vendor}."
        )
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"REDIS_URL is set to {redis_url} but Redis does not answer: {exc}")
    return redis_url


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_redis_stores_the_prices_of_a_queued_refresh(tmp_path):
    redis_url = require_redis_and_postgres()
    sites = [SiteFactory(code="a_norway"), SiteFactory(code="b_oslo_two")]
    env = worker_environment(tmp_path, REDIS_URL=redis_url, DATABASE_URL=postgres_url(connection.settings_dict))
    log_path = tmp_path / "worker.log"
    expected_energy = REFRESH_WINDOW_INTERVALS * len(sites)

    with celery_worker(env, log_path) as worker:
        result = refresh_market_prices.delay()  # routed to the "data" queue, through Redis
        wait_until(
            lambda: (
                EnergyPrice.objects.count() == expected_energy
                and MarketPrice.objects.count() == REFRESH_WINDOW_INTERVALS
            ),
            worker=worker,
            log_path=log_path,
            what=f"{expected_energy} energy and {REFRESH_WINDOW_INTERVALS} market prices",
        )
        summary = result.get(timeout=TIMEOUT_S)  # the django-db result backend: the worker wrote it

    assert summary["source"] == "simulator"
    assert summary["rows_written"] == expected_energy + REFRESH_WINDOW_INTERVALS
    assert set(EnergyPrice.objects.values_list("site_id", flat=True)) == {site.pk for site in sites}
    assert list(SourceFetch.objects.values_list("succeeded", "rows_written")) == [(True, summary["rows_written"])]
    assert f"Task sites.tasks.refresh_market_prices[{result.id}] succeeded" in log_tail(log_path, lines=500)


def manage(env: Mapping[str, str], *args: str) -> str:
    """Run ``manage.py`` in a separate process (as the web server or an operator would); returns stdout."""
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if completed.returncode:
        pytest.fail(f"manage.py {' '.join(args)} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return completed.stdout


def test_a_worker_on_the_filesystem_transport_takes_a_task_queued_by_another_process(tmp_path):
    database = tmp_path / "energyarb.sqlite3"
    env = worker_environment(tmp_path, DATABASE_URL=f"sqlite:///{database}")  # no REDIS_URL: filesystem://
    log_path = tmp_path / "worker.log"
    expected_energy = REFRESH_WINDOW_INTERVALS * SEEDED_SITES

    def count(table: str) -> int:
        with sqlite3.connect(database, timeout=5) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    with celery_worker(env, log_path) as worker:  # starts while the database is prepared: it touches it per task
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        manage(env, "seed_sites")
        task_id = manage(
            env,
            "shell",
            "--no-imports",
            "--command",
            "from sites.tasks import refresh_market_prices; print(refresh_market_prices.delay().id)",
        ).split()[-1]
        wait_until(
            lambda: (
                count("sites_energyprice") == expected_energy and count("sites_marketprice") == REFRESH_WINDOW_INTERVALS
            ),
            worker=worker,
            log_path=log_path,
            what=f"{expected_energy} energy and {REFRESH_WINDOW_INTERVALS} market prices in {database.name}",
        )

    with sqlite3.connect(database) as db:
        status = db.execute("SELECT status FROM django_celery_results_taskresult WHERE task_id = ?", (task_id,))
        assert status.fetchall() == [("SUCCESS",)]
    assert "filesystem://" in log_tail(log_path, lines=500)
    assert list((tmp_path / "var" / "celery" / "queue").iterdir()) == []  # the message was consumed
