"""A programmable HTTP server on 127.0.0.1 for testing clients of external systems over real sockets.

Any client (market API, weather API, Claude API) can be pointed at ``fake_server.url``; nothing leaves the
machine. Use the fixture by importing it into a test module (no conftest or pytest_plugins needed)::

    from tests.fakeserver import FakeResponse, fake_server_fixture  # noqa: F401  (registers "fake_server")

``from tests.fakeserver import fake_server`` works too, but then each test taking ``fake_server`` redefines the
imported name (ruff F811).

    def test_prices_are_read(fake_server, settings):
        fake_server.add("GET", "/prices", json=[{"energy_price": 3.0, ...}])
        fake_server.add("GET", "/down", status=503, body="maintenance")
        fake_server.add("GET", "/slow", json={}, delay=2.0)            # answer after 2 s
        fake_server.add("POST", "/v1/messages", handler=lambda request: FakeResponse.of(json=request.json()))
        ...
        (request,) = fake_server.requests_to("GET", "/prices")
        assert request.headers["x-api-key"] == "secret"                # header names are lower-cased

``FakeServer(tls=True)`` speaks HTTPS with a self-signed certificate for 127.0.0.1 made at start
(``ca_file`` is its path, for clients that must trust it: requests' ``REQUESTS_CA_BUNDLE``), for clients whose
library always uses https.

Routes are keyed by (method, path); the query string is not part of the key (it is recorded in
``request.query``). Responses added to one route form a queue served in order, and the last one repeats, so
``add(..., status=503)`` then ``add(..., json=...)`` scripts "fail once, then succeed". A request with no route
gets 404 and a JSON ``detail``. Every request is recorded (method, path, query, headers, body), routed or not.
A delayed answer waits on the server's stop event, so stopping the server never waits for a sleeping handler.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import ssl
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

_UNSET: Any = object()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received; header names are lower-cased."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return jsonlib.loads(self.body)


@dataclass(frozen=True)
class FakeResponse:
    """What a route answers: status, raw body bytes, headers, and an optional delay in seconds before answering."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def of(
        cls,
        *,
        status: int = 200,
        json: Any = _UNSET,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        content_type: str | None = None,
    ) -> FakeResponse:
        """Build a response; ``json`` is serialized (NaN and Infinity allowed, to test clients that must refuse
        them), ``body`` is sent as is (for malformed payloads). Content-Type defaults to match."""
        if json is not _UNSET:
            raw = jsonlib.dumps(json, allow_nan=True).encode()
            content_type = content_type or "application/json"
        else:
            raw = body.encode() if isinstance(body, str) else body
            content_type = content_type or "text/plain; charset=utf-8"
        return cls(status=status, body=raw, headers={"Content-Type": content_type, **(headers or {})}, delay=delay)


Handler = Callable[[RecordedRequest], FakeResponse]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        response = self.server.fake.respond(request)
        if response.delay and self.server.fake.stopping.wait(response.delay):
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (timeout tests)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client closing its socket mid-request is expected in timeout tests


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with routes programmed per (method, path)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> None:
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], list[FakeResponse | Handler]] = {}
        self._requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self)
        self._scheme, self._tmp, self.ca_file = "http", None, ""
        if tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-tls-")
            self.ca_file, key_file = _self_signed_certificate(host, self._tmp.name)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key_file)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        # A short poll interval: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-http-server", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:54321."""
        return f"{self._scheme}://{self.netloc}"

    @property
    def netloc(self) -> str:
        """host:port, e.g. 127.0.0.1:54321."""
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = _UNSET,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        content_type: str | None = None,
        handler: Handler | None = None,
    ) -> None:
        """Queue an answer for (method, path): a static response, or ``handler(request) -> FakeResponse``."""
        if not path.startswith("/"):
            raise ValueError(f"Route paths start with '/': {path!r}")
        entry: FakeResponse | Handler = handler or FakeResponse.of(
            status=status, json=json, body=body, headers=headers, delay=delay, content_type=content_type
        )
        with self._lock:
            self._routes.setdefault((method.upper(), path), []).append(entry)

    def reset(self) -> None:
        """Forget all routes and recorded requests."""
        with self._lock:
            self._routes.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def respond(self, request: RecordedRequest) -> FakeResponse:
        """Pick the answer for a request (called from handler threads)."""
        with self._lock:
            self._requests.append(request)
            queue = self._routes.get((request.method, request.path))
            if not queue:
                return FakeResponse.of(
                    status=404, json={"detail": f"no fake route for {request.method} {request.path}"}
                )
            entry = queue[0] if len(queue) == 1 else queue.pop(0)
        if isinstance(entry, FakeResponse):
            return entry
        try:
            return entry(request)
        except Exception:
            return FakeResponse.of(status=500, body=traceback.format_exc())


def _self_signed_certificate(host: str, directory: str) -> tuple[str, str]:
    """(certificate path, key path) of a fresh self-signed certificate for ``host`` (an IP address)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = f"{directory}/cert.pem", f"{directory}/key.pem"
    with open(cert_path, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


@pytest.fixture(name="fake_server")
def fake_server_fixture() -> Iterator[FakeServer]:
    """A started FakeServer, stopped after the test."""
    with FakeServer() as server:
        yield server


# The same fixture under the name tests use as a parameter. Importing ``fake_server`` makes a test's parameter
# shadow the import (ruff F811); importing ``fake_server_fixture`` avoids that.
fake_server = fake_server_fixture
