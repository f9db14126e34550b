"""Fault injection: the app keeps answering, loses nothing and never half-applies a decision.

Fault -> where it is proven (each test bounded by FAULT_TEST_LIMIT_S):

- Redis (cache and broker) crashes while the web app serves:
  test_redis_crash_while_serving_then_tasks_resume_and_nothing_is_lost
- a Redis that refuses connections (in process): test_cache_falls_back_to_local_memory_and_throttles_still_hold; one
  that forgets its scripts or drops the throttle's connection:
  test_a_throttle_hit_is_one_evalsha_on_a_connection_the_process_keeps
- the broker refuses a message a request enqueues: test_broker_down_answers_503_not_500
- the broker at its memory limit: test_a_worker_meeting_a_broker_at_its_memory_limit_waits_and_resumes, and a
  message taken there: test_a_message_taken_while_the_broker_is_at_its_memory_limit_is_kept_until_recorded
- a worker's pool process SIGKILLed mid price refresh:
  test_worker_killed_mid_price_refresh_leaves_no_gap_and_no_duplicate
- a whole worker SIGKILLed mid optimization, then restarted:
  test_worker_killed_mid_optimization_applies_nothing_half_then_recovers
- PostgreSQL restarts under load: test_postgres_restart_under_load_answers_503_then_recovers
- the database fails inside a view (in process): test_database_errors_answer_503_with_retry_after
- two beat schedulers by mistake: test_two_beat_schedulers_still_run_one_optimization_at_a_time
- inputs the engine refuses (a fleet without hardware):
  test_a_run_whose_inputs_cannot_be_built_fails_and_frees_the_running_slot
- Claude times out, answers 5xx, answers garbage: tests/optimizer/test_advisor.py (CLAUDE_FAULT_TESTS below,
  checked to exist by test_claude_faults_are_proven_by_the_advisor_tests)

Tests that need server processes run on PostgreSQL with private PostgreSQL / Redis instances on free ports
(tests/reliability/servers.py); on a plain SQLite run they skip, saying why; on PostgreSQL they fail if a
private server cannot start. The shared servers on 5432 / 6379 are never stopped.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from celery import Celery
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Sum
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.authtoken.models import Token

from optimizer.choices import RunStatus, RunTrigger
from optimizer.models import Allocation, OptimizationRun
from optimizer.services import fail_abandoned_runs
from sites.models import EnergyPrice, MarketPrice, SiteInventory, SourceFetch, WeatherReading
from sites.services import REFRESH_WINDOW_INTERVALS, refresh_market_prices, refresh_weather
from tests.factories import SiteFactory, UserFactory

from .servers import (
    PrivatePostgres,
    PrivateRedis,
    celery_worker,
    gunicorn,
    log_tail,
    postgres_url,
    require_postgresql,
    server_environment,
    start_worker,
    stop_process,
    wait_for,
    wait_ready,
)

FAULT_TEST_LIMIT_S = 60
TASK_TIMEOUT_S = 40.0
TIME_LIMIT_S = settings.CELERY_TASK_TIME_LIMIT

# The Claude advisor's faults are proven where the advisor is tested; this list keeps the reference honest.
CLAUDE_FAULT_TESTS = {
    "timeout": "test_timeout_is_unavailable_and_quick",
    "5xx": "test_server_error_leaves_the_plan_in_force",
    "overloaded (529)": "test_overloaded_api_leaves_the_plan_in_force",
    "unreachable": "test_unreachable_api_is_unavailable",
    "garbage reply": "test_unusable_reply_leaves_the_plan_and_says_why",
    "refused request": "test_refused_request_is_unavailable",
}


@pytest.fixture(autouse=True)
def bounded_in_time() -> Iterator[None]:
    """Every fault test ends within FAULT_TEST_LIMIT_S, or fails (its servers are still stopped on the way out)."""

    def expired(signum, frame):
        raise TimeoutError(f"fault test exceeded {FAULT_TEST_LIMIT_S} s")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(FAULT_TEST_LIMIT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def publisher(broker_url: str) -> Celery:
    """A Celery client on the private broker: what beat or the web server would send, without touching the
    test process's own app (configured for the shared Redis)."""
    app = Celery("fault-publisher", broker=broker_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
    return app


def staff_token() -> str:
    user = UserFactory(username="ops", is_staff=True, is_superuser=True)
    return Token.objects.create(user=user).key


def intervals_per_site() -> dict[int, list]:
    rows = EnergyPrice.objects.filter(site__isnull=False).order_by("site_id", "interval_start")
    series: dict[int, list] = {}
    for site_id, start in rows.values_list("site_id", "interval_start"):
        series.setdefault(site_id, []).append(start)
    return series


def assert_contiguous_without_duplicates(series: dict[int, list], sites: int) -> None:
    """Every site has the same intervals, 5 minutes apart, each once (the unique constraint backs the last)."""
    assert len(series) == sites
    reference = next(iter(series.values()))
    for starts in series.values():
        assert starts == reference
        assert len(set(starts)) == len(starts)
        assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(starts))
    assert MarketPrice.objects.count() == len(set(MarketPrice.objects.values_list("interval_start", flat=True)))


