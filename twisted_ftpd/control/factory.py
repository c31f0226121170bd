# -*- test-case-name: tests.test_control_session,tests.test_control_security -*-
"""Builds control connections and keeps track of the live ones."""

from __future__ import annotations

from collections.abc import Callable

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.events import EventLog
from twisted_ftpd.hooks import UploadHooks
from twisted_ftpd.quota import QuotaRegistry
from twisted_ftpd.shared_state import SharedState
from twisted_ftpd.tls import TLSCredentials

from .limits import ConnectionLimits
from .protocol import FTPControlProtocol


class FTPFactory(ServerFactory):
    noisy = False

    def __init__(self, portal: Portal, config: ServerConfig, reactor: IReactorTCP,
                 clock: IReactorTime | None = None, tls: TLSCredentials | None = None,
                 lookup_user: Callable[[str], Deferred] | None = None,
                 shared: SharedState | None = None) -> None:
        self.portal = portal
        self.tls = tls
        self.lookup_user = lookup_user
        self.config = config
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.sessions: set[FTPControlProtocol] = set()
        self.events = EventLog()  # this server's session events (metrics, xferlog)
        # Connection limits and bans, shared by every session of this server (and, with
        # --shared-state, every node's).
        self.shared = shared
        self.limits = ConnectionLimits.from_config(config, self.clock, emit=self.events.emit,
                                                   shared=shared)
        # --upload-check/--on-upload and the quota counts per home, for every session.
        self.upload_hooks = UploadHooks.from_config(config, reactor, self.clock)
        self.quotas = QuotaRegistry(self.clock, config.quota_rescan)
        # Called with every new session before it starts (the test server's faults).
        self.session_hooks: list[Callable[[FTPControlProtocol], None]] = []

    def buildProtocol(self, addr: IAddress, implicit_tls: bool = False) -> FTPControlProtocol:
        proto = FTPControlProtocol(self.portal, self.config, self.reactor, self.clock,
                                   tls=self.tls, implicit_tls=implicit_tls,
                                   lookup_user=self.lookup_user, limits=self.limits)
        proto.factory = self
        proto.events = self.events
        proto.upload_hooks, proto.quotas = self.upload_hooks, self.quotas
        for hook in self.session_hooks:
            hook(proto)
        self.sessions.add(proto)
        proto.on_lost.append(self.sessions.discard)
        return proto


class ImplicitTLSFactory(ServerFactory):
    """The implicit-FTPS port: sessions of the same server that start with TLS."""

    noisy = False

    def __init__(self, main: FTPFactory) -> None:
        self.main = main

    def buildProtocol(self, addr: IAddress) -> FTPControlProtocol:
        return self.main.buildProtocol(addr, implicit_tls=True)
