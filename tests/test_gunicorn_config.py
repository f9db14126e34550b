"""deploy/gunicorn.conf.py: every launcher uses it, and a real gunicorn started with it on loopback behaves as its
comments say (app preloaded in the master, garbage collector frozen before the fork, worker thresholds, heartbeat on
/dev/shm, access log in gunicorn's combined format)."""

import contextlib
import datetime
import gc
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.db import connection
from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.config import Config
from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser

from tests.reliability.servers import free_port, stop_process

BASE_DIR = Path(__file__).resolve().parent.parent
CONFIG = BASE_DIR / "deploy" / "gunicorn.conf.py"
START_TIMEOUT_S = 60.0

# Settings the config file owns: a deployment launcher that repeated one would drift from what the bench measures.
OWNED_FLAGS = (
    "--workers",
    "-w ",
    "--timeout",
    "--graceful-timeout",
    "--max-requests",
    "--preload",
    "--worker-tmp-dir",
    "--access-logfile",
    "--control-socket",
    "--no-control-socket",
)


def load_config_module():
    spec = importlib.util.spec_from_file_location("energyarb_gunicorn_conf", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gunicorn_commands(path: Path) -> list[str]:
    """The gunicorn command lines of a shell-like file (backslash continuations joined)."""
    text = path.read_text().replace("\\\n", " ")
    return re.findall(r"gunicorn energyarb\.wsgi\S*[^\n]*", text)


@pytest.mark.parametrize(
    "path", ["deploy/Procfile", "deploy/docker/entrypoint.sh", "deploy/systemd/energyarb-web.service"]
)
def test_every_deployment_launcher_runs_gunicorn_with_the_one_config_file_and_repeats_none_of_it(path):
    commands = gunicorn_commands(BASE_DIR / path)
    assert len(commands) == 1
    assert "--config deploy/gunicorn.conf.py" in commands[0]
    assert [flag for flag in OWNED_FLAGS if flag in commands[0]] == []


def test_every_file_that_starts_the_wsgi_app_passes_the_config_file():
    """Any file naming the WSGI app to start it (launchers, benches, the fault tests' server) names the config."""
    not_launchers = {"energyarb/settings.py", "energyarb/wsgi.py", "tests/reliability/test_deploy.py"}
    not_launchers |= {"tests/reliability/test_containers.py"}  # the health check's guess of a role from argv
    not_launchers |= {"tests/test_wsgi_entry.py"}  # imports the module to test it
    named = subprocess.run(
        ["git", "grep", "-l", "energyarb.wsgi", "--", "*.py", "*.sh", "*.service", "deploy/Procfile", "Makefile"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    launchers = sorted(set(named) - not_launchers)
    assert "bench/api_load.py" in launchers and "deploy/Procfile" in launchers
    assert [path for path in launchers if "deploy/gunicorn.conf.py" not in (BASE_DIR / path).read_text()] == []


def test_the_image_compose_and_kubernetes_start_the_web_process_through_the_entry_point():
    compose = yaml.safe_load((BASE_DIR / "deploy" / "compose" / "docker-compose.yml").read_text())
    assert compose["services"]["web"]["command"] == ["web"]
    manifests = list(yaml.safe_load_all((BASE_DIR / "deploy" / "k8s" / "base" / "web.yaml").read_text()))
    (web,) = [m for m in manifests if m["kind"] == "Deployment"]
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["web"] and "command" not in container


def test_the_load_benchmark_starts_gunicorn_with_the_deployments_config():
    sys.path.insert(0, str(BASE_DIR / "bench"))
    try:
        import api_load
    finally:
        sys.path.remove(str(BASE_DIR / "bench"))
    args = type("Args", (), {"workers": 3, "threads": 1})()
    command = api_load.gunicorn_command(args, 8123)
    assert Path(command[command.index("--config") + 1]) == CONFIG
    assert [flag for flag in OWNED_FLAGS if flag.strip() in command and flag != "--workers"] == []


def test_the_config_file_sets_what_its_comments_promise():
    cfg = Config()
    for name, value in vars(load_config_module()).items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.preload_app is True
    assert cfg.worker_class_str == "sync" and cfg.workers == 3
    assert (cfg.max_requests, cfg.max_requests_jitter) == (20000, 2000)
    assert cfg.worker_tmp_dir == "/dev/shm"
    assert cfg.accesslog == "-"
    assert cfg.logger_class.__name__ == "AccessLogger"


class _CParserChosen(Exception):
    pass


H1C_ERRORS = ("IncompleteError", "LimitRequestLine", "LimitRequestHeaders", "InvalidRequestMethod")
H1C_ERRORS += ("InvalidHTTPVersion", "InvalidHeaderName", "InvalidHeader", "ParseError")


@pytest.fixture
def h1c_installed(monkeypatch):
    """A stand-in gunicorn_h1c importable (the real one is not installed here), as gunicorn would find the C parser
    if it were installed: its parse_request raises _CParserChosen."""
    from gunicorn.http import message

    def parse_request(*args, **kwargs):
        raise _CParserChosen

    stand_in = types.ModuleType("gunicorn_h1c")
    stand_in.parse_request = parse_request
    for name in H1C_ERRORS:  # what gunicorn's fast path catches (it needs LimitRequestLine to take it)
        setattr(stand_in, name, type(name, (Exception,), {}))
    monkeypatch.setitem(sys.modules, "gunicorn_h1c", stand_in)
    monkeypatch.setattr(message, "_fast_parser_available", None)  # gunicorn looks for it again, and finds it
    monkeypatch.setattr(message, "_fast_parser_module", None)


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", b"GET / HTTP/1.1\nHost: x\n\n"],
    ids=["obsolete folding", "bare LF"],
)
def test_the_config_pins_gunicorns_python_http_parser_which_refuses_what_the_c_parser_accepts(
    request_bytes, h1c_installed
):
    """With gunicorn's default http_parser "auto", installing gunicorn_h1c would switch parsers silently, and the C
    parser accepts both requests (measured with gunicorn_h1c 0.6.9: 200 where this answers 400). With a stand-in
    for it installed, the config still has gunicorn parse with its Python parser, which refuses them; with "auto",
    gunicorn takes the stand-in (so the first half would fail without the pin)."""
    cfg = Config()
    for name, value in vars(load_config_module()).items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.http_parser == "python"
    with pytest.raises(http_errors.ParseException):
        next(RequestParser(cfg, iter([request_bytes]), ("127.0.0.1", 40000)))
    cfg.set("http_parser", "auto")
    with pytest.raises(_CParserChosen):
        next(RequestParser(cfg, iter([request_bytes]), ("127.0.0.1", 40000)))


@pytest.mark.parametrize(("value", "workers"), [(None, 3), ("", 3), ("5", 5)])
def test_web_concurrency_unset_or_empty_means_3_workers(monkeypatch, value, workers):
    """As the launchers' shell default `${WEB_CONCURRENCY:-3}` did (an empty value crashed the config)."""
    if value is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", value)
    assert load_config_module().workers == workers


# The access logger ---------------------------------------------------------------------------------------------


class _Response:
    status = "201 Created"
    sent = 1289
    headers = [("Content-Type", "application/json"), ("Content-Length", "1289"), ("X-Frame-Options", "DENY")]


class _Request:
    headers = [("HOST", "127.0.0.1:8000"), ("USER-AGENT", 'curl/8 "quoted"'), ("CONTENT-LENGTH", "120")]


def _access_logger(logger_class, access_log_format: str | None = None):
    """(logger, what its access log writes, its handler): a gunicorn logger of `logger_class` logging access lines
    to a string, as gunicorn sets up the gunicorn.access logger, at a fixed time."""
    cfg = Config()
    cfg.set("accesslog", "-")
    if access_log_format:
        cfg.set("access_log_format", access_log_format)
    logger = logger_class(cfg)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(logger.access_fmt))
    logger.access_log.handlers = [handler]
    logger.now = lambda: "[07/Dec/2026:01:02:03 +0000]"
    return logger, out, handler


def _access_line(logger_class, access_log_format: str | None, environ: dict) -> str:
    logger, out, _ = _access_logger(logger_class, access_log_format)
    logger.access(_Response, _Request, environ, datetime.timedelta(seconds=1, microseconds=2345))
    return out.getvalue()


@pytest.mark.parametrize(
    "access_log_format",
    [
        None,
        "%(h)s %(r)s %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s %(H)s %(T)s %(D)s %(M)s %(L)s %(p)s %(x)s",
        "%({host}i)s %({content-type}o)s %({raw_uri}e)s %(s)s",
        '%(a)s %(h)s %%(t)s %(a)s "%(u)s" %(nothing)s %(B)d',  # a name twice, an escaped %, an unknown name, %d
    ],
)
def test_the_access_logger_writes_what_gunicorns_writes(access_log_format):
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/api/contracts/?x=1",
        "PATH_INFO": "/api/contracts/",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": 'curl/8 "quoted"',
        "HTTP_REFERER": "https://example.com/",
        "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
    }
    ours = _access_line(load_config_module().AccessLogger, access_log_format, environ)
    assert ours == _access_line(glogging.Logger, access_log_format, environ)
    assert ours.count("\n") == 1 and ours != "\n"
    logging.getLogger("gunicorn.access").handlers.clear()