# In-process faults (run on every database) ------------------------------------------------------------------


def test_database_errors_answer_503_with_retry_after(db, monkeypatch, staff_api, staff_user, client):
    client.force_login(staff_user)

    def unreachable(self, *args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", unreachable)
    api = staff_api.get("/api/sites/")
    mara = client.get("/mara/prices")
    page = client.get("/")
    monkeypatch.undo()

    for response in (api, mara):
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "database_unavailable"
        assert response["Retry-After"] == "5"
    assert page.status_code == 503 and page["Content-Type"].startswith("text/html") and page["Retry-After"] == "5"
    assert staff_api.get("/api/sites/").status_code == 200  # and back


@pytest.mark.django_db(transaction=True)  # autocommit, as served: the enqueue runs inside the request
def test_broker_down_answers_503_not_500(monkeypatch, staff_api):
    from optimizer.tasks import run_optimization

    def refused(*args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(run_optimization, "apply_async", refused)
    response = staff_api.post("/api/optimize")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "broker_unavailable" and response["Retry-After"] == "5"
    # The run row was committed before the enqueue failed: it is kept, and swept once its task can no longer run.
    run = OptimizationRun.objects.get()
    assert run.status == RunStatus.QUEUED
    assert fail_abandoned_runs(now=timezone.now() + timedelta(minutes=11)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SKIPPED and "Never started" in run.error


def test_cache_falls_back_to_local_memory_and_throttles_still_hold(db, settings, monkeypatch, anon_api):
    from django.core.cache import cache
    from rest_framework.throttling import AnonRateThrottle

    from .servers import free_port

    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.ResilientRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2, "retry_after_s": 60},
        }
    }
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min"})
    cache.set("k", 1)
    assert cache.get("k") == 1 and cache.incr("k") == 2 and cache.add("k", 5) is False
    started = time.monotonic()
    statuses = [anon_api.get("/api/health").status_code for _ in range(2)]  # unthrottled
    statuses += [anon_api.get("/mara/prices").status_code for _ in range(4)]  # public, throttled per address
    assert time.monotonic() - started < 3.0  # the breaker: one failed connection attempt, not one per call
    assert statuses == [200, 200, 200, 200, 200, 429]


def test_a_run_whose_inputs_cannot_be_built_fails_and_frees_the_running_slot(db):
    """Found by the Redis fault test: sites without hardware made the engine refuse the problem, and the run
    stayed 'running', blocking every optimization until it was abandoned."""
    from optimizer.services import optimize_now

    SiteFactory(code="empty_site")
    now = timezone.now()
    refresh_market_prices(at=now)
    refresh_weather(at=now)
    run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.FAILED and run.error
    assert not OptimizationRun.objects.filter(status=RunStatus.RUNNING).exists()


def test_claude_faults_are_proven_by_the_advisor_tests():
    from tests.optimizer import test_advisor

    missing = {fault: name for fault, name in CLAUDE_FAULT_TESTS.items() if not hasattr(test_advisor, name)}
    assert missing == {}


# Two beat schedulers: two optimizations started at once on PostgreSQL ----------------------------------------


@pytest.fixture
def fleet_with_fresh_prices(transactional_db) -> None:
    call_command("seed_sites", stdout=StringIO())
    now = timezone.now()
    refresh_market_prices(at=now)
    refresh_weather(at=now)


