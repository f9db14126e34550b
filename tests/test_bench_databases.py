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


@pytest.mark.parametrize(
    ("bench", "argv"),
    [
        ("optimizer_tick", ["--ticks", "1"]),  # DATABASE_URL from the environment
        ("api_during_runs", ["--windows", "1", "--database-url", "{url}"]),
    ],
)
def test_a_bench_creates_its_missing_database_and_finds_it_the_second_time(monkeypatch, bench, argv):
    import importlib

    import django

    admin_url = _admin_url()
    name = f"test_ea_bench_{uuid.uuid4().hex[:12]}"
    url = urlparse(admin_url)._replace(path=f"/{name}").geturl()
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr(sys, "argv", [f"{bench}.py", *(arg.format(url=url) for arg in argv)])
    # api_load.prepare sets the server's environment in this process (os.environ.update): kept off the test run's.
    monkeypatch.setattr(os, "environ", dict(os.environ))

    def connecting() -> None:
        raise Connecting

    monkeypatch.setattr(django, "setup", connecting)
    module = importlib.import_module(bench)

    assert not _exists(admin_url, name)
    try:
        with pytest.raises(Connecting):
            module.main()

        assert _exists(admin_url, name)
        with pytest.raises(Connecting):  # a second run finds it and goes on
            module.main()
        assert _exists(admin_url, name)
    finally:
        _drop(admin_url, name)