ENVIRON = {
    "REQUEST_METHOD": "POST",
    "RAW_URI": "/api/sla/quotes/",
    "PATH_INFO": "/api/sla/quotes/",
    "QUERY_STRING": "",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_USER_AGENT": 'bench "x"',
}


def _access_with(logger_class, set_up, monkeypatch) -> tuple[str, int]:
    """(what the access log wrote, how many LogRecords the logger made) with the gunicorn.access logger as
    gunicorn sets it up, then changed by set_up(logger, handler)."""
    logger, out, handler = _access_logger(logger_class)
    made = []
    make_record = logger.access_log.makeRecord
    monkeypatch.setattr(logger.access_log, "makeRecord", lambda *a, **k: made.append(1) or make_record(*a, **k))
    set_up(logger, handler)
    try:
        logger.access(_Response, _Request, ENVIRON, datetime.timedelta(seconds=0, microseconds=2345))
    finally:
        monkeypatch.undo()
        logger.access_log.handlers.clear()
        logger.access_log.filters.clear()
        logger.access_log.propagate = False
        logger.access_log.setLevel(logging.INFO)
    return out.getvalue(), len(made)


def test_the_access_line_is_written_without_a_log_record_as_gunicorns_handler_writes_it(monkeypatch):
    """The deployed set-up (one StreamHandler, bare `%(message)s` formatter): the same line, and no LogRecord (its
    caller lookup, time, thread and process names: ~6-25 us per request; docs/api-performance.md)."""
    ours, records = _access_with(load_config_module().AccessLogger, lambda logger, handler: None, monkeypatch)
    gunicorns, _ = _access_with(glogging.Logger, lambda logger, handler: None, monkeypatch)
    assert (
        ours
        == gunicorns
        == '127.0.0.1 - - [07/Dec/2026:01:02:03 +0000] "POST /api/sla/quotes/ HTTP/1.1" 201 1289 "-" "bench \\"x\\""\n'
    )
    assert records == 0