@pytest.mark.django_db(transaction=True)
def test_two_beat_schedulers_still_run_one_optimization_at_a_time(fleet_with_fresh_prices, monkeypatch):
    require_postgresql()
    from optimizer import engine
    from optimizer.tasks import run_optimization

    solve = engine.run_strategy
    overlap = threading.Event()

    def slow_solve(*args, **kwargs):
        overlap.wait(timeout=10)  # hold the "running" slot until the other scheduler has tried to claim it
        return solve(*args, **kwargs)

    monkeypatch.setattr(engine, "run_strategy", slow_solve)
    start = threading.Barrier(2)
    outcomes: list[dict] = []

    def beat() -> None:
        try:
            start.wait(timeout=10)
            outcomes.append(run_optimization.apply().get())  # what each beat's scheduled entry runs
        finally:
            connections.close_all()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_for(
        lambda: OptimizationRun.objects.filter(status=RunStatus.SKIPPED).exists(),
        timeout_s=20,
        what="the second scheduler's run to be refused",
    )
    overlap.set()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcome["status"] for outcome in outcomes) == [RunStatus.SKIPPED, RunStatus.SUCCEEDED]
    skipped = OptimizationRun.objects.get(status=RunStatus.SKIPPED)
    assert "Another optimization was running" in skipped.error
    assert not Allocation.objects.filter(run=skipped).exists()
    assert not OptimizationRun.objects.filter(status=RunStatus.RUNNING).exists()


# Server processes: private Redis, gunicorn, Celery workers --------------------------------------------------


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    require_postgresql()
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def test_window_counter_on_redis_counts_one_window_then_opens_the_next(private_redis, settings):
    from django.core.cache import caches

    from core.cache import hit_window

    settings.CACHES = {"default": {"BACKEND": "core.cache.ResilientRedisCache", "LOCATION": private_redis.url(1)}}
    cache = caches.create_connection("default")

    hits = [hit_window(cache, "throttle-test", 1) for _ in range(3)]
    assert [count for count, _ in hits] == [1, 2, 3]
    assert all(0 < left <= 1 for _, left in hits)
    assert not cache.redis_is_down()  # answered by Redis, not by the local fallback
    time.sleep(1.1)
    assert hit_window(cache, "throttle-test", 1)[0] == 1


def test_a_throttle_hit_is_one_evalsha_on_a_connection_the_process_keeps(private_redis, settings, monkeypatch):
    """Every throttled API request counts a hit: EVALSHA on a connection the process keeps (core.cache.
    KeptConnection), not through redis-py's per-command layers (Script.__call__, Redis.execute_command) nor the
    pool's checkout, which cost ~0.1 ms each of a request's CPU (docs/api-performance.md), checked by one poll of
    its socket instead of redis-py's can_read (tests/reliability/test_kept_connection.py); forgotten scripts are
    loaded again, a connection the server dropped is reconnected, as redis-py does, and a forked process makes
    its own."""
    import redis
    from django.core.cache import caches
    from redis.connection import ConnectionPool

    from core import cache as core_cache
    from core.cache import hit_window

    settings.CACHES = {"default": {"BACKEND": "core.cache.ResilientRedisCache", "LOCATION": private_redis.url(1)}}
    cache = caches.create_connection("default")
    assert hit_window(cache, "throttle-test", 60)[0] == 1  # the first hit loads the script (SCRIPT LOAD)
    sent, checkouts = [], []
    monkeypatch.setattr(redis.Redis, "execute_command", lambda self, *args, **options: sent.append(args[0]))
    get_connection = ConnectionPool.get_connection
    monkeypatch.setattr(
        ConnectionPool, "get_connection", lambda self, *a, **k: checkouts.append(1) or get_connection(self, *a, **k)
    )
    polls = []  # redis-py's check of a connection (can_read: three system calls), made by ensure_connection
    monkeypatch.setattr(ConnectionPool, "ensure_connection", lambda self, connection: polls.append(connection))
    assert [hit_window(cache, "throttle-test", 60)[0] for _ in range(3)] == [2, 3, 4]
    assert sent == []  # EVALSHA went out on the kept connection itself
    assert checkouts == []  # which no hit took from the pool
    assert polls == []  # and checked with one poll of its socket, nothing pending
    monkeypatch.undo()

    admin = redis.Redis.from_url(private_redis.url(1))
    admin.script_flush()  # as a Redis restart forgets loaded scripts
    assert hit_window(cache, "throttle-test", 60)[0] == 5
    clients = {c["id"] for c in admin.client_list()} - {str(admin.client_id())}
    admin.client_kill_filter(_type="normal", skipme=True)  # the kept connection dropped by the server
    assert hit_window(cache, "throttle-test", 60)[0] == 6
    assert not cache.redis_is_down()  # all answered by Redis, not by the local fallback
    assert {c["id"] for c in admin.client_list()}.isdisjoint(clients)

    (kept,) = cache._kept.values()
    parents = kept._connection
    monkeypatch.setattr(core_cache.os, "getpid", lambda: -1)  # a forked child (gunicorn preloads the app)
    assert hit_window(cache, "throttle-test", 60)[0] == 7
    assert kept._connection is not parents  # the child made its own, never writing on its parent's socket
    assert parents.is_connected


