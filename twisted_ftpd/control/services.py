# -*- test-case-name: tests.test_control_session -*-
"""What every session of one server shares, made once per server and handed to each
connection: the cred portal, the configuration, the clocks, TLS credentials, the
connection limits and bans, session events, upload hooks and quota counts.

Sessions hold this one object rather than ten loose references, so a new
server-wide service is one field here, not a new constructor argument threaded
through the factory and the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTCP, IReactorTime

from twisted_ftpd.auth.userdb_watch import UserDBWatch
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.passive_range import PassiveRange
from twisted_ftpd.events import EventLog
from twisted_ftpd.hooks import UploadHooks
from twisted_ftpd.quota import QuotaRegistry
from twisted_ftpd.shared_state import SharedState
from twisted_ftpd.tls import TLSCredentials

from .limits import ConnectionLimits

if TYPE_CHECKING:
    from twisted.cred.portal import Portal


@dataclass
class ServerServices:
    portal: Portal
    config: ServerConfig
    reactor: IReactorTCP
    clock: IReactorTime
    tls: TLSCredentials | None = None  # None: FTPS is not configured
    # The users.db record of a name (for its per-user options), or None without one.
    lookup_user: Callable[[str], Deferred] | None = None
    events: EventLog = field(default_factory=EventLog)  # session events (metrics, xferlog)
    shared: SharedState | None = None  # --shared-state: limits and bans across the nodes
    users_watch: UserDBWatch | None = None  # users.db read from memory while unchanged
    limits: ConnectionLimits = field(init=False)  # connection limits and bans
    upload_hooks: UploadHooks | None = field(init=False)  # --upload-check, --on-upload
    quotas: QuotaRegistry = field(init=False)  # usage counts per home
    passive_range: PassiveRange = field(init=False)  # our passive listeners, PASVs waiting

    def __post_init__(self) -> None:
        self.limits = ConnectionLimits.from_config(self.config, self.clock,
                                                   emit=self.events.emit, shared=self.shared)
        self.upload_hooks = UploadHooks.from_config(self.config, self.reactor, self.clock)
        self.quotas = QuotaRegistry(self.clock, self.config.quota_rescan)
        self.passive_range = PassiveRange(self.clock)
