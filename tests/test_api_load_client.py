"""bench/api_load.py's load generator: real HTTP/1.1 requests, one new connection each, every answer read to its
end and checked, against a loopback server that answers as the API does (and, on cue, wrongly)."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def api_load():
    sys.path.insert(0, str(BENCH))
    try:
        import api_load

        yield api_load
    finally:
        sys.path.remove(str(BENCH))


def answer(status: str, body: bytes, *, length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    head = f"HTTP/1.1 {status}\r\nServer: test\r\nConnection: close\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {length}\r\n\r\n".encode() + body


class Server:
    """Answers each connection's one request from `reply(method, path, headers, body)`, then closes it."""

    def __init__(self, reply, *, wait_for_client_close=False):
        self.reply, self.requests, self.connections = reply, [], 0
        # like a gunicorn sync worker: after the answer, no FIN until the client has closed (or 5 s have passed)
        self.wait_for_client_close, self.closed_by_client = wait_for_client_close, []
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:])
                while len(body) < int(headers["Content-Length"]):
                    body += conn.recv(65536)
                method, path, version = lines[0].split(" ")
                self.requests.append((method, path, version, headers, json.loads(body)))
                conn.sendall(self.reply(path, len(self.requests)))
                if self.wait_for_client_close:
                    self.closed_by_client.append(self.client_closes(conn))
                conn.shutdown(socket.SHUT_WR)

    @staticmethod
    def client_closes(conn) -> bool:
        conn.settimeout(5.0)  # only bounds the failure: a client that waits for our FIN would wait forever
        try:
            return conn.recv(1) == b""
        except OSError:
            return False

    def close(self):
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux), so the last connection is counted
        self.listener.close()
        self.thread.join(10)


def run(api_load, reply, *, clients=4, seconds=0.3, wait_for_client_close=False):
    server = Server(reply, wait_for_client_close=wait_for_client_close)
    try:
        tally, _ = api_load.run_load(port=server.port, token="t0ken", clients=clients, seconds=seconds, seed=1)
    finally:
        server.close()
    return tally, server


def test_each_quote_is_bought_by_its_id_over_new_http_1_1_connections(api_load):
    def reply(path, n):
        if path == "/api/sla/quotes/":
            return answer("201 Created", json.dumps({"id": n, "tier": "spot", "pad": "x" * 70000}).encode())
        return (
            answer("409 Conflict", b'{"detail": "short", "code": "capacity"}')
            if n % 4 == 0
            else answer("201 Created", b'{"id": 9}')
        )

    tally, server = run(api_load, reply)
    assert tally.errors == 0 and tally.decisions == len(server.requests) == server.connections > 8
    quotes = {n: body for n, (_, path, _, _, body) in enumerate(server.requests, 1) if path == "/api/sla/quotes/"}
    for method, path, version, headers, body in server.requests:
        assert (method, version) == ("POST", "HTTP/1.1")
        assert headers["Authorization"] == "Token t0ken" and headers["Connection"] == "close"
        assert headers["Content-Type"] == "application/json"
        if path == "/api/contracts/":
            assert body["quote"] in quotes  # the id the quote's (70 kB, several reads) answer carried
        else:
            assert set(body) == {"tier", "capacity_kw", "starts_at", "duration_hours"}
    assert tally.statuses[409] > 0 and tally.statuses[201] > 0


def test_the_client_closes_once_it_has_the_whole_answer_without_waiting_for_the_servers_fin(api_load):
    """A gunicorn sync worker waits for the client's close after each answer (gunicorn.util.close_graceful): the
    client ends an answer by its Content-Length and closes at once, as a proxy does (here the server never sends
    its FIN before the client has closed)."""

    def reply(path, n):
        if path == "/api/sla/quotes/":
            return answer("201 Created", json.dumps({"id": n, "pad": "x" * 70000}).encode())
        return answer("201 Created", b'{"id": 9}')

    tally, server = run(api_load, reply, clients=2, seconds=0.2, wait_for_client_close=True)
    assert tally.errors == 0 and tally.decisions == len(server.requests) > 2
    assert server.closed_by_client == [True] * len(server.requests)