def test_a_hit_whose_send_met_a_connection_the_server_reset_after_the_poll_is_sent_once_more(private_redis, settings):
    """The server dropped the kept connection after its poll found it idle (here: CLIENT KILL, then the reset a write
    to the closed connection gets back, both arriving between the poll and the send): the send fails, so EVALSHA
    never reached Redis and is sent once more on a new connection. The hit is counted once, by Redis, with no
    fallback. Fails when a send error goes to the cache's guard (the breaker opens, the hit is counted locally)."""
    import select

    import redis
    from django.core.cache import caches

    from core.cache import hit_window

    settings.CACHES = {"default": {"BACKEND": "core.cache.ResilientRedisCache", "LOCATION": private_redis.url(1)}}
    cache = caches.create_connection("default")
    assert hit_window(cache, "throttle-test", 60)[0] == 1
    (kept,) = cache._kept.values()
    connection = kept._connection
    stale, send = connection._sock, connection.send_packed_command
    admin = redis.Redis.from_url(private_redis.url(1))

    def reset_after_the_poll(command, check_health=True):
        if connection._sock is stale:
            admin.client_kill_filter(_type="normal", skipme=True)
            wait_for(lambda: select.select([stale], [], [], 0)[0], timeout_s=5, what="the server's FIN")
            stale.send(b"\r\n")  # to a closed connection: the server's kernel answers with a reset
            poll = select.poll()
            poll.register(stale, select.POLLERR)
            wait_for(lambda: poll.poll(0)[0][1] & select.POLLERR, timeout_s=5, what="the server's reset")
        return send(command, check_health)

    connection.send_packed_command = reset_after_the_poll
    assert hit_window(cache, "throttle-test", 60)[0] == 2
    assert not cache.redis_is_down()  # answered by Redis, not by the local fallback
    assert connection._sock is not stale and int(admin.get(cache.make_key("throttle-test"))) == 2  # counted once


def get_all(base: str, token: str) -> dict[str, int]:
    """What a visitor sees: API reads (token), public /mara/ data, the sign-in pages."""
    headers = {"Authorization": f"Token {token}"}
    paths = {
        "/api/sites/": headers,
        "/api/latest-prices/": headers,
        "/api/tiers/": headers,
        "/mara/prices": {},
        "/login/": {},
        "/admin/login/": {},
    }
    return {path: httpx.get(base + path, headers=h, timeout=10).status_code for path, h in paths.items()}


