"""gunicorn's configuration for energyarb's web process: the one file every launcher passes with `--config`.

deploy/Procfile, deploy/docker/entrypoint.sh (the image, compose and Kubernetes run it), the systemd unit
deploy/systemd/energyarb-web.service, bench/api_load.py, bench/dashboard.py and the fault tests' server
(tests/reliability/servers.py) all start gunicorn with this file, so the benchmark measures what is deployed.
A launcher adds only what differs between them: the deployments the address (`--bind`); the benchmarks and the
fault tests also their worker count, class and threads, a backlog, a log level or timeouts. Command-line flags
override this file (gunicorn's rule), so `--workers N` still works by hand.

Every setting says why beside it; the figures are from docs/deployment.md ("The web process") and
`tests/test_gunicorn_config.py` proves the behaviour on a real gunicorn.
"""

import functools
import gc
import logging
import os
import re
import socket
import sys
import weakref

from gunicorn import glogging
from gunicorn.http.body import LengthReader
from gunicorn.workers.sync import SyncWorker

# Sync workers: a request waits on nothing but PostgreSQL and Redis, and 3 measured best on 2 cores
# (docs/deployment.md: 2 leave a core idle, 4 switch more, threads doubled the p99). About 1.5 per core.
worker_class = "sync"
# WEB_CONCURRENCY unset or empty: 3, as the launchers' old shell default `${WEB_CONCURRENCY:-3}` did.
workers = int(os.environ.get("WEB_CONCURRENCY") or "3")
# A decision takes milliseconds; 60 s only kills a worker that is stuck. Shutdown lets requests finish for 30 s
# (systemd's TimeoutStopSec=35 and Kubernetes' terminationGracePeriodSeconds=40 wait a little longer).
timeout = 60
graceful_timeout = 30

# Load the app once in the master and fork the workers from it: a worker (first ones and every replacement after
# max_requests) starts in milliseconds instead of re-importing Django, the apps, SciPy and the URLconf (~2.5 s of
# CPU each), and the pages of the loaded code are shared between workers. Consequence: SIGHUP (systemctl reload)
# re-forks workers from the code already loaded; deploy new code with a restart.
preload_app = True

# Recycle a worker after this many requests (jittered so the workers do not restart together): a guard against
# slow leaks and the copy-on-write pages a worker's life un-shares. A worker grows ~0.5 KB per request
# (measured over 2,000 requests), so 20,000 holds it to ~10 MB; with the app preloaded a replacement costs a fork,
# where 2,000 without preloading re-imported the app every ~15 s per worker at 400 requests/s (~1 ms per request).
max_requests = 20000
max_requests_jitter = 2000

# The workers' heartbeat (an utime() per loop) on a memory file system: on a disk-backed /tmp a busy disk can
# stall it long enough for the master to kill a healthy worker. (Its CPU is the same, ~1 us.) None falls back
# to gunicorn's default (the system's temporary directory) where /dev/shm does not exist.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# No control socket (gunicorn >= 25): nothing here uses gunicornc, and it would need a writable directory in
# $XDG_RUNTIME_DIR or $HOME, which the image's read-only root file system and the systemd unit do not give.
control_socket_disable = True

# gunicorn's own (pure Python) HTTP parser, always. Its default "auto" switches to the gunicorn_h1c C extension as
# soon as that package is importable (`pip install gunicorn[fast]`, or a dependency pulling it in), and that parser
# answers differently: it accepts requests with obsolete header folding or bare-LF line ends, which this one refuses
# with a 400, and its 400 pages say other things (docs/api-performance.md, "outside the DRF view": 10 of 19 probe
# requests answered differently). It would save ~25 us of CPU per request, not worth a silent change at the edge.
http_parser = "python"

# One access line per request on stdout (journald, `docker logs`, the pod's log), gunicorn's combined format,
# written by AccessLogger below: its atoms ~21 us per request instead of gunicorn's ~40-48 us (accesslog timeit in
# docs/deployment.md), and the line written straight to gunicorn's handler (docs/api-performance.md, "outside the
# DRF view"). stderr keeps gunicorn's error log.
accesslog = "-"

# Python's cyclic garbage collector in the workers: a request allocates thousands of container objects, and the
# default first threshold (700) runs ~0.17 collections per request. 5,000 ran 0.050-0.053 ms of GC per request
# against 0.067-0.072 at 700 (1,200 requests in-process, alternated); 50,000 was slower again (a larger young
# generation leaves the CPU caches). Generations 1 and 2 keep their default ratios.
WORKER_GC_THRESHOLDS = (5000, 10, 10)


def _request_line(environ) -> str:
    return f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"


def _status_code(resp) -> object:
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