def test_the_access_line_works_out_only_the_atoms_its_format_names(monkeypatch):
    """gunicorn works out all 19 atoms per request (the process id among them) and copies them into a SafeAtoms to
    escape quotes, for a format that names 9 (the default); the line is the same with only those, escaped alike."""
    module = load_config_module()
    logger, out, _ = _access_logger(module.AccessLogger)
    logger.access(_Response, _Request, ENVIRON, datetime.timedelta(microseconds=2345))  # its formatter tried once
    out.truncate(0)
    out.seek(0)
    pids, wrapped = [], []
    monkeypatch.setattr(module.os, "getpid", lambda: pids.append(1) or 4242)
    monkeypatch.setattr(logger, "atoms_wrapper_class", lambda atoms: wrapped.append(1) or glogging.SafeAtoms(atoms))
    logger.access(_Response, _Request, ENVIRON, datetime.timedelta(microseconds=2345))
    logger.access_log.handlers.clear()

    assert pids == [] and wrapped == []  # no atom the format does not name, no SafeAtoms
    assert out.getvalue() == _access_line(glogging.Logger, None, ENVIRON)
    assert module.AccessLogger.atoms(logger, _Response, _Request, ENVIRON, datetime.timedelta(0))["p"] == "<4242>"


def test_reloading_the_logger_keeps_no_verdict_on_the_formatters_it_dropped(capsys, monkeypatch):
    """gunicorn's HUP reload runs the logger's setup again, which gives the access handler a new formatter: the
    verdicts `_prints_the_bare_message` keeps are those of live formatters only (they grew by one each reload)."""
    module = load_config_module()
    # gunicorn.access as gunicorn's setup leaves it (earlier tests here leave pytest's capture handlers on it)
    monkeypatch.setattr(logging.getLogger("gunicorn.access"), "handlers", [])
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = module.AccessLogger(cfg)
    for _ in range(5):
        logger.setup(cfg)  # what a HUP reload runs
        logger.access(_Response, _Request, ENVIRON, datetime.timedelta(microseconds=2345))
        gc.collect()  # (a dropped handler and its formatter go without a collection too, on CPython)
        assert list(module._BARE_FORMATTERS.items()) == [(logger.access_log.handlers[0].formatter, True)]
    assert capsys.readouterr().out.count('"POST /api/sla/quotes/ HTTP/1.1" 201 1289') == 5