@pytest.mark.django_db(transaction=True)
def test_redis_crash_while_serving_then_tasks_resume_and_nothing_is_lost(private_redis, tmp_path):
    sites = [SiteFactory(code="a_oslo"), SiteFactory(code="b_texas", time_zone="America/Chicago")]
    token = staff_token()
    broker = private_redis.url(0)
    env = server_environment(
        tmp_path / "var", REDIS_URL=broker, DATABASE_URL=postgres_url(connection.settings_dict), DB_CONN_MAX_AGE="0"
    )
    send = publisher(broker)
    web_log, w1_log, w2_log = tmp_path / "web.log", tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    everything_ok = dict.fromkeys(("/api/sites/", "/api/latest-prices/", "/api/tiers/", "/mara/prices"), 200)
    everything_ok |= {"/login/": 200, "/admin/login/": 200}

    w1 = start_worker(env, w1_log, "default,optimizer")  # starts while gunicorn does
    w2 = None
    try:
        with gunicorn(env, web_log) as base:
            wait_ready(w1, w1_log)
            assert get_all(base, token) == everything_ok
            # Queued before the crash, for a queue whose worker is not running yet: must survive it.
            pending = [
                send.send_task(name, queue="data")
                for name in ("sites.tasks.refresh_market_prices", "sites.tasks.refresh_weather")
            ]

            private_redis.crash()
            w2 = start_worker(env, w2_log, "data")  # starts during the outage: it retries until Redis is back
            during = [get_all(base, token) for _ in range(3)]
            enqueue = httpx.post(f"{base}/api/optimize", headers={"Authorization": f"Token {token}"}, timeout=20)
            private_redis.start()

            assert during == [everything_ok] * 3, log_tail(web_log)
            assert enqueue.status_code == 503 and enqueue.json()["code"] == "broker_unavailable"
            assert enqueue.headers["Retry-After"] == "5"

            # The worker that lived through the outage reconnects by itself and takes new work.
            after = httpx.post(f"{base}/api/optimize", headers={"Authorization": f"Token {token}"}, timeout=20)
            assert after.status_code == 202, after.text
            run_id = after.json()["run_id"]
            wait_for(
                lambda: OptimizationRun.objects.get(pk=run_id).status not in (RunStatus.QUEUED, RunStatus.RUNNING),
                timeout_s=TASK_TIMEOUT_S,
                what="the worker to resume and take the run",
                log=w1_log,
            )
            assert w1.poll() is None

            # Nothing lost: the messages queued before the crash run once their worker is connected.
            wait_for(
                lambda: (
                    WeatherReading.objects.count() == 4 * len(sites)
                    and MarketPrice.objects.count() == REFRESH_WINDOW_INTERVALS
                ),
                timeout_s=TASK_TIMEOUT_S,
                what="the refreshes queued before the crash",
                log=w2_log,
            )
            assert get_all(base, token) == everything_ok
    finally:
        for worker in (w1, w2):
            if worker is not None:
                stop_process(worker)

    assert_contiguous_without_duplicates(intervals_per_site(), sites=len(sites))
    assert sum(len(v) for v in intervals_per_site().values()) == REFRESH_WINDOW_INTERVALS * len(sites)
    assert all(result.id for result in pending)
    # The run refused during the outage was recorded (queued), and is swept once its task can no longer run.
    refused = OptimizationRun.objects.exclude(pk=run_id).get()
    assert refused.status == RunStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_price_refresh_leaves_no_gap_and_no_duplicate(private_redis, tmp_path):
    """The pool process dies inside the refresh's transaction (OOM killer, SIGKILL): its rows roll back, the
    message comes back (acks_late + reject_on_worker_lost) and the retry stores each interval exactly once."""
    sites = [SiteFactory(code="a_oslo"), SiteFactory(code="b_texas", time_zone="America/Chicago")]
    marker, log = tmp_path / "paused.pid", tmp_path / "worker.log"
    env = server_environment(
        tmp_path / "var",
        REDIS_URL=private_redis.url(0),
        DATABASE_URL=postgres_url(connection.settings_dict),
        DB_CONN_MAX_AGE="0",
        FAULT_PAUSE_AT="sites.services:store_market_prices",
        FAULT_MARKER=str(marker),
    )

    with celery_worker(env, log, "data", launcher="tests.reliability.fault_worker") as worker:
        publisher(private_redis.url(0)).send_task("sites.tasks.refresh_market_prices", queue="data")
        wait_for(marker.exists, timeout_s=TASK_TIMEOUT_S, what="the refresh to reach its pause", log=log)
        time.sleep(0.2)
        child = int(marker.read_text())
        assert child != worker.pid  # the prefork pool process, not the worker's main process
        assert EnergyPrice.objects.count() == 0  # energy rows written but not committed: invisible
        os.kill(child, signal.SIGKILL)

        wait_for(
            lambda: MarketPrice.objects.count() == REFRESH_WINDOW_INTERVALS,
            timeout_s=TASK_TIMEOUT_S,
            what="the redelivered refresh to finish",
            log=log,
        )
        assert worker.poll() is None
    text = log_tail(log, lines=400)
    assert "WorkerLostError" in text or "SIGKILL" in text or "signal 9" in text, text

    assert_contiguous_without_duplicates(intervals_per_site(), sites=len(sites))
    assert EnergyPrice.objects.count() == REFRESH_WINDOW_INTERVALS * len(sites)
    assert list(SourceFetch.objects.values_list("succeeded", flat=True)) == [True]  # the killed try left nothing


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_optimization_applies_nothing_half_then_recovers(
    fleet_with_fresh_prices, private_redis, tmp_path
):
    """The whole worker dies while a plan is being stored and applied: nothing of it is visible (one
    transaction), the run is failed as abandoned once its time limit has passed, and the next run applies whole."""
    marker, log = tmp_path / "paused.pid", tmp_path / "worker.log"
    env = server_environment(
        tmp_path / "var",
        REDIS_URL=private_redis.url(0),
        DATABASE_URL=postgres_url(connection.settings_dict),
        DB_CONN_MAX_AGE="0",
        OPTIMIZER_RUN_LEASE_S="3",
        FAULT_PAUSE_AT="optimizer.services:_finish",
        FAULT_PAUSE_IF_ARG="succeeded",
        FAULT_MARKER=str(marker),
    )
    send = publisher(private_redis.url(0))
    running_before = dict(SiteInventory.objects.values_list("pk", "units_running"))
    killed = OptimizationRun.objects.create(trigger=RunTrigger.API)

    with celery_worker(env, log, "optimizer", launcher="tests.reliability.fault_worker") as worker:
        send.send_task("optimizer.tasks.run_optimization", kwargs={"run_id": killed.pk}, queue="optimizer")
        wait_for(marker.exists, timeout_s=TASK_TIMEOUT_S, what="the run to reach its pause", log=log)
        time.sleep(0.2)
        stop_process(worker, sig=signal.SIGKILL)  # the main process and its pool child, at once

    killed.refresh_from_db()
    assert killed.status == RunStatus.RUNNING  # claimed, never finished
    assert not Allocation.objects.filter(run=killed).exists()  # no half-applied allocation ...
    assert dict(SiteInventory.objects.values_list("pk", "units_running")) == running_before  # ... nor site state

    # Its lease (OPTIMIZER_RUN_LEASE_S, 3 s here) lapses with no worker renewing it; the next scheduled run frees
    # the slot and applies a whole plan on a restarted worker, long before the task's hard time limit.
    wait_for(
        lambda: OptimizationRun.objects.get(pk=killed.pk).lease_expires_at < timezone.now(),
        timeout_s=10,
        what="the killed run's lease to expire",
        log=log,
    )
    restarted_log = tmp_path / "worker-restarted.log"
    with celery_worker(env, restarted_log, "optimizer", launcher="tests.reliability.fault_worker"):
        send.send_task("optimizer.tasks.run_optimization", queue="optimizer")  # what beat sends
        wait_for(
            lambda: OptimizationRun.objects.filter(status=RunStatus.SUCCEEDED).exists(),
            timeout_s=TASK_TIMEOUT_S,
            what="the next run to succeed",
            log=restarted_log,
        )

    killed.refresh_from_db()
    assert killed.status == RunStatus.FAILED and "Abandoned" in killed.error
    good = OptimizationRun.objects.get(status=RunStatus.SUCCEEDED)
    assert good.is_applied
    allocated = {
        (row["site_id"], row["hardware_model_id"]): row["units"]
        for row in Allocation.objects.filter(run=good)
        .values("site_id", "hardware_model_id")
        .annotate(units=Sum("units_running"))
    }
    running = {
        (inv.site_id, inv.hardware_model_id): inv.units_running
        for inv in SiteInventory.objects.filter(units_running__gt=0)
    }
    assert allocated and running == allocated  # the plan stored is the plan applied, whole
    assert Allocation.objects.values("run").annotate(n=Count("id")).count() == 1


