"""The throttle's kept Redis connection (core.cache.KeptConnection) without a Redis server or a database: it relies on
undocumented redis-py parts, so a redis-py that changes them must fail this file loudly (the version pin and the
signatures below), and, if one ships anyway, a throttle hit must still be counted (through `client.evalsha`) instead
of answering 500."""

from __future__ import annotations

import hashlib
import inspect
import logging
import socket
import sys
import warnings

import pytest
import redis
from django.core.cache.backends.base import BaseCache, CacheKeyWarning
from redis.backoff import NoBackoff
from redis.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from core.cache import CHECKED_WITH_REDIS_PY, ResilientRedisCache


class InMemoryRedisConnection(Connection):
    """A redis-py connection answering from memory the commands a throttle hit sends (SCRIPT LOAD, EVALSHA of
    HIT_WINDOW_LUA, SCRIPT FLUSH): its window counter is the script's SET NX, INCR and TTL, with no clock."""

    windows: dict[str, int] = {}
    scripts: set[str] = set()
    sent: list[tuple] = []

    def connect(self):
        """A socket of its own (one end of a pair), as redis-py's parser reads from: nothing ever arrives on it."""
        if self._sock is None:
            self._sock, self._peer = socket.socketpair()
            self._parser.on_connect(self)

    def disconnect(self, *args, **kwargs):
        if self._sock is not None:
            self._parser.on_disconnect()
            self._sock.close()
            self._peer.close()
            self._sock = None

    def pack_command(self, *args):
        return [args]  # "packed": kept as it is, read back by send_packed_command

    def send_packed_command(self, command, check_health=True):
        (args,) = command
        self.send_command(*args)

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


