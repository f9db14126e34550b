"""The one client module that speaks to an OpenADR 3 VTN, on the `openadr3` library (grid-coordination's
python-oa3: pydantic entity models over httpx, OAuth2 client credentials with token-endpoint discovery at
`GET /auth/server`). URL and credentials come from settings (ENERGYARB["OPENADR_*"]); every failure is a VtnError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from openadr3 import OpenADRClient, create_ven_client, fetch_token
from openadr3.entities.models import Event, Program


class VtnError(RuntimeError):
    """The VTN could not be reached, refused the credentials, or answered something unusable."""


@dataclass(frozen=True)
class VtnSettings:
    url: str
    client_id: str
    client_secret: str
    ven_name: str

    @classmethod
    def from_settings(cls) -> VtnSettings | None:
        conf = settings.ENERGYARB
        if not conf["OPENADR_VTN_URL"]:
            return None
        return cls(
            str(conf["OPENADR_VTN_URL"]),
            str(conf["OPENADR_CLIENT_ID"]),
            str(conf["OPENADR_CLIENT_SECRET"]),
            str(conf["OPENADR_VEN_NAME"]),
        )


class VtnClient:
    """A VEN's session with a VTN: token, registration, programs, events, reports."""

    def __init__(self, conf: VtnSettings):
        self.conf = conf
        try:
            token = fetch_token(conf.url, conf.client_id, conf.client_secret)
        except (httpx.HTTPError, KeyError, ValueError) as error:
            raise VtnError(f"OpenADR token request failed: {error}") from None
        self.api: OpenADRClient = create_ven_client(conf.url, token)

    def close(self) -> None:
        self.api.close()

    def _call(self, what: str, function, *args, **kwargs) -> Any:
        try:
            return function(*args, **kwargs)
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as error:
            raise VtnError(f"OpenADR {what} failed: {error}") from None

    def register(self) -> str:
        """The VEN's id on the VTN, registering it by name the first time."""
        ven = self._call("VEN lookup", self.api.find_ven_by_name, self.conf.ven_name)
        if ven is not None:
            return str(ven.id)
        response = self._call(
            "VEN registration", self.api.create_ven, {"objectType": "VEN_VEN_REQUEST", "venName": self.conf.ven_name}
        )
        if response.status_code not in (200, 201):
            raise VtnError(f"OpenADR VEN registration answered {response.status_code}: {response.text[:200]}")
        return str(response.json()["id"])

    def programs(self) -> list[Program]:
        return self._call("programs read", self.api.programs)

    def events(self, program_id: str) -> list[Event]:
        return self._call("events read", self.api.events, programID=program_id)

    def post_report(self, report: dict) -> str:
        response = self._call("report", self.api.create_report, report)
        if response.status_code not in (200, 201):
            raise VtnError(f"OpenADR report answered {response.status_code}: {response.text[:200]}")
        return str(response.json().get("id", ""))