# PostgreSQL restarts under load ------------------------------------------------------------------------------


@pytest.fixture
def private_postgres(db) -> Iterator[PrivatePostgres]:
    """A private cluster with the schema of this run's (migrated) test database; `db` makes that one exist."""
    require_postgresql()
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        cluster.copy_schema_from(connection.settings_dict)
        yield cluster
    finally:
        cluster.destroy()


def test_postgres_restart_under_load_answers_503_then_recovers(private_postgres, tmp_path):
    token = secrets.token_hex(20)
    user_id = private_postgres.psql(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
        "is_active, date_joined) VALUES ('!', true, 'ops', '', '', '', true, true, now()) RETURNING id"
    ).splitlines()[0]
    private_postgres.psql(f"INSERT INTO authtoken_token (key, created, user_id) VALUES ('{token}', now(), {user_id})")
    # The anonymous rate is raised: four threads outrun 60/min, and a 429 is not what this test is about.
    env = server_environment(
        tmp_path / "var", DATABASE_URL=private_postgres.url, DB_CONN_MAX_AGE="60", API_THROTTLE_ANON="100000/min"
    )
    # Each endpoint needs the database: token auth, a public read, a page whose session cookie must be looked up.
    targets = {  # path: (headers, unused, statuses when the database is up)
        "/api/sites/": ({"Authorization": f"Token {token}"}, {}, {200}),
        "/mara/prices": ({}, {}, {200}),
        "/": ({"Cookie": f"{settings.SESSION_COOKIE_NAME}={'s' * 32}"}, {}, {302}),
    }
    log: list[tuple[str, str, int, str, str | None]] = []
    phase = {"now": "before"}
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, timeout=10, follow_redirects=False) as client:
            while not stop.is_set() and len(log) < 5000:
                for path, (headers, _, _) in targets.items():
                    response = client.get(path, headers=headers)
                    log.append(
                        (
                            phase["now"],
                            path,
                            response.status_code,
                            response.headers.get("content-type", ""),
                            response.headers.get("retry-after"),
                        )
                    )

    def seen(which: str, status: int, path: str | None = None) -> int:
        return sum(1 for p, pa, s, _, _ in log if p == which and s == status and (path is None or pa == path))

    with gunicorn(env, tmp_path / "web.log") as base:
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: seen("before", 200) >= 20, timeout_s=20, what="traffic before the restart")
            phase["now"] = "down"
            private_postgres.stop("fast")  # every connection is cut; new ones are refused
            wait_for(
                lambda: all(seen("down", 503, path) >= 3 for path in targets),
                timeout_s=15,
                what="503s while PostgreSQL is down",
                log=tmp_path / "web.log",
            )
            private_postgres.start()
            phase["now"] = "after"
            recovered = wait_for(
                lambda: all(seen("after", 200, p) + seen("after", 302, p) >= 5 for p in targets),
                timeout_s=20,
                what="recovery",
                log=tmp_path / "web.log",
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=15)

    statuses = Counter((path, status) for _, path, status, _, _ in log)
    allowed = {(path, status) for path, (_, _, ok) in targets.items() for status in ok | {503}}
    assert set(statuses) <= allowed, statuses  # never a 500, never anything else
    for _, path, status, content_type, retry_after in log:
        if status == 503:
            assert retry_after == "5"
            assert content_type.startswith("application/json" if path != "/" else "text/html"), (path, content_type)
    tail = [entry for entry in log if entry[0] == "after"][-len(targets) * 2 :]
    assert all(status != 503 for _, _, status, _, _ in tail), tail
    print(
        f"PostgreSQL restart: {len(log)} requests, {sum(1 for e in log if e[2] == 503)} answered 503, "
        f"recovered {recovered:.1f} s after the restart"
    )


