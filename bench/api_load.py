"""Load the SLA API the way customers do: quote, then buy the quote, from 64 concurrent clients.

Starts gunicorn (3 sync workers, with the deployment's deploy/gunicorn.conf.py: docs/deployment.md) on PostgreSQL on
a loopback port, after the database is migrated and seeded (the ten sites, tiers, the demo customer). Each client
loops: `POST
/api/sla/quotes/` for a small, short window somewhere in the next 30 days, then `POST /api/contracts/ {"quote":
id}`. Every answer is a decision: 201 (admitted / quoted) and 409 (capacity short) are both valid, counted
separately; anything else is an error. After a warm-up, three timed runs; the median run (by decisions per second)
is the headline. Finally it checks the invariant the API promises: no site's committed kW ever exceeds its SLA limit
(max committed share <= 100 %).

    .venv/bin/python bench/api_load.py [--seconds 20] [--runs 3] [--clients 64] [--workers 3] [--threads 1]
                                       [--keep-contracts]

DATABASE_URL (default postgres://postgres@127.0.0.1:5432/energyarb_bench, shared with other benchmarks) is
created if missing, migrated and seeded; the demo customer's quotes and contracts from earlier runs are deleted
first (nothing else is touched) unless --keep-contracts. REDIS_URL (default redis://127.0.0.1:6379/9) backs the
throttle cache, as in production; the throttles are raised for the benchmark, which is one customer sending
hundreds of requests per second.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/energyarb_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
TIERS = (("premium", 1), ("standard", 3), ("flexible", 3), ("spot", 3))  # (code, weight)


APPLICATION_NAME = "energyarb_api_load"  # tags the server's PostgreSQL sessions, to measure their CPU


def server_environment(args) -> dict[str, str]:
    separator = "&" if "?" in args.database_url else "?"
    return {
        **os.environ,
        "DATABASE_URL": f"{args.database_url}{separator}application_name={APPLICATION_NAME}",
        "REDIS_URL": args.redis_url,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-not-for-production"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # 409s are logged as warnings by django.request: not what is measured (BENCH_LOG_LEVEL=INFO shows them, and
        # admissions whose plan no longer fitted under the locks).
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR"),
        # The benchmark is one customer sending hundreds of requests per second: its rates are raised.
        "API_THROTTLE_USER": "1000000/s",
        "API_THROTTLE_CONTRACTS": "1000000/s",
        "SLA_CUSTOMER_SHARE_PCT": "100",  # and its cap lifted: it stands for many customers
        "DB_CONN_MAX_AGE": "600",
        "PYTHONPATH": str(ROOT),
    }


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database if it does not exist (never drops: other benchmarks share it); SQLite creates
    its file itself."""
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        return
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def delete_demo_commerce(username: str) -> None:
    """Forget the demo customer's quotes and contracts (and what hangs off them) from earlier runs."""
    from django.db import transaction

    from sla.models import (
        Contract,
        ContractDelivery,
        Downtime,
        Placement,
        PreemptionNotice,
        Quote,
        ServiceCredit,
    )

    with transaction.atomic():
        contracts = Contract.objects.filter(customer__user__username=username)
        for model in (ContractDelivery, Downtime, PreemptionNotice, Placement, ServiceCredit):
            model.objects.filter(contract__in=contracts).delete()
        Contract.history.filter(customer__user__username=username).delete()
        contracts.delete()
        Quote.objects.filter(customer__user__username=username).delete()


GROWING_TABLES = ("sla_quote", "sla_contract", "sla_historicalcontract", "sla_placement")


def vacuum(database_url: str) -> bool:
    """Do for the tables the load grows what autovacuum would between runs (VACUUM ANALYZE: statistics for the
    planner, the rows deleted before the benchmark reclaimed, the new rows marked visible); True if autovacuum
    is on.

    A run adds thousands of rows to tables that held none, and each benchmark deletes the previous one's: with
    autovacuum off (as on the machines here) PostgreSQL would keep planning for empty tables, scanning indexes
    full of dead rows and checking every new row's transaction, and the figures would measure the cluster's
    configuration, not the API. (Autovacuum analyzes and vacuums a table after its inserts pass a fifth of it.)"""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in GROWING_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        return conn.execute("SHOW autovacuum").fetchone()[0] == "on"


def prepare(args) -> str:
    """Migrate and seed the benchmark database (in this process); return the demo customer's token."""
    os.environ.update(server_environment(args))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    ensure_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_sites", stdout=open(os.devnull, "w"))  # noqa: SIM115
    username = os.environ.get("SEED_CUSTOMER_USERNAME", "demo")
    if not args.keep_contracts:
        delete_demo_commerce(username)
    token = Token.objects.get(user__username=username).key
    connections.close_all()
    vacuum(args.database_url)
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"  # the deployment's: preloading, gc, access log, recycling