def failing_reply(error: Exception, times: int = -1) -> type[InMemoryRedisConnection]:
    """An in-memory connection whose EVALSHA runs (the hit counted) but reading its reply fails with `error`: the
    first `times` times, or always."""
    left = [times]

    class FailingReplyRedisConnection(InMemoryRedisConnection):
        def read_response(self, *args, **kwargs):
            reply = super().read_response(*args, **kwargs)
            if str(self._last[0]).upper() == "EVALSHA" and left[0] != 0:
                left[0] -= 1
                raise error
            return reply

    return FailingReplyRedisConnection


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
    ensure_connection, the connection's _sock, _parser._buffer.unread_bytes(), connect, pack_command,
    send_packed_command, read_response, disconnect), then update core.cache.CHECKED_WITH_REDIS_PY."""
    assert tuple(int(part) for part in redis.__version__.split(".")[:2]) == CHECKED_WITH_REDIS_PY, (
        f"redis-py {redis.__version__} is installed; core.cache.KeptConnection was checked with "
        f"{CHECKED_WITH_REDIS_PY}: check it against this version, then update core.cache.CHECKED_WITH_REDIS_PY"
    )

    def parameters(function) -> list[tuple[str, object]]:
        return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]

    positional, var_positional = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL
    assert parameters(ConnectionPool.make_connection) == [("self", positional)]
    assert parameters(ConnectionPool.ensure_connection) == [("self", positional), ("connection", positional)]
    assert parameters(Connection.connect) == [("self", positional)]
    assert parameters(Connection.pack_command) == [("self", positional), ("args", var_positional)]
    assert parameters(Connection.send_packed_command) == [
        ("self", positional),
        ("command", positional),
        ("check_health", positional),
    ]
    read = inspect.signature(Connection.read_response).parameters.values()
    assert all(
        p.default is not inspect.Parameter.empty
        or p.name == "self"
        or p.kind in (var_positional,)
        or p.kind == inspect.Parameter.VAR_KEYWORD
        for p in read
    ), "Connection.read_response() must be callable with no arguments"
    assert callable(Connection.disconnect)
    connection = Connection(host="in-memory.invalid")
    assert connection._sock is None  # set by connect(), None again after disconnect()
    connection._sock, peer = socket.socketpair()  # what connect() leaves: a socket, and the parser reading it
    try:
        connection._parser.on_connect(connection)
        assert connection._parser._buffer.unread_bytes() == 0
    finally:
        connection.disconnect()
        peer.close()


def test_a_hit_is_sent_once_whatever_retry_policy_the_connection_has():
    """EVALSHA's INCR counts the hit: a reply lost after the server may have run it (a timeout) must not send it
    again, whatever retries the connection is configured with (they apply to connecting only). The hit is then
    answered from local memory, as for any Redis error. Fails when the command runs under call_with_retry."""

    cache_on(ConnectionPool)  # the in-memory server emptied
    cache = ResilientRedisCache(
        "redis://in-memory.invalid:6379/0",
        {
            "OPTIONS": {
                "pool_class": ConnectionPool,
                "connection_class": failing_reply(RedisTimeoutError("Timeout reading from in-memory.invalid:6379")),
                "retry": Retry(NoBackoff(), 3),
                "retry_on_timeout": True,
            }
        },
    )
    assert cache.hit_window("k", 60) == (1, 60.0)  # answered by the local fallback
    assert cache.redis_is_down()
    assert InMemoryRedisConnection.windows == {cache.make_key("k"): 1}  # run once by "Redis"
    assert [args[0] for args in InMemoryRedisConnection.sent].count("EVALSHA") == 1


def in_memory_cache_with(connection_class) -> ResilientRedisCache:
    cache_on(ConnectionPool)  # the in-memory server emptied
    options = {"pool_class": ConnectionPool, "connection_class": connection_class}
    return ResilientRedisCache("redis://in-memory.invalid:6379/0", {"OPTIONS": options})


def test_a_hit_whose_reply_was_lost_is_not_sent_again():
    """A connection error reading the reply (the server closed it, maybe after running EVALSHA) is not a send
    error: nothing is sent again, the hit is answered from local memory, as for any Redis error."""
    cache = in_memory_cache_with(failing_reply(RedisConnectionError("Connection closed by server.")))
    assert cache.hit_window("k", 60) == (1, 60.0)  # answered by the local fallback
    assert cache.redis_is_down()
    assert InMemoryRedisConnection.windows == {cache.make_key("k"): 1}
    assert [args[0] for args in InMemoryRedisConnection.sent].count("EVALSHA") == 1


def test_a_hit_whose_send_failed_is_sent_once_more_on_a_new_connection():
    """A connection error from the send (redis-py's send_packed_command: EPIPE, ECONNRESET) means the command never
    reached the server: the connection is made anew and the hit sent once more, counted once, no fallback. A
    second failure goes to the caller (no third send). Fails when a send error goes to the cache's guard."""

    class ResetRedisConnection(InMemoryRedisConnection):
        failures = [1]

        def send_packed_command(self, command, check_health=True):
            (args,) = command
            if args[0] == "EVALSHA" and self.failures:
                self.failures.pop()
                self.disconnect()  # as redis-py does before raising
                raise RedisConnectionError("Error 104 while writing to socket. Connection reset by peer.")
            super().send_packed_command(command, check_health)

    cache = in_memory_cache_with(ResetRedisConnection)
    assert cache.hit_window("k", 60) == (1, 60.0)
    assert not cache.redis_is_down() and InMemoryRedisConnection.windows == {cache.make_key("k"): 1}
    ResetRedisConnection.failures = [1, 1]
    assert cache.hit_window("k", 60) == (1, 60.0)  # twice refused: the local fallback
    assert cache.redis_is_down() and ResetRedisConnection.failures == []
    assert InMemoryRedisConnection.windows == {cache.make_key("k"): 1}


def test_a_redis_py_failing_after_the_send_does_not_send_the_hit_again_through_its_client(caplog):
    """An AttributeError or TypeError once EVALSHA was handed to redis-py (here reading its reply) may come after
    Redis counted it: the hit is not sent again through `client.evalsha` (a double count) but answered as for a
    Redis error; later hits go through the client. Fails when the fallback resends it."""
    cache = in_memory_cache_with(failing_reply(AttributeError("'_RESP3Parser' has no attribute '_buffer'"), times=1))
    with caplog.at_level(logging.ERROR, logger="core.cache"):
        assert cache.hit_window("k", 60) == (1, 60.0)  # answered by the local fallback
    assert InMemoryRedisConnection.windows == {cache.make_key("k"): 1}  # counted once by "Redis"
    assert [args[0] for args in InMemoryRedisConnection.sent].count("EVALSHA") == 1
    assert cache._kept_unsupported and cache.redis_is_down()
    assert any("does not work with redis-py" in r.getMessage() for r in caplog.records)


def test_a_kept_connection_is_checked_with_one_poll_and_pool_checks_only_what_it_reports(monkeypatch):
    """Before each command the kept connection is checked as a pool checkout checks it, but by one poll of its
    socket: redis-py's own check (ensure_connection: can_read, three system calls) runs only when the poll or the
    parser's buffer reports something, e.g. the server closed the connection. Fails when every hit runs
    ensure_connection."""
    checks = []
    ensure = ConnectionPool.ensure_connection
    monkeypatch.setattr(ConnectionPool, "ensure_connection", lambda self, c: checks.append(c) or ensure(self, c))
    cache = cache_on(ConnectionPool)
    assert cache.hit_window("k", 60)[0] == 1  # the script loaded through the pool (checked out and in)
    checks.clear()
    assert [cache.hit_window("k", 60)[0] for _ in range(2)] == [2, 3]
    assert checks == []
    (kept,) = cache._kept.values()
    connection = kept._connection
    connection._peer.close()  # the server closes the connection: an end of file is pending
    assert cache.hit_window("k", 60)[0] == 4
    assert checks == [connection] and kept._connection is connection  # redis-py's check reconnected it
    assert cache.hit_window("k", 60)[0] == 5 and len(checks) == 1  # on a new socket, polled anew
    connection._peer.sendall(b"+unexpected\r\n")  # data nobody asked for: redis-py's check decides what it is
    cache.hit_window("k", 60)
    assert len(checks) == 2
    assert not cache.redis_is_down()


def test_the_packed_command_of_a_repeated_hit_is_packed_once(monkeypatch):
    packed = []
    monkeypatch.setattr(
        InMemoryRedisConnection, "pack_command", lambda self, *args: packed.append(args) or [args], raising=True
    )
    cache = cache_on(ConnectionPool)
    assert [cache.hit_window(key, 60)[0] for key in ("a", "a", "b", "a", "b")] == [1, 2, 1, 3, 2]
    assert [args[3] for args in packed] == [cache.make_key("a"), cache.make_key("b")]


def test_a_cache_that_was_never_down_reads_no_clock(monkeypatch):
    from core import cache as core_cache

    cache = cache_on(ConnectionPool)
    cache.hit_window("k", 60)
    reads = []
    monotonic = core_cache.time.monotonic
    monkeypatch.setattr(core_cache.time, "monotonic", lambda: reads.append(1) or monotonic())
    assert cache.hit_window("k", 60)[0] == 2
    assert reads == []


KEYS = [
    "throttle_contracts_12",
    "a" * 250,
    "a" * 251,
    "with space",
    "tab\there",
    "del\x7f",
    "ctl\x1f",
    "é-ü",
    "",
    "~!{}",
]


@pytest.mark.parametrize("key", KEYS)
def test_a_cache_key_gets_the_warnings_django_gives_it(key):
    cache = cache_on(ConnectionPool)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        cache.validate_key(key)
    with warnings.catch_warnings(record=True) as djangos:
        warnings.simplefilter("always")
        BaseCache.validate_key(cache, key)
    assert [(w.category, str(w.message)) for w in ours] == [(w.category, str(w.message)) for w in djangos]
    assert all(w.category is CacheKeyWarning for w in ours)


def test_a_plain_key_is_not_walked_character_by_character(monkeypatch):
    from django.core.cache.backends import base

    walked = []
    monkeypatch.setattr(base, "memcache_key_warnings", lambda key: walked.append(key) or iter(()))
    cache = cache_on(ConnectionPool)
    cache.hit_window("throttle_contracts_12", 60)
    cache.validate_key("with space")
    assert walked == ["with space"]