# gunicorn's access-log atoms without request, response or environ headers (`glogging.Logger.atoms`, gunicorn 27),
# each worked out only when a format names it: name -> atom(logger, resp, environ, request_time).
_ATOMS = {
    "h": lambda log, resp, environ, rt: environ.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, environ, rt: "-",
    "u": lambda log, resp, environ, rt: log._get_user(environ) or "-",
    "t": lambda log, resp, environ, rt: log.now(),
    "r": lambda log, resp, environ, rt: _request_line(environ),
    "s": lambda log, resp, environ, rt: _status_code(resp),
    "m": lambda log, resp, environ, rt: environ.get("REQUEST_METHOD"),
    "U": lambda log, resp, environ, rt: environ.get("PATH_INFO"),
    "q": lambda log, resp, environ, rt: environ.get("QUERY_STRING"),
    "H": lambda log, resp, environ, rt: environ.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, environ, rt: (getattr(resp, "sent", None) is not None and str(resp.sent)) or "-",
    "B": lambda log, resp, environ, rt: getattr(resp, "sent", None),
    "f": lambda log, resp, environ, rt: environ.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, environ, rt: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, environ, rt: rt.seconds,
    "D": lambda log, resp, environ, rt: rt.seconds * 1000000 + rt.microseconds,
    "M": lambda log, resp, environ, rt: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda log, resp, environ, rt: f"{rt.seconds}.{rt.microseconds:06d}",
    "p": lambda log, resp, environ, rt: f"<{os.getpid()}>",
}


@functools.lru_cache(maxsize=16)
def _named_atoms(fmt: str) -> tuple:
    """(name, atom or None) for each `%(name)` the format names, in order (a name it names twice, twice)."""
    return tuple((name, _ATOMS.get(name)) for name in re.findall(r"%\(([^)]*)\)", fmt))


def _escaped(value):
    return value.replace('"', '\\"') if isinstance(value, str) else value


class AccessLogger(glogging.Logger):
    """gunicorn's logger, with the access line's atoms built only as far as the format needs them.

    gunicorn's `Logger.atoms` adds an atom for every request header, response header and WSGI environ entry (~50
    per request, each copied again to escape quotes) for formats that name one with `{name}i/o/e`; the default
    combined format names none. With such a format this class answers exactly as gunicorn's logger does
    (`test_the_access_logger_writes_what_gunicorns_writes`). For a format naming no header, the line is formatted
    with only the atoms it names (9 of 19 for the default), each escaped as gunicorn's `SafeAtoms` escapes it, and
    "-" for a name gunicorn has no atom for, instead of all 19 copied into a `SafeAtoms` whose Python
    `__getitem__` the formatting calls per name: 12.8 -> 6.8 us per line (timeit, docs/api-performance.md).

    The line is written as gunicorn's own access handler would write it, without the `logging.LogRecord` (the
    caller's frame looked up, the time, thread and process names) that `Logger.info` builds only for a bare
    `%(message)s` formatter to print the message: `access` writes the same bytes to the same stream under the
    handler's lock, when the `gunicorn.access` logger is as gunicorn sets it up (`_plain_access_handler`). Any
    other set-up (a `logconfig`, syslog, a filter, a file, a level) takes gunicorn's path."""

    def atoms(self, resp, req, environ, request_time):
        if "}" in self.cfg.access_log_format:
            return super().atoms(resp, req, environ, request_time)
        return {name: atom(self, resp, environ, request_time) for name, atom in _ATOMS.items()}

    def access(self, resp, req, environ, request_time):
        handler = self._plain_access_handler()
        if handler is None:
            return super().access(resp, req, environ, request_time)
        fmt = str(self.cfg.access_log_format)
        try:
            line = fmt % self._line_atoms(fmt, resp, req, environ, request_time)  # as LogRecord.getMessage() does
        except Exception:  # gunicorn reports it from its handler: let it
            return super().access(resp, req, environ, request_time)
        handler.acquire()  # as logging.Handler.handle and StreamHandler.emit do
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(
                self.access_log.makeRecord(
                    self.access_log.name,
                    logging.INFO,
                    "",
                    0,
                    self.cfg.access_log_format,
                    (self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time)),),
                    None,
                )
            )
        finally:
            handler.release()

    def _line_atoms(self, fmt: str, resp, req, environ, request_time) -> dict:
        """What the access line is formatted with: for a format naming no header, only the atoms it names, escaped
        as gunicorn's `SafeAtoms` escapes them ("-" for a name gunicorn has no atom for); else gunicorn's
        `SafeAtoms` over every atom."""
        if "}" in fmt:
            return self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        return {
            name: _escaped(atom(self, resp, environ, request_time)) if atom else "-" for name, atom in _named_atoms(fmt)
        }

    def _plain_access_handler(self) -> logging.StreamHandler | None:
        """gunicorn's access handler when `Logger.info` would only write the formatted line to its stream: the
        logger enabled for INFO, not propagating, without filters, with one `logging.StreamHandler` (not a file,
        not syslog) that takes INFO, has no filters and a formatter that prints the bare message; the default
        record factory. Else None."""
        log = self.access_log
        if not self.access_log_enabled or not log.isEnabledFor(logging.INFO) or log.propagate or log.filters:
            return None
        if len(log.handlers) != 1 or logging.getLogRecordFactory() is not logging.LogRecord:
            return None
        handler = log.handlers[0]
        if type(handler) is not logging.StreamHandler or handler.filters or handler.level > logging.INFO:
            return None
        return handler if _prints_the_bare_message(handler.formatter) else None