class _DropAll(logging.Filter):
    def filter(self, record):
        return False


class _Upper(logging.Formatter):
    def format(self, record):
        return super().format(record).upper()


SET_UPS = {
    "a filter on the logger": lambda logger, handler: logger.access_log.addFilter(_DropAll()),
    "a filter on the handler": lambda logger, handler: handler.addFilter(_DropAll()),
    "a handler above INFO": lambda logger, handler: handler.setLevel(logging.WARNING),
    "the logger above INFO": lambda logger, handler: logger.access_log.setLevel(logging.WARNING),
    "a formatter with more than the message": lambda logger, handler: handler.setFormatter(
        logging.Formatter("%(levelname)s %(message)s")
    ),
    "a formatter subclass": lambda logger, handler: handler.setFormatter(_Upper("%(message)s")),
    "two handlers": lambda logger, handler: logger.access_log.addHandler(logging.StreamHandler(handler.stream)),
    "a file handler": lambda logger, handler: setattr(
        logger.access_log, "handlers", [type("File", (logging.StreamHandler,), {})(handler.stream)]
    ),
    "propagation": lambda logger, handler: setattr(logger.access_log, "propagate", True),
}


@pytest.mark.parametrize("set_up", SET_UPS.values(), ids=SET_UPS.keys())
def test_any_other_access_log_set_up_takes_gunicorns_path(set_up, monkeypatch):
    ours, records = _access_with(load_config_module().AccessLogger, set_up, monkeypatch)
    gunicorns, gunicorn_records = _access_with(glogging.Logger, set_up, monkeypatch)
    assert ours == gunicorns
    assert records == gunicorn_records


def test_a_failing_access_stream_is_reported_as_its_handler_reports_it(monkeypatch):
    reported = []

    def set_up(logger, handler):
        handler.stream = type("Broken", (), {"write": lambda self, text: 1 / 0, "flush": lambda self: None})()
        handler.handleError = lambda record: reported.append((record.getMessage(), sys.exc_info()[0]))

    _access_with(load_config_module().AccessLogger, set_up, monkeypatch)
    assert reported == [
        (
            '127.0.0.1 - - [07/Dec/2026:01:02:03 +0000] "POST /api/sla/quotes/ HTTP/1.1" 201 1289 "-" "bench \\"x\\""',
            ZeroDivisionError,
        )
    ]


# A real gunicorn with the config, on loopback ------------------------------------------------------------------


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def on_the_test_database(test):
    """A test of the served app: skipped unless on PostgreSQL, and marked django_db so that the test database is
    made (and migrated) even when no other test of the session asks for it."""
    test = pytest.mark.django_db(test)
    return pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the served app needs the PostgreSQL test database"
    )(test)


@contextlib.contextmanager
def _gunicorn(config: Path, workers: int, tmp_path: Path, *flags: str):
    """tests.gunicorn_probe (energyarb's app + /__probe__) under gunicorn with `config` and `workers` on loopback, on
    the test database, until it answers; yields (its process, base URL, path of gunicorn's stdout)."""
    db = connection.settings_dict
    port = free_port()
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    out = tmp_path / "stdout"
    command = [sys.executable, "-m", "gunicorn", "tests.gunicorn_probe:application", "--config", str(config)]
    command += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}", *flags]
    with out.open("wb") as stdout, (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=stdout, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            try:
                _get(f"{base}/__probe__")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "stderr").read_text()
                time.sleep(0.1)
        yield process, base, out
    finally:
        stop_process(process)


