# -*- test-case-name: tests.integration.test_shared_state -*-
"""Bans, connections per address and sessions per user, counted across every node
through one Redis (``--shared-state redis://...``).

- **Counts age out.** Each node keeps its own counts (the truth about what it
  holds) and mirrors them into hashes of its own, ``ftpd:node:<id>:<kind>``, which
  expire ``ttl`` seconds after its last heartbeat. The heartbeat (every ``ttl``/3)
  rewrites them from the node's counts and marks the node live in ``ftpd:nodes``
  (scored by Redis's clock, so the nodes' clocks do not matter). A node that dies
  without a goodbye stops beating, and its counts stop counting within ``ttl``.
- **Atomic admission.** Taking a connection or session slot is one Lua script:
  add up the live nodes' counts and, only when below the limit, count one more
  for this node, so two nodes cannot both take the last slot.
- **Bans** are keys with the ban's length as their expiry (``ftpd:ban:<addr>``);
  failures per address are a counter that expires ``window`` seconds after the
  first one. The node whose failure reaches ``ban_after`` sets the ban (one
  script: exactly one node bans) and logs the ``ban`` event.
- **Never on the reactor.** The synchronous ``redis`` client runs in one thread of
  its own, so calls are made in the order they were asked for.
- **Redis down** (or any Redis error): decisions fail open to this node's own
  counts and its copy of the bans (a ban learned from Redis stays in the node's
  BanTable), one error line says so, and each heartbeat tries again; the first
  that gets through rewrites the node's counts, so nothing has to be replayed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from twisted_ftpd.urls import redact

#: What is counted: connections per client address, logged-in sessions per user.
CONNECTIONS = "connections"
SESSIONS = "sessions"
KINDS = (CONNECTIONS, SESSIONS)
DEFAULT_TTL = 30.0
#: Seconds one Redis call may take before this node counts Redis as down.
CALL_TIMEOUT = 2.0
SCHEMES = ("redis://", "rediss://", "unix://")

# Redis's clock in ms, so that nodes whose clocks differ agree on who is live.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: nodes, this node's hash[, ban key]; ARGV: node, field, limit, ttl ms, hash
# prefix, hash suffix. {1, total} taken; {0, total} full; {-1, ms left} banned.
_ACQUIRE = _NOW + """
if KEYS[3] then
  local left = redis.call('PTTL', KEYS[3])
  if left > 0 then return {-1, left} end
end
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
local limit = tonumber(ARGV[3])
local total = 0
if limit > 0 then
  for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    total = total + tonumber(redis.call('HGET', ARGV[5] .. node .. ARGV[6], ARGV[2]) or 0)
  end
  if total >= limit then return {0, total} end
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, total + 1}
"""

# KEYS: this node's hash; ARGV: field. An expired hash is left for the heartbeat.
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""

# KEYS: nodes, then this node's hashes; ARGV: node, ttl ms, then each hash's counts (JSON).
_HEARTBEAT = _NOW + """
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
for i = 2, #KEYS do
  redis.call('DEL', KEYS[i])
  for field, n in pairs(cjson.decode(ARGV[i + 1])) do
    redis.call('HSET', KEYS[i], field, n)
  end
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""

# KEYS: failures, ban, earlier bans; ARGV: ban_after, window ms, first ban ms, longest
# ban ms. {failures, 0, 0}; {failures, ban ms, 1} banned now; {0, ms left, 0} banned.
_FAILURE = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {0, left, 0} end
local failures = redis.call('INCR', KEYS[1])
if failures == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local ban_after = tonumber(ARGV[1])
if ban_after > 0 and failures >= ban_after then
  local earlier = redis.call('INCR', KEYS[3]) - 1
  local ms = math.min(tonumber(ARGV[3]) * 2 ^ math.min(earlier, 32), tonumber(ARGV[4]))
  ms = math.floor(ms)
  redis.call('SET', KEYS[2], '1', 'PX', ms)
  redis.call('PEXPIRE', KEYS[3], 2 * ms)
  redis.call('DEL', KEYS[1])
  return {failures, ms, 1}
