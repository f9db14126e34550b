"""A bench that needs its own PostgreSQL database creates it when it is missing, before anything connects to it
(bench/optimizer_tick.py told the reader to create it by hand; bench/api_during_runs.py does it through
api_load.prepare, which calls api_load.ensure_database)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

BENCH = Path(__file__).resolve().parent.parent / "bench"


class Connecting(Exception):
    """Raised where the bench would set Django up and connect: what happened before it is what is tested."""


def _admin_url() -> str:
    database = settings.DATABASES["default"]
    if "postgresql" not in database["ENGINE"]:
        pytest.skip("PostgreSQL only: SQLite creates its file itself")
    user, host, port = database["USER"], database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return f"postgresql://{user}{password}@{host}:{port}/postgres"


def _exists(admin_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def _drop(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def test_the_optimizer_tick_bench_creates_its_missing_database(monkeypatch):
    import django

    admin_url = _admin_url()
    name = f"test_ea_bench_{uuid.uuid4().hex[:12]}"
    url = urlparse(admin_url)._replace(path=f"/{name}").geturl()
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr(sys, "argv", ["optimizer_tick.py", "--ticks", "1"])

    def connecting() -> None:
        raise Connecting

    monkeypatch.setattr(django, "setup", connecting)
    import optimizer_tick

    assert not _exists(admin_url, name)
    try:
        with pytest.raises(Connecting):
            optimizer_tick.main()

        assert _exists(admin_url, name)
        with pytest.raises(Connecting):  # a second run finds it and goes on
            optimizer_tick.main()
        assert _exists(admin_url, name)
    finally:
        _drop(admin_url, name)


def test_the_api_during_runs_bench_creates_its_missing_database(monkeypatch):
    import django

    admin_url = _admin_url()
    name = f"test_ea_bench_{uuid.uuid4().hex[:12]}"
    url = urlparse(admin_url)._replace(path=f"/{name}").geturl()
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["api_during_runs.py", "--database-url", url, "--windows", "1"])
    # api_load.prepare sets the server's environment in this process (os.environ.update): kept off the test run's.
    monkeypatch.setattr(os, "environ", dict(os.environ))

    def connecting() -> None:
        raise Connecting

    monkeypatch.setattr(django, "setup", connecting)
    import api_during_runs

    assert not _exists(admin_url, name)
    try:
        with pytest.raises(Connecting):
            api_during_runs.main()

        assert _exists(admin_url, name)
        with pytest.raises(Connecting):  # a second run finds it and goes on
            api_during_runs.main()
        assert _exists(admin_url, name)
    finally:
        _drop(admin_url, name)