def test_an_answer_without_content_length_is_read_to_the_servers_eof_and_still_fails(api_load):
    wrong = b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\n" + b'{"id": 1}'
    tally, server = run(api_load, lambda path, n: wrong, clients=2, seconds=0.2)
    assert len(server.requests) > 0 and tally.decisions == 0 and tally.failures == len(server.requests)


@pytest.mark.parametrize("length", [b"12", b"x", b"-3"])
def test_answer_length_is_known_once_the_head_is_in(api_load, length):
    head = b"HTTP/1.1 201 Created\r\nContent-Length: " + length + b"\r\nServer: t\r\n\r\n"
    assert api_load.answer_length(head[:-1]) is None
    expected = {b"12": len(head) + 12, b"x": -1, b"-3": len(head) - 3}[length]
    assert api_load.answer_length(head) == api_load.answer_length(head + b"{}") == expected
    assert api_load.answer_length(b"HTTP/1.1 200 OK\r\nServer: t\r\n\r\n{}") == -1


@pytest.mark.parametrize(
    "wrong",
    [
        answer("201 Created", b'{"id": 1}', length=50),  # cut short: fewer bytes than announced
        answer("201 Created", b'{"id": 1}')[:-3],
        answer("201 Created", b'{"id": 1}') + b"more",  # longer than announced
        answer("201 Created", b'{"id": 1}', length=-3),
        b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\n{}",  # no Content-Length
        answer("201 Created", b'{"no id": 1}'),  # a quote without its id
        b"garbage",
        b"",  # closed without an answer
    ],
)
def test_an_answer_that_is_incomplete_or_malformed_is_a_failure_not_a_decision(api_load, wrong):
    tally, server = run(api_load, lambda path, n: wrong, clients=2, seconds=0.2)
    assert len(server.requests) > 0
    assert tally.decisions == 0 and tally.failures == len(server.requests)


def test_an_answer_of_another_status_is_counted_as_an_error(api_load):
    tally, server = run(api_load, lambda path, n: answer("500 Internal Server Error", b"{}"), clients=2, seconds=0.2)
    assert tally.errors == len(server.requests) > 0 and tally.decisions == 0 and tally.failures == 0


def test_a_refused_connection_is_a_failure(api_load):
    port = api_load.free_port()  # nothing listens there
    tally, _ = api_load.run_load(port=port, token="t", clients=2, seconds=0.05, seed=1)
    assert tally.failures > 0 and tally.decisions == 0


# The server's CPU per request, as the bench reads it from /proc ------------------------------------------------


def test_the_workers_cpu_includes_a_worker_that_ended_during_the_run(api_load):
    """A worker recycled mid-run (max_requests) takes its CPU out of /proc; the master's reaped-children time keeps
    it (here this process is the master and a child burning ~0.3 s of CPU the worker)."""
    before = api_load.workers_cpu_seconds(os.getpid())
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n    pass"
    subprocess.run([sys.executable, "-c", burn], check=True, timeout=60)
    assert api_load.workers_cpu_seconds(os.getpid()) - before >= 0.25


def test_the_databases_cpu_counts_backends_that_started_and_never_goes_negative(api_load):
    before = {1: 1.0, 2: 5.0}  # backend 2 ends during the run; backend 3 starts (a recycled worker's connection)
    assert api_load.cpu_since(before, {1: 1.5, 3: 0.7}) == pytest.approx(1.2)


@pytest.mark.django_db
def test_the_databases_cpu_counts_only_the_backends_of_the_benchmarks_own_database(api_load):
    """Two benchmarks on one cluster, each on its own database, tag their sessions alike: each counts its own."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("pg_stat_activity is PostgreSQL's")
    import psycopg

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    cluster = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}"
    tagged = {"application_name": api_load.APPLICATION_NAME, "autocommit": True}
    with (
        psycopg.connect(f"{cluster}/{db['NAME']}", **tagged) as own,
        psycopg.connect(f"{cluster}/postgres", **tagged) as other,
    ):
        pids = api_load.backend_pids(f"{cluster}/{db['NAME']}")
        assert own.info.backend_pid in pids
        assert other.info.backend_pid not in pids
