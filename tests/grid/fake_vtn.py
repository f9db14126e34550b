"""A fake OpenADR 3.0 VTN on 127.0.0.1: the REST resources a VEN uses, over real sockets, with OAuth2 client
credentials (token discovery at `GET /auth/server`, `POST /auth/token`, Bearer tokens on every resource).

Resources: `GET /programs`, `GET /events?programID=`, `GET /vens?targetType=VEN_NAME&targetValues=`, `POST /vens`,
`POST /reports`, `GET /reports`. Objects carry the 3.0 fields (`id`, `createdDateTime`, `modificationDateTime`,
`objectType`, `programName` / `programID`, `intervalPeriod` {start, duration}, `intervals` [{id, payloads}]).
Errors are problem documents (`type`, `title`, `status`, `detail`).
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeVtn:
    def __init__(self, client_id: str = "ven-1", client_secret: str = "s3cret") -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.tokens: set[str] = set()
        self.programs: list[dict] = []
        self.events: list[dict] = []
        self.vens: list[dict] = []
        self.reports: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeVtn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def _stamp(obj: dict, kind: str) -> dict:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {
            "id": secrets.token_hex(4),
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": kind,
            **obj,
        }

    def add_program(self, name: str) -> dict:
        program = self._stamp({"programName": name}, "PROGRAM")
        self.programs.append(program)
        return program

    def add_event(self, program: dict, *, start: datetime, duration: str, payload_type: str, kw: float, **extra):
        event = self._stamp(
            {
                "programID": program["id"],
                "eventName": extra.pop("name", "shed"),
                "intervalPeriod": {"start": start.isoformat().replace("+00:00", "Z"), "duration": duration},
                "payloadDescriptors": [
                    {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": payload_type, "units": "KW"}
                ],
                "intervals": [{"id": 0, "payloads": [{"type": payload_type, "values": [kw]}]}],
                **extra,
            },
            "EVENT",
        )
        self.events.append(event)
        return event

    def _handler(self):
        vtn = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _problem(self, status: int, title: str) -> None:
                self._send(status, {"type": "about:blank", "title": title, "status": status, "detail": title})

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Bearer ") or header[7:] not in vtn.tokens:
                    self._problem(401, "Unauthorized")
                    return False
                return True

            def do_GET(self):
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                vtn.requests.append(("GET", url.path))
                if url.path == "/auth/server":
                    return self._send(200, {"tokenURL": f"{vtn.url}/auth/token"})
                if not self._authorized():
                    return None
                if url.path == "/programs":
                    return self._send(200, vtn.programs)
                if url.path == "/events":
                    wanted = query.get("programID")
                    return self._send(200, [e for e in vtn.events if not wanted or e["programID"] in wanted])
                if url.path == "/vens":
                    names = query.get("targetValues", [])
                    return self._send(200, [v for v in vtn.vens if not names or v["venName"] in names])
                if url.path == "/reports":
                    return self._send(200, vtn.reports)
                return self._problem(404, "Not Found")

            def do_POST(self):
                url = urlsplit(self.path)
                vtn.requests.append(("POST", url.path))
                body = self._body()
                if url.path == "/auth/token":
                    form = parse_qs(body.decode())
                    ok = (
                        form.get("grant_type") == ["client_credentials"]
                        and form.get("client_id") == [vtn.client_id]
                        and form.get("client_secret") == [vtn.client_secret]
                    )
                    if not ok:
                        return self._send(401, {"error": "invalid_client"})
                    token = secrets.token_urlsafe(16)
                    vtn.tokens.add(token)
                    return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
                if not self._authorized():
                    return None
                try:
                    obj = json.loads(body)
                except ValueError:
                    return self._problem(400, "Bad Request")
                if url.path == "/vens" and obj.get("venName"):
                    ven = vtn._stamp({"venName": obj["venName"]}, "VEN")
                    vtn.vens.append(ven)
                    return self._send(201, ven)
                if url.path == "/reports" and obj.get("programID") and obj.get("eventID"):
                    report = vtn._stamp({k: v for k, v in obj.items() if k != "objectType"}, "REPORT")
                    vtn.reports.append(report)
                    return self._send(201, report)
                return self._problem(400, "Bad Request")

        return Handler
