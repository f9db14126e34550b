"""deploy/gunicorn.conf.py: every launcher uses it, and a real gunicorn started with it on loopback behaves as its
comments say (app preloaded in the master, garbage collector frozen before the fork, worker thresholds, heartbeat on
/dev/shm, access log in gunicorn's combined format)."""

import datetime
import gc
import importlib.util
import io
import json
import logging
import os
import re
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


@pytest.fixture
def served(django_db_setup, django_db_blocker, tmp_path):
    """tests.gunicorn_probe (energyarb's app + /__probe__) under deploy/gunicorn.conf.py with 2 workers, on the
    test database; yields (base URL, path of gunicorn's stdout)."""
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
    command = [sys.executable, "-m", "gunicorn", "tests.gunicorn_probe:application", "--config", str(CONFIG)]
    command += ["--workers", "2", "--bind", f"127.0.0.1:{port}"]
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
        yield base, out
    finally:
        stop_process(process)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the served app needs the PostgreSQL test database")
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