@pytest.fixture
def served(django_db_setup, django_db_blocker, tmp_path):
    """deploy/gunicorn.conf.py with 2 workers; yields (base URL, path of gunicorn's stdout)."""
    with _gunicorn(CONFIG, 2, tmp_path) as (_, base, out):
        yield base, out


@on_the_test_database
def test_a_worker_is_forked_from_the_loaded_app_with_its_objects_frozen_and_nothing_connected(served):
    base, stdout = served
    probes = {}
    for _ in range(20):  # until both workers have answered: one holds a half-sent request while the other answers
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10) as held:
            held.sendall(b"GET /__probe__ HTTP/1.1\r\n")
            probe = json.loads(_get(f"{base}/__probe__")[1])
            probes[probe["pid"]] = probe
            held.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := held.recv(65536):
                answer += chunk
        probe = json.loads(answer.partition(b"\r\n\r\n")[2])
        probes[probe["pid"]] = probe
        if len(probes) == 2:
            break
    assert len(probes) == 2
    for probe in probes.values():
        assert probe["loaded_by"] != probe["pid"]  # imported once, in the master
        # Django, the apps and the URLconf (views, serializers) were frozen before the fork: ~200,000 objects.
        assert probe["at_fork"]["frozen_objects"] > 100_000
        assert probe["at_fork"]["open_database_connections"] == 0
        assert probe["gc_thresholds"] == [5000, 10, 10]
        assert [name.startswith("/dev/shm/") for name in probe["heartbeat_files"]] == [True]
    status, body = _get(f"{base}/api/health")  # the app itself answers, from the test database
    assert status == 200 and json.loads(body)["status"] == "healthy"
    time.sleep(0.2)
    line = r'^127\.0\.0\.1 - - \[.+\] "GET /api/health HTTP/1\.1" 200 \d+ "-" ".+"$'  # the combined format
    assert re.search(line, stdout.read_text(), re.M)


# After the answer: closed at once when nothing more can come from the client, else gunicorn's lingering close ----

# gunicorn's close_graceful lingers up to 2 s (GUNICORN_LINGER_S) after its FIN while the client keeps its socket
# open: a next connection answered within this, counted from the client's seeing that FIN, did not wait for it. The
# client keeps its socket open until this wait is over, so a lingering worker cannot answer within it.
NEXT_CONNECTION_WAIT_S = 1.3
GUNICORN_LINGER_S = inspect.signature(gunicorn_util.close_graceful).parameters["timeout"].default
# deploy/gunicorn.conf.py without its post_request hook: gunicorn's own close after every answer.
WITHOUT_THE_HOOK = "exec(compile(open({config!r}).read(), {config!r}, 'exec'))\nglobals().pop('post_request', None)\n"


@pytest.fixture(scope="module")
def one_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """The deployed config and the same without its post_request hook, each served by 1 worker; yields
    {name: (process, port, stdout)}."""
    without = tmp_path_factory.mktemp("config") / "without_the_hook.py"
    without.write_text(WITHOUT_THE_HOOK.format(config=str(CONFIG)))
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, config in (("deployed", CONFIG), ("gunicorn's close", without)):
            process, base, out = stack.enter_context(_gunicorn(config, 1, tmp_path_factory.mktemp("served")))
            servers[name] = (process, int(base.rsplit(":", 1)[1]), out)
        yield servers


def _request(path: str, body: bytes = b"", declared: int | None = None) -> bytes:
    """An HTTP/1.1 request as a client sends it: GET, or POST with a JSON body (its Content-Length `declared`)."""
    if not body and declared is None:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    length = len(body) if declared is None else declared
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    return f"{head}\r\n".encode() + body


def _read_until_the_server_closes(sock: socket.socket) -> tuple[bytes, str]:
    """What the server sends until its FIN ("fin") or a reset ("reset"); the socket stays open."""
    sock.settimeout(5)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        return received, "reset"
    return received, "fin"