# Each live formatter tried, and the verdict: weakly kept, as a HUP reload gives the access handler a new formatter.
_BARE_FORMATTERS: weakref.WeakKeyDictionary[logging.Formatter, bool] = weakref.WeakKeyDictionary()


def _prints_the_bare_message(formatter: logging.Formatter | None) -> bool:
    """Whether this formatter's output of a record is the record's message alone (gunicorn's access formatter,
    `%(message)s`): a plain `logging.Formatter` (no subclass overriding its output), tried once on a record."""
    if type(formatter) is not logging.Formatter:
        return False
    bare = _BARE_FORMATTERS.get(formatter)
    if bare is None:
        probe = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "probe %s", ('\u00e9"',), None)
        bare = _BARE_FORMATTERS[formatter] = formatter.format(probe) == 'probe \u00e9"'
    return bare


logger_class = AccessLogger


def when_ready(server):
    """In the master, once the app is loaded and before the first fork: import what the first request would
    (the URLconf, hence every view, serializer and router), let no database or cache connection cross the fork,
    then freeze the garbage collector's view of everything loaded so far.

    gc.freeze() moves those ~200,000 objects to a permanent generation no collection in a worker walks again: a
    full collection in a worker walked them all (~100 ms of CPU each, several in a worker's first thousand requests)
    and wrote to their pages, un-sharing them from the master."""
    if not server.cfg.preload_app:  # nothing loaded here: each worker loads the app itself
        return
    from django.core.cache import caches
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports the URLconf and with it the views)
    connections.close_all()
    caches.close_all()  # closes nothing for a Redis cache (Django's RedisCache.close does nothing): disconnect it
    for cache in caches.all(initialized_only=True):
        if hasattr(cache, "disconnect"):  # core.cache.ResilientRedisCache
            cache.disconnect()
    gc.collect()
    gc.freeze()


def pre_fork(server, worker):
    """Whatever the master allocated since (a replacement worker is forked later) joins the frozen objects."""
    gc.freeze()


def post_fork(server, worker):
    gc.set_threshold(*WORKER_GC_THRESHOLDS)


def post_request(worker, req, environ, resp):
    """After a sync worker's answer, close the connection at once when the client cannot be sending anything more,
    instead of lingering on it (nginx's default `lingering_close on`; docs/deployment.md, "The web process").

    gunicorn's sync worker ends every connection with `util.close_graceful` (RFC 9112 §9.6): it half-closes, then
    reads until the client closes (up to 2 s) before it accepts the next connection, so each answer costs the worker
    a client round trip of waiting. The lingering keeps the kernel from answering data the server never read with a
    reset that can wipe the answer from the client's buffers; it is needed only when such data may come. The
    connection is closed here, which gunicorn's `close_graceful` then finds closed, when all of these hold, and left
    to gunicorn otherwise:

    - a sync worker (another class keeps or closes connections itself), without SSL, and no exception on its way
      out (this hook runs in `handle_request`'s `finally`; gunicorn still has to answer it);
    - the answer was sent whole: headers sent, a Content-Length and that many bytes written (each write returned,
      so every byte was handed to the kernel, which still sends them before the FIN); not chunked, not streamed
      through sendfile, not a HEAD or 304 without a body;
    - the request's body (of known length) was read to its end;
    - the client sent nothing beyond the request: none already read with it (pipelined) and none waiting in the
      socket's receive buffer (a non-blocking peek).

    The access line is written and `max_requests` counted before this hook runs; gunicorn's own close then returns at
    once (its shutdown() fails on the closed socket)."""
    if _nothing_more_can_come(worker, req, resp):
        resp.sock.close()


def _nothing_more_can_come(worker, req, resp) -> bool:
    # (in a `finally` that an exception runs, sys.exception() is that exception)
    if type(worker) is not SyncWorker or worker.cfg.is_ssl or sys.exception() is not None:
        return False
    length = resp.response_length
    answered_whole = resp.headers_sent and length is not None and resp.sent == length  # (a chunked one has none)
    body = req.body
    body_read = isinstance(body.reader, LengthReader) and body.reader.length == 0 and not body.failed
    # (take_buffered empties gunicorn's read-ahead: nothing reads this connection again, it closes either way)
    return answered_whole and body_read and not req.unreader.take_buffered() and not _bytes_waiting(resp.sock)


def _bytes_waiting(sock: socket.socket) -> bool:
    """Whether the client's bytes wait in the socket's receive buffer (the end of its stream counts as none). The
    sync worker's sockets are blocking, without a timeout: Python then calls recv() at once, and MSG_DONTWAIT makes
    it return. With a timeout Python would first wait for bytes: such a socket counts as having some."""
    if sock.gettimeout() is not None:
        return True
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False
    except OSError:  # closed already, or reset: gunicorn's close handles it
        return True
