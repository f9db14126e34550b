"""A Redis cache that keeps the web app answering when Redis is down.

The cache holds nothing that must survive (API throttle counters, the failed-login limiter, dashboard
memoization), so losing Redis must not turn every request into a 500. `ResilientRedisCache` is Django's
`RedisCache` with every operation guarded: on a Redis error it logs once per outage, answers from a
per-process local-memory cache instead, and stops asking Redis for `retry_after_s` seconds (a circuit breaker,
so an outage costs one failed connection attempt per process every few seconds, not one per cache call).
When Redis answers again the shared cache is used again; the local entries are simply forgotten.

Consequence during an outage: throttle and login-failure counters are per process (still enforced, just not
shared between gunicorn workers). Short socket timeouts (OPTIONS socket_connect_timeout / socket_timeout in
settings) bound the cost of a Redis that hangs instead of refusing connections.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import threading
import time
from typing import cast

import redis
from django.core.cache.backends.base import MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

logger = logging.getLogger(__name__)

# The redis-py (major, minor) whose undocumented parts KeptConnection relies on were checked against (the pool's
# make_connection and ensure_connection, the connection's _sock, _parser._buffer.unread_bytes(), connect,
# pack_command, send_packed_command, read_response and disconnect):
# tests/reliability/test_kept_connection.py fails when another version is installed, or when those parts change.
CHECKED_WITH_REDIS_PY = (8, 2)

GUARDED = (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
    "hit_window",
)


HIT_WINDOW_LUA = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
local count = redis.call('INCR', KEYS[1])
return {count, redis.call('TTL', KEYS[1])}
"""


def hit_window(cache: BaseCache, key: str, window_s: int) -> tuple[int, float]:
    """Count one hit on `key` in a window that opens with its first hit and lasts `window_s` seconds; return the
    hits so far in the window and the seconds it still runs (a window counter for throttles and limiters).

    On Redis this is one round trip (`ResilientRedisCache.hit_window`); on other caches, add + incr.
    """
    counted = getattr(cache, "hit_window", None)  # `cache` may be django.core.cache's proxy of the real backend
    if counted is not None:
        return counted(key, window_s)
    cache.add(key, 0, timeout=window_s)
    try:
        return cache.incr(key), float(window_s)
    except ValueError:  # expired between add and incr: this hit opens the next window
        cache.set(key, 1, timeout=window_s)
        return 1, float(window_s)


class SharedClientRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client with one `redis.Redis` per connection pool, instead of a new one per cache
    call: its constructor copies a table of ~170 response callbacks, which cost more CPU than the round trip it
    serves on every throttled API request. A `redis.Redis` is thread-safe; the pool hands out connections."""

    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class KeptConnection:
    """One connection of a pool's kind, kept for one job by one process, outside the pool's checkout.

    Checking a connection out of redis-py's pool and back (a lock, the observability hooks of redis-py 8, the
    reconnect-on-release check) cost more CPU per throttled API request than the EVALSHA it carries. This keeps one
    connection made by the pool (`make_connection`: same class, address, timeouts and retry policy) and, before each
    command, checks it as a pool checkout would (`ConnectionPool.ensure_connection`: connect if not connected; data
    or an end of file pending, e.g. the server closed it, means reconnect, or reading push notifications where the
    pool takes them). That check is a poll of the socket that redis-py makes with three system calls and several
    layers of Python (`can_read`: timeout off, recv, timeout back); here it is one `poll(0)` on the kept socket, plus
    a look at the bytes redis-py's parser holds unread, and only when either reports something does the pool's own
    `ensure_connection` run, so what is done about pending data or a closed connection is redis-py's.

    The connection's retry policy applies to connecting (`connect`) only. A command whose send failed with a
    connection error (`send_packed_command`: EPIPE, ECONNRESET, a connection closed on write; redis-py disconnects it)
    never reached the server whole, so it is sent once more on a new connection: a connection the poll found idle but
    the server closed meanwhile costs a reconnect, not the cache's fallback. After the send, nothing is sent again,
    since the server may have run it (EVALSHA's INCR counts a hit): an error reading the reply goes to the caller
    (redis-py disconnects it), and so does a timeout while sending. A forked child (gunicorn preloads the app) makes
    its own; a lock keeps threads sharing it in turn."""

    def __init__(self, pool):
        self.pool = pool
        self._lock = threading.Lock()
        self._pid = 0
        self._connection = None
        self._socket = None
        self._poll = None
        self._packed = {}  # the arguments of a command -> the command packed

    def command(self, *args):
        """Send one command and return its reply unparsed (as redis-py returns EVALSHA's). The command is packed by
        the connection (`pack_command`) once per process for the same arguments (at most PACKED_KEPT of them).

        Raises `MaybeSent` for an AttributeError or TypeError from redis-py once the command was handed to it to
        send: it may have reached the server, so it must not be sent again another way."""
        with self._lock:
            connection = self._checked()
            packed = self._packed.get(args)
            if packed is None:
                if len(self._packed) >= PACKED_KEPT:
                    self._packed.clear()
                packed = self._packed[args] = connection.pack_command(*args)
            try:
                try:
                    connection.send_packed_command(packed)
                except RedisConnectionError:  # not sent whole: the server cannot have run it
                    connection.disconnect()
                    connection = self._checked()
                    connection.send_packed_command(packed)
                return connection.read_response()
            except (AttributeError, TypeError) as exc:
                with contextlib.suppress(AttributeError, TypeError):  # its reply, if any, must not be read later
                    connection.disconnect()
                raise MaybeSent(f"{type(exc).__name__} from redis-py after sending: {exc}") from exc

    def _checked(self):
        """The kept connection, connected and ready to send, as `ConnectionPool.ensure_connection` leaves it."""
        connection = self._connection
        if connection is None or self._pid != os.getpid():
            connection = self._connection = self.pool.make_connection()
            self._pid = os.getpid()
            self._packed.clear()
        sock = connection._sock
        if sock is None:
            connection.connect()
            sock = connection._sock
        poll = self._poll
        if sock is not self._socket or poll is None:
            poll = self._poll = select.poll()
            poll.register(sock, select.POLLIN)
            self._socket = sock
        if poll.poll(0) or _unread(connection):
            self.pool.ensure_connection(connection)
        return connection

    def close(self) -> None:
        """Disconnect the kept connection (the next command makes a new one)."""
        with self._lock:
            if self._connection is not None:
                self._connection.disconnect()
            self._connection = None


class MaybeSent(RedisError):
    """redis-py's parts failed (an AttributeError or TypeError) once a command was handed to it to send: the server
    may have run it, so it is not sent again; the cache's guard treats it as any Redis error (local fallback)."""


# Packed commands a KeptConnection keeps (the throttle's: one per throttle key and window seen by the process).
PACKED_KEPT = 1024


def _unread(connection) -> bool:
    """Whether redis-py's parser holds bytes it has read from the socket but not parsed yet (its SocketBuffer);
    a parser without one (hiredis) is always checked by the pool."""
    buffer = getattr(connection._parser, "_buffer", None)
    return buffer is None or buffer.unread_bytes() > 0


def _guarded(name: str):
    redis_method = getattr(RedisCache, name, None) or getattr(ResilientRedisCache, name)

    def local(self: ResilientRedisCache, *args, **kwargs):
        if name == "hit_window":
            return hit_window(self.fallback, *args, **kwargs)
        return getattr(self.fallback, name)(*args, **kwargs)

    # Redis, or while it is down (the breaker's pause) local memory; after the pause, the next successful call closes
    # the breaker again (mark_up). A cache that was never down reads no clock.
    @functools.wraps(redis_method)
    def method(self: ResilientRedisCache, *args, **kwargs):
        was_down = self._down_until != 0.0
        if was_down and self.redis_is_down():
            return local(self, *args, **kwargs)
        try:
            result = redis_method(self, *args, **kwargs)
        except RedisError as exc:
            self.mark_down(exc)
            return local(self, *args, **kwargs)
        if was_down and not self.redis_is_down():
            self.mark_up()
        return result

    return method


class ResilientRedisCache(RedisCache):
    """RedisCache that degrades to a local-memory cache while Redis is unreachable (OPTIONS: retry_after_s)."""

    def __init__(self, server, params):
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.retry_after_s = float(options.pop("retry_after_s", 5.0))
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
        self.fallback = LocMemCache(f"fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._hit_script = None  # (the writers' client, the sha of HIT_WINDOW_LUA) once loaded
        self._kept = {}
        self._kept_unsupported = False

    def validate_key(self, key: str) -> None:
        """Django's warnings for a key memcached would refuse (`BaseCache.validate_key`): a key of at most 250
        characters, all printable ASCII but the space, gets none, so it is not walked character by character (every
        throttled request makes one); any other key is Django's to check."""
        if len(key) <= MEMCACHE_MAX_KEY_LENGTH and key.isascii() and key.isprintable() and " " not in key:
            return
        super().validate_key(key)

    def redis_is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def mark_down(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until == 0.0
            self._down_until = time.monotonic() + self.retry_after_s
        if first:
            logger.warning("Redis cache unavailable (%s); using a local-memory cache meanwhile.", exc)

    def hit_window(self, key: str, window_s: int) -> tuple[int, float]:
        """See the module's `hit_window`: SET NX EX (the first hit opens the window), INCR and TTL in one
        round trip, as a script Redis runs atomically (EVALSHA; one command and one reply).

        It runs on every throttled API request, so it sends EVALSHA on a connection it keeps (`KeptConnection`)
        instead of through `Script.__call__`, `Redis.execute_command` and the pool's checkout, whose per-command
        layers (imports, metrics hooks, the retry closure, the pool's lock and hooks) cost more CPU than sending
        the command and reading its reply."""
        key = self.make_and_validate_key(key)
        client, sha = self._hit_script or self._load_hit_script()
        try:
            count, ttl = self._evalsha(client, sha, key, window_s)
        except NoScriptError:  # Redis restarted or its scripts were flushed: load it again, once (NOSCRIPT: not run)
            client.script_load(HIT_WINDOW_LUA)
            count, ttl = self._evalsha(client, sha, key, window_s)
        return int(count), float(ttl if ttl > 0 else window_s)

    def _load_hit_script(self):
        """The writers' client (Django's RedisCacheClient writes to its first server) and HIT_WINDOW_LUA's sha,
        loaded into Redis on first use."""
        client = self._cache.get_client(None, write=True)
        self._hit_script = (client, client.script_load(HIT_WINDOW_LUA))
        return self._hit_script

    def _evalsha(self, client, sha: str, key: str, window_s: int):
        """EVALSHA on the kept connection; if redis-py's parts it relies on changed (an AttributeError or TypeError,
        not a Redis error), log it once and from then on send it the supported way (`client.evalsha`). This hit is
        sent that way too only if the error came before EVALSHA was handed to redis-py to send; after (`MaybeSent`)
        Redis may have counted it, so it goes to the guard as a Redis error instead of being counted twice."""
        if self._kept_unsupported:
            return client.evalsha(sha, 1, key, window_s)
        kept = self._kept.get(id(client))
        try:
            if kept is None:
                kept = self._kept[id(client)] = KeptConnection(client.connection_pool)
            return kept.command("EVALSHA", sha, 1, key, window_s)
        except (AttributeError, TypeError, MaybeSent) as exc:
            self._kept_unsupported = True
            logger.exception(
                "The kept Redis connection does not work with redis-py %s (core.cache.CHECKED_WITH_REDIS_PY); "
                "sending EVALSHA through redis-py's client instead.",
                redis.__version__,
            )
            if isinstance(exc, MaybeSent):
                raise
            return client.evalsha(sha, 1, key, window_s)

    def disconnect(self) -> None:
        """Close every connection to Redis this cache holds: its pools' (redis-py's ConnectionPool.disconnect) and
        the kept ones. gunicorn's master calls it before forking the workers (deploy/gunicorn.conf.py), so no
        socket is shared between processes; the next command connects again."""
        shared = cast(SharedClientRedisCacheClient, self._cache)  # its client class, set in __init__
        for client in list(shared._clients.values()):
            client.connection_pool.disconnect()
        for kept in list(self._kept.values()):
            kept.close()

    def mark_up(self) -> None:
        with self._lock:
            recovered = self._down_until != 0.0
            self._down_until = 0.0
        if recovered:
            logger.warning("Redis cache is back.")


for _name in GUARDED:
    setattr(ResilientRedisCache, _name, _guarded(_name))