def _is_whole(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    if re.search(rb"(?im)^transfer-encoding: chunked\r?$", head):
        return body.endswith(b"\r\n0\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)\r?$", head)
    return length is not None and int(length[1]) == len(body)


def _a_client_then_the_next(port: int, before: list[bytes], after: bytes = b"") -> tuple[bytes, str, bool]:
    """Client A sends `before` (0.1 s apart), reads until the server closes and keeps its socket open, then sends
    `after`; client B then asks for /__probe__ and waits for it until NEXT_CONNECTION_WAIT_S after A saw the FIN, A's
    socket still open. (A's answer, how A's stream ended, whether the one worker answered B only once A closed it.)"""
    a = socket.create_connection(("127.0.0.1", port), timeout=5)
    b = None
    try:
        for i, part in enumerate(before):
            time.sleep(0.1 if i else 0)
            a.sendall(part)
        answer, ending = _read_until_the_server_closes(a)
        fin_seen = time.monotonic()
        if after:
            a.sendall(after)  # the server's kernel resets a connection closed without reading them
            time.sleep(0.2)
            ending = _read_until_the_server_closes(a)[1] if ending == "fin" else ending
        b = socket.create_connection(("127.0.0.1", port), timeout=5)
        b.sendall(_request("/__probe__"))
        b.settimeout(max(0.01, fin_seen + NEXT_CONNECTION_WAIT_S - time.monotonic()))
        try:
            first = b.recv(65536)
            waited = False
        except TimeoutError:
            first, waited = b"", True
        a.close()
        rest = _read_until_the_server_closes(b)[0]
        assert _is_whole(first + rest) and (first + rest).startswith(b"HTTP/1.1 200 OK\r\n")
        return answer, ending, waited
    finally:
        a.close()
        if b is not None:
            b.close()


def test_the_wait_for_the_next_connection_is_well_within_gunicorns_linger():
    """The tests below tell a worker that closed at once from one that lingered by whether it answered a next
    connection within NEXT_CONNECTION_WAIT_S of the FIN; gunicorn's sync worker lingers GUNICORN_LINGER_S (its
    close_graceful's default, which it calls without a timeout), so the wait must end well before the linger."""
    assert GUNICORN_LINGER_S == 2.0
    assert NEXT_CONNECTION_WAIT_S + 0.5 <= GUNICORN_LINGER_S


def _access_lines(stdout: Path, path: str) -> int:
    time.sleep(0.2)
    return len(
        re.findall(rf'^127\.0\.0\.1 - - \[.+\] "(GET|POST) {re.escape(path)} HTTP/1\.1" \d+ ', stdout.read_text(), re.M)
    )


READ_TO_ITS_END = {
    "GET": [_request("/__probe__/read-body")],
    "the app's GET": [_request("/api/health")],
    "POST read to its end": [_request("/__probe__/read-body", b'{"hours": 4}')],
}


@on_the_test_database
@pytest.mark.parametrize("before", READ_TO_ITS_END.values(), ids=READ_TO_ITS_END.keys())
def test_after_a_whole_answer_to_a_request_read_to_its_end_the_worker_closes_and_serves_the_next_at_once(
    before, one_worker
):
    """A client that reads the whole answer and keeps its socket open gets the server's FIN at once either way, but
    gunicorn's own close then waits (up to 2 s) for the client's: the one worker answers the next connection only
    once A closes. The deployed hook closes at once: the next connection is answered meanwhile."""
    for name, waits in (("deployed", False), ("gunicorn's close", True)):
        _, port, stdout = one_worker[name]
        path = before[0].split(b" ")[1].decode()
        logged = _access_lines(stdout, path)
        answer, ending, waited = _a_client_then_the_next(port, before)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and _is_whole(answer) and ending == "fin"
        assert waited is waits, name
        assert _access_lines(stdout, path) == logged + 1  # the access line is written


OVERSIZED = b'{"x": "' + b"y" * 20_000 + b'"}'  # above API_MAX_BODY_BYTES (16 KiB): a 413 before the body is read
PIPELINED = _request("/__probe__")
LINGERING = {
    "a 413 (its body left unread)": ([_request("/api/sla/quotes/", OVERSIZED)], b"", b"HTTP/1.1 413 "),
    "a body left unread, sent after the answer": (
        [_request("/__probe__", declared=len(OVERSIZED))],
        OVERSIZED,
        b"HTTP/1.1 200 ",
    ),
    "bytes waiting behind the request": ([_request("/__probe__/slow"), PIPELINED], b"", b"HTTP/1.1 200 "),
    "bytes read with the request, more after": (
        [_request("/__probe__") + PIPELINED[:20]],
        PIPELINED[20:],
        b"HTTP/1.1 200 ",
    ),
    "answer without Content-Length": ([_request("/__probe__/unknown-length")], b"", b"HTTP/1.1 200 "),
    "a failure gunicorn answers": ([_request("/__probe__/fails")], b"", b"HTTP/1.1 500 "),
}


@on_the_test_database
@pytest.mark.parametrize(("before", "after", "status"), LINGERING.values(), ids=LINGERING.keys())
def test_whenever_the_client_may_send_more_the_worker_lingers_as_gunicorn_does(before, after, status, one_worker):
    """A request body left unread, bytes beyond the request (waiting in the socket or already read with it), an answer
    whose end is not a Content-Length, a failure: gunicorn's close lingers until the client closes, so the client
    gets the whole answer and the server's FIN, no reset (which a close with unread bytes, or bytes arriving after
    it, would send; the reset can wipe the answer from the client's buffers)."""
    answer, ending, waited = _a_client_then_the_next(one_worker["deployed"][1], before, after)
    assert answer.startswith(status) and _is_whole(answer)
    assert (ending, waited) == ("fin", True)


def _without_the_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]+", b"", answer)


