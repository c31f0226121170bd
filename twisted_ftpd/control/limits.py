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

from twisted.internet.interfaces import IReactorTime

from twisted_ftpd.auth.bans import BanTable, Emit, log_event
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.addresses import normalize
from twisted_ftpd.protocol.replies import Reply

from . import session_log

if TYPE_CHECKING:
    from .context import CommandContext
    from .protocol import FTPControlProtocol


class ConnectionLimits:
    """Counts admitted sessions, in total and by address (0: no limit), and keeps the
    server's BanTable; refusals are ``refused`` events."""

    def __init__(self, max_connections: int, max_per_address: int, bans: BanTable) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.bans = bans
        self._admitted: dict[FTPControlProtocol, str] = {}  # session -> its address
        self._per_address: dict[str, int] = {}

    @classmethod
    def from_config(cls, config: ServerConfig, clock: IReactorTime,
                    emit: Emit = log_event) -> ConnectionLimits:
        """The limits ``config`` sets; ``emit`` (the server's EventLog.emit) gets bans."""
        bans = BanTable(clock, config.ban_after, config.ban_window, config.ban_time, emit=emit)
        return cls(config.max_connections, config.max_connections_per_ip, bans)

    @property
    def total(self) -> int:
        return len(self._admitted)

    def count(self, host: str) -> int:
        """Admitted sessions from ``host`` now."""
        return self._per_address.get(normalize(host), 0)

    def refusal(self, host: str) -> tuple[str, Reply] | None:
        """(reason, 421 reply) if a new session from ``host`` may not start now."""
        key = normalize(host)
        if self.bans.banned(key):
            return "banned", replies.ADDRESS_BANNED
        if self.max_connections and self.total >= self.max_connections:
            return "max-connections", replies.TOO_MANY_CONNECTIONS
        if self.max_per_address and self._per_address.get(key, 0) >= self.max_per_address:
            return "max-connections-per-ip", replies.TOO_MANY_FROM_ADDRESS
        return None

    def admit(self, proto: FTPControlProtocol) -> Reply | None:
        """Count ``proto`` in until its connection is lost, or return the 421 it gets."""
        key = normalize(proto.peer_host)
        refused = self.refusal(key)
        if refused is not None:
            reason, reply = refused
            session_log.emit(proto, "refused", reason=reason)
            return reply
        self._admitted[proto] = key
        self._per_address[key] = self._per_address.get(key, 0) + 1
        proto.on_lost.append(self._release)
        return None

    def _release(self, proto: FTPControlProtocol) -> None:
        key = self._admitted.pop(proto, None)
        if key is None:
            return
        left = self._per_address.pop(key) - 1
        if left:
            self._per_address[key] = left


def refuse(ctx: CommandContext, reason: str, reply: Reply) -> None:
    """End a session that may not log in (``reason`` as in ``refused`` events) with
    ``reply``, a 421."""
    session_log.emit(ctx, "refused", reason=reason)
    ctx.close_after(reply)
