# -*- test-case-name: tests.test_limits -*-
"""Who may start a session: connection limits and bans, decided once per connection.

The protocol asks ``admit`` when its session starts, before any user lookup or
password check, with the client's own address: a PROXY-protocol front end
(issue 13) must ask only once its header has named the real client, which is
why this is not done in ``buildProtocol``, where the balancer's address is all
there is. A refused client gets a 421 saying why, never a silent close.
(``policies.LimitConnectionsByPeer`` would do the per-address count, but it
indexes ``IPv4Address`` objects like tuples and fails on them.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from twisted_ftpd.auth.bans import MAX_BAN, BanTable, Emit, Verdict, delay_factor, log_event
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.addresses import normalize
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.shared_state import CONNECTIONS, FailureCount, Hold, Refused, SharedState

from . import session_log

if TYPE_CHECKING:
    from .context import CommandContext
    from .protocol import FTPControlProtocol


class ConnectionLimits:
    """Counts admitted sessions, in total and by address (0: no limit), and keeps the
    server's BanTable; refusals are ``refused`` events.

    With ``shared`` (``--shared-state``), the per-address count and the bans are
    those of every node: ``admit``, ``banned`` and ``failure`` then answer with a
    Deferred once Redis has (without it, at once). ``--max-connections`` stays per
    node: it guards this process's file descriptors.
    """

    def __init__(self, max_connections: int, max_per_address: int, bans: BanTable,
                 shared: SharedState | None = None) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.bans = bans
        self.shared = shared
        self._admitted: dict[FTPControlProtocol, str] = {}  # session -> its address
        self._per_address: dict[str, int] = {}
        self._holds: dict[FTPControlProtocol, Hold] = {}  # its slot in the shared count

    @classmethod
    def from_config(cls, config: ServerConfig, clock: IReactorTime,
                    emit: Emit = log_event, shared: SharedState | None = None,
                    ) -> ConnectionLimits:
        """The limits ``config`` sets; ``emit`` (the server's EventLog.emit) gets bans."""
        bans = BanTable(clock, config.ban_after, config.ban_window, config.ban_time, emit=emit)
        return cls(config.max_connections, config.max_connections_per_ip, bans, shared)

    @property
    def total(self) -> int:
        return len(self._admitted)

    def count(self, host: str) -> int:
        """Admitted sessions from ``host`` now (on this node)."""
        return self._per_address.get(normalize(host), 0)

    def refusal(self, host: str) -> tuple[str, Reply] | None:
        """(reason, 421 reply) if a new session from ``host`` may not start now, as far
        as this node knows."""
        key = normalize(host)
        if self.bans.banned(key):
            return "banned", replies.ADDRESS_BANNED
        if self.max_connections and self.total >= self.max_connections:
            return "max-connections", replies.TOO_MANY_CONNECTIONS
        if self.max_per_address and self._per_address.get(key, 0) >= self.max_per_address:
            return "max-connections-per-ip", replies.TOO_MANY_FROM_ADDRESS
        return None

    def admit(self, proto: FTPControlProtocol) -> Reply | None | Deferred[Reply | None]:
        """Count ``proto`` in until its connection is lost, or return the 421 it gets."""
        key = normalize(proto.peer_host)
        refused = self.refusal(key)
        if refused is not None:
            return self._refuse(proto, *refused)
        self._admitted[proto] = key
        self._per_address[key] = self._per_address.get(key, 0) + 1
        proto.on_lost.append(self._release)
        if self.shared is None:
            return None
        d = self.shared.acquire(CONNECTIONS, key, self.max_per_address, ban_host=key)
        return d.addCallback(self._shared_verdict, proto, key)

    def _shared_verdict(self, outcome: Hold | Refused, proto: FTPControlProtocol, key: str,
                        ) -> Reply | None:
        if isinstance(outcome, Hold):
            if proto.gone:  # left while Redis was asked
                outcome.release()
            else:
                self._holds[proto] = outcome
            return None
        self._release(proto)
        if outcome.reason == "banned":
            self.bans.impose(key, outcome.seconds)
            return self._refuse(proto, "banned", replies.ADDRESS_BANNED)
        return self._refuse(proto, "max-connections-per-ip", replies.TOO_MANY_FROM_ADDRESS)

    def _refuse(self, proto: FTPControlProtocol, reason: str, reply: Reply) -> Reply:
        session_log.emit(proto, "refused", reason=reason)
        return reply

    def _release(self, proto: FTPControlProtocol) -> None:
        hold = self._holds.pop(proto, None)
        if hold is not None:
            hold.release()
        key = self._admitted.pop(proto, None)
        if key is None:
            return
        left = self._per_address.pop(key) - 1
        if left:
            self._per_address[key] = left

    # -- login failures and bans, across the nodes with ``shared`` ---------------------

    def banned(self, host: str) -> Deferred[bool]:
        """Whether ``host`` is banned now, here or (with ``shared``) on any node."""
        key = normalize(host)
        if self.bans.banned(key):
            return succeed(True)
        if self.shared is None:
            return succeed(False)

        def learned(seconds: float | None) -> bool:
            if seconds:
                self.bans.impose(key, seconds)
            return bool(seconds)

        return self.shared.ban_left(key).addCallback(learned)

    def failure(self, host: str) -> Deferred[Verdict]:
        """Count a failed login from ``host`` (with ``shared``: across the nodes; while
        Redis is down, here): the delay it gets and whether it is banned now."""
        key = normalize(host)
        if self.shared is None:
            return succeed(self.bans.failure(key))
        bans = self.bans
        d = self.shared.failure(key, bans.ban_after, bans.window, bans.ban_time, MAX_BAN)

        def counted(shared: FailureCount | None) -> Verdict:
            if shared is None:
                return bans.failure(key)
            if shared.ban_seconds:
                bans.impose(key, shared.ban_seconds, announce=shared.new)
                return Verdict(1.0, banned=True)
            return Verdict(delay_factor(shared.failures))

        return d.addCallback(counted)


def refuse(ctx: CommandContext, reason: str, reply: Reply) -> None:
    """End a session that may not log in (``reason`` as in ``refused`` events) with
    ``reply``, a 421."""
    session_log.emit(ctx, "refused", reason=reason)
    ctx.close_after(reply)