end
return {failures, 0, 0}
"""


def parse_ttl(text: str) -> float:
    """``--shared-state-ttl``: seconds, at least 1 (the heartbeat comes every third)."""
    value = float(text)
    if not 1 <= value < float("inf"):
        raise ValueError(f"expected 1 or more seconds, got {text}")
    return value


def parse_url(text: str) -> str:
    """``--shared-state`` is a Redis URL."""
    if not text.startswith(SCHEMES):
        raise ValueError(f"expected a redis://HOST:PORT/DB URL, got {text!r}")
    return text


@dataclass(frozen=True)
class Refused:
    """A slot not taken: ``full`` (``count`` held across the nodes) or ``banned``
    (for ``seconds`` more)."""

    reason: str
    count: int = 0
    seconds: float = 0.0


class Hold:
    """A slot this node holds (counted in Redis, or only here while Redis is down);
    ``release`` gives it back, once."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


@dataclass(frozen=True)
class FailureCount:
    """A failed login as Redis counted it: ``failures`` in the window, or a ban of
    ``ban_seconds`` (``new``: begun by this failure)."""

    failures: int
    ban_seconds: float = 0.0
    new: bool = False


class SharedState:
    """One node's view of the shared counts; ``start`` it with the server, ``stop`` after."""

    log = Logger()

    def __init__(self, url: str, reactor: IReactorThreads, clock: IReactorTime | None = None,
                 ttl: float = DEFAULT_TTL, node: str | None = None,
                 prefix: str = "ftpd:") -> None:
        import redis  # imported here: only servers with --shared-state need it

        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=CALL_TIMEOUT,
                                            socket_connect_timeout=CALL_TIMEOUT)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release = self._client.register_script(_RELEASE)
        self._heartbeat = self._client.register_script(_HEARTBEAT)
        self._failure = self._client.register_script(_FAILURE)
        self.url = redact(url)  # for the log
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.ttl = ttl
        self.node = node or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.prefix = prefix
        self._pool = ThreadPool(1, 1, "twisted-ftpd-redis")
        # Slots held by this node, by kind and field: rewritten to Redis at each beat.
        self._held: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        self._down: str | None = None  # the error, while Redis cannot be reached
        self._beat = LoopingCall(self.heartbeat)
        self._beat.clock = self.clock

    # -- keys ----------------------------------------------------------------------

    def _node_key(self, kind: str, node: str | None = None) -> str:
        return f"{self.prefix}node:{node or self.node}:{kind}"

    def _key(self, what: str, host: str) -> str:
        return f"{self.prefix}{what}:{host}"

    @property
    def available(self) -> bool:
        """Whether the last Redis call got through."""
        return self._down is None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._pool.start()
        self._beat.start(self.ttl / 3, now=True)

    def stop(self) -> defer.Deferred[None]:
        """Stop beating and take this node's counts out of Redis at once (a crash
        leaves them to expire instead)."""
        if self._beat.running:
            self._beat.stop()
        if not self._pool.started:
            return defer.succeed(None)
        keys = [self._node_key(kind) for kind in KINDS]

        def leave() -> None:
            pipe = self._client.pipeline()
            pipe.delete(*keys).zrem(f"{self.prefix}nodes", self.node)
            pipe.execute()

        d = self._call(leave, probe=True)
        d.addBoth(lambda _: self._pool.stop())
        d.addBoth(lambda _: self._client.close())
        return d

    # -- counted slots -------------------------------------------------------------

    def acquire(self, kind: str, field: str, limit: int = 0, ban_host: str | None = None,
                ) -> defer.Deferred[Hold | Refused]:
        """Take a ``kind`` slot for ``field`` unless the nodes hold ``limit`` (0: no
        limit) already or ``ban_host`` is banned. While Redis is down, the slot is
        held on this node only (and counted in Redis once it is back)."""
        held = self._held[kind]
        held[field] = held.get(field, 0) + 1  # before the call: a beat meanwhile counts it
        keys = [f"{self.prefix}nodes", self._node_key(kind)]
        if ban_host is not None:
            keys.append(self._key("ban", ban_host))
        args = [self.node, field, limit, int(self.ttl * 1000), f"{self.prefix}node:",
                f":{kind}"]
        d = self._call(self._acquire, keys, args)

        def decided(result: list[int] | None) -> Hold | Refused:
            if result is not None and result[0] != 1:
                self._drop(kind, field)
                if result[0] == -1:
                    return Refused("banned", seconds=result[1] / 1000)
                return Refused("full", count=int(result[1]))
            return Hold(lambda: self._give_back(kind, field))

        return d.addCallback(decided)

    def _drop(self, kind: str, field: str) -> None:
        held = self._held[kind]
        left = held.get(field, 0) - 1
        if left > 0:
            held[field] = left
        else:
            held.pop(field, None)

    def _give_back(self, kind: str, field: str) -> None:
        self._drop(kind, field)
        self._call(self._release, [self._node_key(kind)], [field])

    def settled(self) -> defer.Deferred[None]:
        """Fires once every Redis call asked for so far has been made (they run in
        order, in one thread)."""
        return self._call(lambda: None, probe=True).addCallback(lambda _: None)

    # -- bans ------------------------------------------------------------------------

    def failure(self, host: str, ban_after: int, window: float, ban_time: float,
                longest: float) -> defer.Deferred[FailureCount | None]:
        """Count a failed login from ``host`` across the nodes (None: Redis is down)."""
        keys = [self._key(what, host) for what in ("failures", "ban", "bans")]
        args = [ban_after, int(window * 1000), int(ban_time * 1000),
                int(max(longest, ban_time) * 1000)]
        d = self._call(self._failure, keys, args)

        def counted(result: list[int] | None) -> FailureCount | None:
            if result is None:
                return None
            return FailureCount(int(result[0]), result[1] / 1000, bool(result[2]))

        return d.addCallback(counted)

    def ban_left(self, host: str) -> defer.Deferred[float | None]:
        """Seconds ``host``'s ban has left (0: not banned; None: Redis is down)."""
        d = self._call(self._client.pttl, self._key("ban", host))
        return d.addCallback(lambda ms: None if ms is None else max(ms, 0) / 1000)

    # -- the heartbeat and the calls -----------------------------------------------

    def heartbeat(self) -> defer.Deferred[Any]:
        """Write this node's counts to Redis again, with a fresh expiry (every ttl/3);
        while Redis is down, also the probe that finds it back."""
        keys = [f"{self.prefix}nodes", *(self._node_key(kind) for kind in KINDS)]
        args = [self.node, int(self.ttl * 1000),
                *(json.dumps(self._held[kind]) for kind in KINDS)]
        return self._call(self._heartbeat, keys, args, probe=True)

    def _call(self, f: Callable[..., Any], *args: Any, probe: bool = False,
              ) -> defer.Deferred[Any]:
        """``f(*args)`` in the Redis thread; fires with None if Redis fails, and
        without a try while Redis is down (only the heartbeat, a ``probe``, tries)."""
        if (self._down is not None and not probe) or not self._pool.started:
            return defer.succeed(None)
        d = threads.deferToThreadPool(self.reactor, self._pool, f, *args)
        return d.addCallbacks(self._got_through, self._failed)

    def _got_through(self, result: Any) -> Any:
        if self._down is not None:
            self._down = None
            self.log.info("Shared state {url} is reachable again: bans and limits are "
                          "shared by the nodes again", url=self.url)
        return result

    def _failed(self, failure: Failure) -> None:
        failure.trap(*self._errors)
        text = " ".join(str(failure.value).split()) or failure.type.__name__
        if self._down is None:
            self.log.error("Shared state {url} unavailable ({error}): bans, connection and "
                           "session limits are this node's own until it is back (trying "
                           "again every {interval:.0f} s)", url=self.url, error=text,
                           interval=self.ttl / 3)
        self._down = text
        return None