def hold_at_limit(client) -> None:
    """Put Redis past its maxmemory for good: the limit set below what it already holds, so every command that may
    grow memory is refused with OOM, whatever Redis frees meanwhile. (Filling it with values to the limit left
    room now and then, a refused command's buffer freed, and the worker's writes went through.)"""
    client.config_set("maxmemory", 1)


@pytest.mark.django_db(transaction=True)
def test_a_worker_meeting_a_broker_at_its_memory_limit_waits_and_resumes(tmp_path):
    """Redis at its maxmemory with `noeviction` (the broker's policy, docs/deployment.md) refuses writes with
    OOM. A bare `celery worker` took that for an unrecoverable error and exited ("Unrecoverable error:
    OutOfMemoryError"). Now it retries like on a lost connection, and runs the waiting task once memory is freed."""
    require_postgresql()
    broker = PrivateRedis(tmp_path / "redis", "--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    broker.start()
    try:
        import redis

        SiteFactory(code="a_oslo")
        env = server_environment(
            tmp_path / "var", REDIS_URL=broker.url(0), DATABASE_URL=postgres_url(connection.settings_dict)
        )
        publisher(broker.url(0)).send_task("sites.tasks.refresh_weather", queue="data")
        client = redis.Redis.from_url(broker.url(0))
        hold_at_limit(client)
        log = tmp_path / "worker.log"
        worker = start_worker(env, log, "data")
        try:
            wait_for(
                lambda: b"maxmemory" in log.read_bytes() or worker.poll() is not None,
                timeout_s=TASK_TIMEOUT_S,
                what="the worker to meet the memory limit",
                log=log,
            )
            time.sleep(3)  # a worker that takes it for an unrecoverable error has exited by now
            assert worker.poll() is None, log_tail(log)
            assert WeatherReading.objects.count() == 0

            client.config_set("maxmemory", "4mb")  # memory freed: room under the limit again
            wait_for(
                lambda: WeatherReading.objects.exists(), timeout_s=TASK_TIMEOUT_S, what="the waiting task", log=log
            )
            assert worker.poll() is None
        finally:
            stop_process(worker)
    finally:
        broker.stop()


def test_a_message_taken_while_the_broker_is_at_its_memory_limit_is_kept_until_recorded(tmp_path):
    """A worker takes a message off its queue (BRPOP, which Redis allows at its maxmemory) and then records it as
    unacknowledged (ZADD + HSET, which Redis refuses with OOM there): kombu's Redis transport dropped the message
    when that record was refused, so a task sent before the broker filled up was lost for good, despite acks_late.
    Now the record is retried until the broker has room, and the message is delivered (at least once)."""
    import redis
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    from energyarb.celery import app as celery_app

    broker = PrivateRedis(tmp_path / "redis", "--maxmemory-policy", "noeviction")
    broker.start()
    try:
        client = redis.Redis.from_url(broker.url(0))
        queue = Queue("optimizer", Exchange("optimizer", type="direct"), routing_key="optimizer")
        received: list = []
        failures: list[BaseException] = []
        # The app's own connection (energyarb/celery.py picks the transport of redis:// URLs), as a worker opens it.
        with Connection(broker.url(0)) as producing, celery_app.connection_for_read(broker.url(0)) as consuming:
            Producer(producing.channel()).publish(
                {"run": 7}, exchange=queue.exchange, routing_key="optimizer", declare=[queue], serializer="json"
            )
            channel = consuming.channel()
            consumer = Consumer(
                channel,
                queues=[queue],
                accept=["json"],
                auto_declare=False,
                callbacks=[lambda body, message: received.append((body, message))],
            )
            consumer.consume()
            hold_at_limit(client)

            def drain() -> None:
                try:
                    consuming.drain_events(timeout=TASK_TIMEOUT_S)
                except BaseException as error:  # reported by the assertions below
                    failures.append(error)

            thread = threading.Thread(target=drain, daemon=True)
            thread.start()
            wait_for(lambda: client.llen("optimizer") == 0, timeout_s=10, what="the message to be taken")
            time.sleep(1)  # the record of the message is refused meanwhile
            assert received == []
            client.config_set("maxmemory", 0)  # room again
            thread.join(timeout=TASK_TIMEOUT_S)

            assert failures == [] and [body for body, _ in received] == [{"run": 7}]
            assert client.hlen("unacked") == 1  # recorded: a worker dying now leaves it to be redelivered
            received[0][1].ack()
            assert client.hlen("unacked") == 0
    finally:
        broker.stop()


def test_the_gunicorn_master_lets_no_redis_connection_cross_the_fork(private_redis, settings):
    """deploy/gunicorn.conf.py's when_ready disconnects the Redis cache (its pool and the kept connection) before
    the workers are forked: Django's caches.close_all() alone closes nothing for a Redis cache. The cache connects
    again on its next command."""
    import gc
    from types import SimpleNamespace

    import redis
    from django.core.cache import caches

    from core.cache import hit_window
    from tests.test_gunicorn_config import load_config_module

    settings.CACHES = {"default": {"BACKEND": "core.cache.ResilientRedisCache", "LOCATION": private_redis.url(1)}}
    cache = caches["default"]
    cache.set("before-fork", 1)
    assert hit_window(cache, "throttle-test", 60)[0] == 1
    admin = redis.Redis.from_url(private_redis.url(1))

    def cache_connections():
        return [c for c in admin.client_list() if c["id"] != str(admin.client_id())]

    assert len(cache_connections()) >= 2  # the pool's and the kept one
    try:
        load_config_module().when_ready(SimpleNamespace(cfg=SimpleNamespace(preload_app=True)))
    finally:
        gc.unfreeze()
    assert cache_connections() == []
    assert cache.get("before-fork") == 1 and hit_window(cache, "throttle-test", 60)[0] == 2
    assert not cache.redis_is_down()