def gunicorn_command(args, port: int) -> list[str]:
    """gunicorn as deployed (deploy/gunicorn.conf.py), with the benchmark's worker count and class on loopback."""
    return [
        str(Path(sys.executable).with_name("gunicorn")),
        "energyarb.wsgi:application",
        "--config",
        str(GUNICORN_CONFIG),
        "--workers",
        str(args.workers),
        "--worker-class",
        "gthread" if args.threads > 1 else "sync",
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]


def start_gunicorn(args, port: int) -> subprocess.Popen:
    """The server, its access log written as deployed but to /dev/null (it would drown the figures)."""
    server = subprocess.Popen(
        gunicorn_command(args, port), cwd=ROOT, env=server_environment(args), stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited with {server.returncode}") from None
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("gunicorn did not start listening within 30 s")


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # connection errors and timeouts

    def count(self, status: int, elapsed_ms: float) -> None:
        self.latencies_ms.append(elapsed_ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def decisions(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in (200, 201, 409))

    @property
    def errors(self) -> int:
        return self.failures + sum(n for status, n in self.statuses.items() if status not in (200, 201, 409))


TIER_CODES, TIER_WEIGHTS = [code for code, _ in TIERS], [weight for _, weight in TIERS]


def random_request(rng: random.Random, now: datetime) -> dict:
    tier = rng.choices(TIER_CODES, weights=TIER_WEIGHTS)[0]
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=rng.randint(2, 30 * 24))
    return {
        "tier": tier,
        "capacity_kw": str(rng.choice((1, 2, 5, 10, 20, 50))),
        "starts_at": start.isoformat(),
        "duration_hours": str(rng.randint(1, 4)),
    }


QUOTES, CONTRACTS = "/api/sla/quotes/", "/api/contracts/"
STUCK_AFTER_S = 60.0  # a request still unanswered this long after the run's end counts as a failure


class Customer:
    """One client's state: quote, then buy the quote (one HTTP/1.1 connection per request), until the run ends."""

    __slots__ = ("began", "chunks", "expected", "path", "pending", "received", "rng", "sock")

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.sock: socket.socket | None = None
        self.path, self.pending, self.chunks, self.began = QUOTES, b"", [], 0.0
        # bytes of the answer received so far, and its full length once its head is in (None before; -1 when the
        # head announces no usable Content-Length: then the answer ends at the server's EOF)
        self.received, self.expected = 0, None


class LoadRun:
    """Customers as state machines on one epoll loop: real HTTP/1.1 requests, each on a new connection
    (`Connection: close`, as gunicorn's sync workers do anyway), every answer read to its end and checked (status
    line, Content-Length against the body read, the quote's id).

    An answer ends when its head and the Content-Length bytes of its body are in, and the client closes the
    connection at once, as a browser or a proxy (nginx with `Connection: close` upstream) does: it does not wait
    for the server's FIN. A gunicorn sync worker, after each answer, shuts its side and waits (up to 2 s) for the
    client to close (`gunicorn.util.close_graceful`), so a client that waited for the server's EOF first held each
    worker for one more trip through this loop per request. An answer without a Content-Length is read to the
    server's EOF; one cut short (EOF before its length) is still a failure.

    The load generator shares the machine's two cores with the server it measures, so its CPU per request is
    kept small: no asyncio streams, transports or futures, one socket and a few system calls per request. It
    costs 0.3-0.45 ms of CPU per request, about half of it the kernel's TCP work for the new connection, where the
    asyncio-streams client it replaced cost 0.66-0.93 ms (printed as "load generator"; docs/api-performance.md)."""

    def __init__(self, port: int, token: str, tally: Tally, stop_at: float):
        self.address = ("127.0.0.1", port)
        self.head = (
            f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Token {token}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\nContent-Length: "
        )
        self.tally, self.stop_at = tally, stop_at
        self.poller = select.epoll()
        self.waiting: dict[int, Customer] = {}  # socket fd -> the customer whose answer it carries
        self.ready: list[Customer] = []  # customers about to start a quote-and-buy pair

    def run(self, customers: list[Customer]) -> None:
        self.ready.extend(customers)
        while self.waiting or self.ready:
            while self.ready and time.monotonic() < self.stop_at:
                customer = self.ready.pop()
                self.send(customer, QUOTES, random_request(customer.rng, datetime.now(UTC)))
            if not self.waiting:
                break
            for fd, _ in self.poller.poll(1.0):
                customer = self.waiting[fd]
                if customer.pending:
                    self.write(customer)
                else:
                    self.read(customer)
            if self.waiting and time.monotonic() > self.stop_at + STUCK_AFTER_S:
                for customer in list(self.waiting.values()):
                    self.fail(customer)
        self.poller.close()

    def next_pair(self, customer: Customer) -> None:
        self.ready.append(customer)  # started by the loop: a failing connection never recurses

    def send(self, customer: Customer, path: str, body: dict) -> None:
        payload = json.dumps(body).encode()
        customer.path, customer.chunks, customer.received, customer.expected = path, [], 0, None
        customer.pending = f"POST {path} {self.head}{len(payload)}\r\n\r\n".encode() + payload
        customer.began = time.perf_counter()
        sock = customer.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        self.waiting[sock.fileno()] = customer
        if sock.connect_ex(self.address) not in (0, errno.EINPROGRESS):
            self.fail(customer)
            return
        # On loopback the handshake is usually done when connect returns: send at once, else when writable.
        self.poller.register(sock, select.EPOLLOUT)
        self.write(customer)

    def write(self, customer: Customer) -> None:
        sock = customer.sock
        try:
            sent = sock.send(customer.pending)
        except (BlockingIOError, InterruptedError):
            return  # still connecting: EPOLLOUT says when
        except OSError:
            self.fail(customer)
            return
        customer.pending = customer.pending[sent:]
        if not customer.pending:
            self.poller.modify(sock, select.EPOLLIN)

    def read(self, customer: Customer) -> None:
        try:
            data = customer.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.fail(customer)
            return
        if data:
            customer.chunks.append(data)
            customer.received += len(data)
            if customer.expected is None:
                customer.expected = answer_length(b"".join(customer.chunks))
            if customer.expected is None or customer.expected < 0 or customer.received < customer.expected:
                return  # the rest of the answer, or the server's EOF, is still to come
        elapsed_ms = (time.perf_counter() - customer.began) * 1000
        self.close(customer)
        self.answered(customer, b"".join(customer.chunks), elapsed_ms)

    def answered(self, customer: Customer, response: bytes, elapsed_ms: float) -> None:
        """Check the whole answer; count it; go on with the purchase after a quote, else with a new pair."""
        head, _, content = response.partition(b"\r\n\r\n")
        try:
            status = checked_status(head, content)
            quote = json.loads(content)["id"] if status == 201 and customer.path == QUOTES else None
        except (ValueError, KeyError, TypeError):
            self.tally.failures += 1
            self.next_pair(customer)
            return
        self.tally.count(status, elapsed_ms)
        if quote is not None:
            self.send(customer, CONTRACTS, {"quote": quote})
        else:
            self.next_pair(customer)

    def fail(self, customer: Customer) -> None:
        self.close(customer)
        self.tally.failures += 1
        self.next_pair(customer)

    def close(self, customer: Customer) -> None:
        sock, customer.sock = customer.sock, None
        if sock is not None:
            del self.waiting[sock.fileno()]
            sock.close()  # leaves the epoll set with it


def content_length(head: bytes) -> int | None:
    """The Content-Length a response head (status line and headers, without the blank line) announces: None when it
    announces none, ValueError when it is not a number."""
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        return None
    stop = lowered.find(b"\r\n", at + 2)
    return int(lowered[at + 17 : stop if stop >= 0 else None])


def answer_length(received: bytes) -> int | None:
    """The full length in bytes (head and body) of the answer that begins with `received`: None while its head is
    incomplete, -1 when the head has no Content-Length that is a number (the answer then ends at EOF)."""
    end = received.find(b"\r\n\r\n")
    if end < 0:
        return None
    try:
        length = content_length(received[:end])
    except ValueError:
        return -1
    return -1 if length is None else end + 4 + length


def checked_status(head: bytes, content: bytes) -> int:
    """The status of a complete HTTP/1.1 answer: a status line and a Content-Length equal to the body received
    (ValueError otherwise: a truncated or malformed answer is a failure, not a decision)."""
    if not head.startswith(b"HTTP/1.1 "):
        raise ValueError("not an HTTP/1.1 answer")
    length = content_length(head)
    if length is None:
        raise ValueError("no Content-Length")
    if length != len(content):
        raise ValueError("the body is not the length the answer announced")
    return int(head[9:12])


def run_load(*, port: int, token: str, clients: int, seconds: float, seed: int) -> tuple[Tally, float]:
    tally = Tally()
    began = time.monotonic()
    LoadRun(port, token, tally, began + seconds).run([Customer(seed * 1000 + n) for n in range(clients)])
    return tally, time.monotonic() - began


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds consumed so far by each of these processes still alive (from /proc; Linux only)."""
    tick = os.sysconf("SC_CLK_TCK")
    return {pid: (int(f[11]) + int(f[12])) / tick for pid in pids if (f := _stat_fields(pid)) is not None}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by these processes (from /proc; Linux only)."""
    return sum(cpu_by_pid(pids).values())


def workers_cpu_seconds(master: int) -> float:
    """CPU seconds of the master's workers so far, alive or already reaped: a worker recycled during a run
    (max_requests) took its CPU with it from /proc, and the master's children's time (cutime + cstime) holds it."""
    fields = _stat_fields(master)
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK") if fields else 0.0
    return cpu_seconds(worker_pids(master)) + reaped


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `cpu_by_pid` readings by the processes alive at the second: one that started
    meanwhile counts whole, one that ended meanwhile is lost (not subtracted: the figure never goes negative)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def backend_pids(database_url: str) -> list[int]:
    """PostgreSQL backends serving the benchmark's server: tagged with APPLICATION_NAME and connected to its own
    database (another benchmark on the same cluster, on another database, is not counted)."""
    import psycopg

    parsed = urlparse(database_url)
    admin = parsed._replace(path="/postgres", query="").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
            (APPLICATION_NAME, parsed.path.lstrip("/")),
        )
        return [pid for (pid,) in rows]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def max_committed_share() -> tuple[float, str]:
    """Largest peak of committed kW over SLA limit on any site, over all time (percent), and that site."""
    from django.db import connections

    from sla.capacity import peak_kw
    from sla.models import Placement
    from sla.services import candidate_sites, load_bookings

    rooms = candidate_sites(lock=False)
    first = Placement.objects.order_by("valid_from").values_list("valid_from", flat=True).first()
    if first is None:
        return 0.0, "-"
    load_bookings(rooms, start=first, end=None)
    worst = max(rooms, key=lambda r: peak_kw(r.bookings, first, datetime.max.replace(tzinfo=UTC)) / r.limit_kw)
    share = peak_kw(worst.bookings, first, datetime.max.replace(tzinfo=UTC)) / worst.limit_kw * 100
    connections.close_all()
    return float(share), worst.code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each timed run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (deployed: 3 sync workers)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread workers when > 1)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--keep-contracts", action="store_true", help="keep the demo's contracts of earlier runs")
    args = parser.parse_args()

    token = prepare(args)
    port = free_port()
    server = start_gunicorn(args, port)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        kind = f"gthread workers x {args.threads} threads" if args.threads > 1 else "sync workers"
        print(f"gunicorn: {args.workers} {kind} on {base}; {args.clients} clients; DB {args.database_url}")
        run_load(port=port, token=token, clients=args.clients, seconds=args.warmup, seed=0)
        for run in range(1, args.runs + 1):
            if not vacuum(args.database_url) and run == 1:
                print("autovacuum is off on this cluster: the tables the load grows are vacuumed before each run")
            before = workers_cpu_seconds(server.pid), cpu_by_pid(backend_pids(args.database_url)), time.process_time()
            tally, elapsed = run_load(port=port, token=token, clients=args.clients, seconds=args.seconds, seed=run)
            count = max(len(tally.latencies_ms), 1)
            worker_ms = (workers_cpu_seconds(server.pid) - before[0]) * 1000 / count
            database_ms = cpu_since(before[1], cpu_by_pid(backend_pids(args.database_url))) * 1000 / count
            client_ms = (time.process_time() - before[2]) * 1000 / count
            server_cpu_ms = worker_ms + database_ms
            rate = len(tally.latencies_ms) / elapsed
            results.append((rate, tally, elapsed, server_cpu_ms))
            print(
                f"run {run}: {rate:7.1f} requests/s  {tally.decisions / elapsed:7.1f} decisions/s  "
                f"p50 {percentile(tally.latencies_ms, 50):6.1f} ms  p99 {percentile(tally.latencies_ms, 99):6.1f} ms  "
                f"201 {tally.statuses.get(201, 0)}  409 {tally.statuses.get(409, 0)}  errors {tally.errors}  "
                f"server CPU/request {worker_ms:.1f} ms workers + {database_ms:.1f} ms PostgreSQL "
                f"(load generator {client_ms:.1f} ms)  "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    rate, tally, elapsed, server_cpu_ms = sorted(results, key=lambda r: r[0])[len(results) // 2]
    share, site = max_committed_share()
    print(
        f"median run: {rate:.1f} requests/s, {tally.decisions / elapsed:.1f} decisions/s, "
        f"p50 {percentile(tally.latencies_ms, 50):.1f} ms, p99 {percentile(tally.latencies_ms, 99):.1f} ms, "
        f"errors {sum(r[1].errors for r in results)} (all runs), "
        f"409 refusals {tally.statuses.get(409, 0)} of {len(tally.latencies_ms)}"
    )
    print(
        f"server CPU per request {server_cpu_ms:.1f} ms: at most {2000 / server_cpu_ms:.0f} requests/s if two cores "
        "were free for the workers and PostgreSQL alone"
    )
    print(f"max committed share of any site: {share:.2f} % ({site})")
    print(f"mean decisions/s over runs: {statistics.mean(r[1].decisions / r[2] for r in results):.1f}")
    if share > 100.0 + 1e-9 or any(r[1].errors for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