SAME_ON_THE_WIRE = {
    "GET": [_request("/__probe__/read-body")],
    "POST": [_request("/__probe__/read-body", b'{"hours": 4}')],
    "an API 404": [_request("/api/no-such-endpoint/")],
    "413": [_request("/api/sla/quotes/", OVERSIZED)],
    "unknown length": [_request("/__probe__/unknown-length")],
}


@on_the_test_database
@pytest.mark.parametrize("before", SAME_ON_THE_WIRE.values(), ids=SAME_ON_THE_WIRE.keys())
def test_the_answers_bytes_are_gunicorns(before, one_worker):
    answers = {name: _a_client_then_the_next(port, before)[0] for name, (_, port, _) in one_worker.items()}
    assert _without_the_date(answers["deployed"]) == _without_the_date(answers["gunicorn's close"])


@on_the_test_database
def test_a_reloaded_worker_still_closes_at_once(one_worker):
    """HUP re-forks the workers with the config read again: the hook is still there."""
    process, port, _ = one_worker["deployed"]
    base = f"http://127.0.0.1:{port}"
    before = json.loads(_get(f"{base}/__probe__")[1])["pid"]
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + START_TIMEOUT_S
    while json.loads(_get(f"{base}/__probe__")[1])["pid"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _a_client_then_the_next(port, [_request("/__probe__")])[1:] == ("fin", False)


@on_the_test_database
def test_max_requests_still_recycles_a_worker_that_closes_at_once(django_db_setup, django_db_blocker, tmp_path):
    with _gunicorn(CONFIG, 1, tmp_path, "--max-requests", "2", "--max-requests-jitter", "0") as (_, base, _):
        pids = []
        for _ in range(5):  # the first follows the start's own probe
            with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=5) as client:
                client.sendall(_request("/__probe__"))
                answer, ending = _read_until_the_server_closes(client)
            assert ending == "fin" and _is_whole(answer)
            pids.append(json.loads(answer.partition(b"\r\n\r\n")[2])["pid"])
    assert [pids.index(pid) for pid in pids] == [0, 1, 1, 3, 3]  # a new worker after every 2 requests


def _read_one_answer(sock: socket.socket) -> bytes:
    """One answer of known length, on a connection the server keeps open."""
    received = b""
    while not _is_whole(received):
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return received


@on_the_test_database
def test_a_threaded_worker_keeps_its_connections_alive(django_db_setup, django_db_blocker, tmp_path):
    """With threads (gunicorn then runs its gthread worker, which keeps a connection open between requests: the
    benchmark's `--threads`), the config closes nothing: two requests on one connection are both answered."""
    with (
        _gunicorn(CONFIG, 1, tmp_path, "--threads", "2") as (_, base, _),
        socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=5) as client,
    ):
        for _ in range(2):
            client.sendall(_request("/__probe__"))
            answer = _read_one_answer(client)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: keep-alive\r\n" in answer
