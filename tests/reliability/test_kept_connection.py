"""The throttle's kept Redis connection (core.cache.KeptConnection) without a Redis server or a database: it relies on
undocumented redis-py parts, so a redis-py that changes them must fail this file loudly (the version pin and the
signatures below), and, if one ships anyway, a throttle hit must still be counted (through `client.evalsha`) instead
of answering 500."""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys

import redis
from redis.connection import Connection, ConnectionPool
from redis.exceptions import NoScriptError
from redis.retry import Retry

from core.cache import CHECKED_WITH_REDIS_PY, ResilientRedisCache


class InMemoryRedisConnection(Connection):
    """A redis-py connection answering from memory the commands a throttle hit sends (SCRIPT LOAD, EVALSHA of
    HIT_WINDOW_LUA, SCRIPT FLUSH): its window counter is the script's SET NX, INCR and TTL, with no clock."""

    windows: dict[str, int] = {}
    scripts: set[str] = set()
    sent: list[tuple] = []

    def connect(self):
        self._connected = True

    def disconnect(self, *args, **kwargs):
        self._connected = False

    def can_read(self, timeout=0):
        return False

    def send_command(self, *args, **kwargs):
        self.sent.append(args)
        self._last = args

    def read_response(self, *args, **kwargs):
        command, *arguments = self._last
        if str(command).upper() == "SCRIPT LOAD":
            sha = hashlib.sha1(arguments[0].encode()).hexdigest()
            self.scripts.add(sha)
            return sha.encode()
        assert str(command).upper() == "EVALSHA", self._last
        sha, _, key, window_s = arguments
        if sha not in self.scripts:
            raise NoScriptError("NOSCRIPT No matching script.")
        self.windows[key] = self.windows.get(key, 0) + 1
        return [self.windows[key], int(window_s)]


class PoolOfALaterRedisPy(ConnectionPool):
    """A pool as a later redis-py could ship it: its checkout works, but `make_connection` and `ensure_connection`
    are no longer there for code outside redis-py (renamed, made private)."""

    def __getattribute__(self, name):
        if name in ("make_connection", "ensure_connection"):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not caller.startswith("redis."):
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return super().__getattribute__(name)


def cache_on(pool_class) -> ResilientRedisCache:
    InMemoryRedisConnection.windows.clear()
    InMemoryRedisConnection.scripts.clear()
    InMemoryRedisConnection.sent.clear()
    options = {"pool_class": pool_class, "connection_class": InMemoryRedisConnection}
    return ResilientRedisCache("redis://in-memory.invalid:6379/0", {"OPTIONS": options})


def test_a_throttle_hit_runs_on_the_kept_connection_in_memory():
    cache = cache_on(ConnectionPool)
    assert [cache.hit_window("k", 60) for _ in range(3)] == [(1, 60.0), (2, 60.0), (3, 60.0)]
    (kept,) = cache._kept.values()
    assert isinstance(kept._connection, InMemoryRedisConnection)  # EVALSHA went out on the kept connection
    assert not cache.redis_is_down()


def test_a_redis_py_without_the_parts_the_kept_connection_uses_still_counts_hits(caplog):
    """Without the fallback, the AttributeError escapes the cache's guard (which catches Redis errors only) and
    every throttled request answers 500."""
    cache = cache_on(PoolOfALaterRedisPy)
    with caplog.at_level(logging.ERROR, logger="core.cache"):
        hits = [cache.hit_window("k", 60) for _ in range(3)]
    assert hits == [(1, 60.0), (2, 60.0), (3, 60.0)]  # the same answers, counted in Redis, not locally
    assert cache._kept_unsupported and not cache.redis_is_down()
    assert [r.getMessage() for r in caplog.records].count(
        f"The kept Redis connection does not work with redis-py {redis.__version__} "
        "(core.cache.CHECKED_WITH_REDIS_PY); sending EVALSHA through redis-py's client instead."
    ) == 1  # logged once, not per hit
    InMemoryRedisConnection.scripts.clear()  # SCRIPT FLUSH: the fallback loads it again, as the kept path does
    assert cache.hit_window("k", 60) == (4, 60.0)


def test_the_redis_py_parts_the_kept_connection_relies_on_are_those_it_was_checked_with():
    """Fails loudly on another redis-py: check core.cache.KeptConnection against it (make_connection,
    ensure_connection, retry.call_with_retry, send_command, read_response, disconnect), then update
    core.cache.CHECKED_WITH_REDIS_PY."""
    assert tuple(int(part) for part in redis.__version__.split(".")[:2]) == CHECKED_WITH_REDIS_PY, (
        f"redis-py {redis.__version__} is installed; core.cache.KeptConnection was checked with "
        f"{CHECKED_WITH_REDIS_PY}: check it against this version, then update core.cache.CHECKED_WITH_REDIS_PY"
    )

    def parameters(function) -> list[tuple[str, object]]:
        return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]

    positional, var_positional, var_keyword = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    )
    assert parameters(ConnectionPool.make_connection) == [("self", positional)]
    assert parameters(ConnectionPool.ensure_connection) == [("self", positional), ("connection", positional)]
    assert parameters(Connection.send_command) == [
        ("self", positional),
        ("args", var_positional),
        ("kwargs", var_keyword),
    ]
    read = inspect.signature(Connection.read_response).parameters.values()
    assert all(
        p.default is not inspect.Parameter.empty or p.name == "self" or p.kind in (var_positional, var_keyword)
        for p in read
    ), "Connection.read_response() must be callable with no arguments"
    assert callable(Connection.disconnect)
    call = inspect.signature(Retry.call_with_retry).parameters
    assert list(call)[:3] == ["self", "do", "fail"], list(call)
    assert isinstance(Connection(host="in-memory.invalid").retry, Retry)  # every connection carries its retry policy
