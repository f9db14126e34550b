"""Device credentials, resolved by reference: from the environment or a secrets file, never from the database.

A device stores only `credentials_ref`, the NAME of the secret. `resolve("MINER_PASSWORD")` reads the
environment variable of that name, else the key of that name in the file `FLEET_SECRETS_FILE` (lines
`NAME=value`, `#` comments; the file should be readable by the service user only). An unknown name raises
`MissingCredentials`, so a device is never spoken to with an empty secret by mistake.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


class MissingCredentials(LookupError):
    pass


def _read_secrets_file(path: str) -> dict[str, str]:
    secrets: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        secrets[name.strip()] = value.strip()
    return secrets


def resolve(ref: str) -> str | None:
    """The secret named `ref` (None for an empty reference)."""
    if not ref:
        return None
    if ref in os.environ:
        return os.environ[ref]
    path = settings.FLEET["SECRETS_FILE"]
    if path and Path(path).is_file():
        secrets = _read_secrets_file(path)
        if ref in secrets:
            return secrets[ref]
    raise MissingCredentials(f"No credentials named {ref} in the environment or the secrets file.")
