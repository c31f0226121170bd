# -*- test-case-name: tests.test_control_session,tests.test_control_security -*-
"""Builds control connections and keeps track of the live ones."""

from __future__ import annotations

from collections.abc import Callable

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory

from twisted_ftpd.auth.userdb_watch import UserDBWatch
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.shared_state import SharedState
from twisted_ftpd.tls import TLSCredentials

from .protocol import FTPControlProtocol
from .services import ServerServices


def _shared(name: str) -> property:
    """A factory attribute that is its ServerServices' own, so that what a caller (the
    test server, a test) reads or replaces is what every session uses."""
    return property(lambda self: getattr(self.services, name),
                    lambda self, value: setattr(self.services, name, value))


class FTPFactory(ServerFactory):
    noisy = False
    portal, config, clock = _shared("portal"), _shared("config"), _shared("clock")
    events, limits = _shared("events"), _shared("limits")
    upload_hooks, quotas = _shared("upload_hooks"), _shared("quotas")
    shared, users_watch = _shared("shared"), _shared("users_watch")

    def __init__(self, portal: Portal, config: ServerConfig, reactor: IReactorTCP,
                 clock: IReactorTime | None = None, tls: TLSCredentials | None = None,
                 lookup_user: Callable[[str], Deferred] | None = None,
                 shared: SharedState | None = None,
                 users_watch: UserDBWatch | None = None) -> None:
        self.services = ServerServices(portal, config, reactor,
                                       clock if clock is not None else reactor, tls, lookup_user,
                                       shared=shared, users_watch=users_watch)
        self.sessions: set[FTPControlProtocol] = set()
        # Called with every new session before it starts (the test server's faults).
        self.session_hooks: list[Callable[[FTPControlProtocol], None]] = []

    def buildProtocol(self, addr: IAddress, implicit_tls: bool = False) -> FTPControlProtocol:
        proto = FTPControlProtocol(self.services, implicit_tls=implicit_tls)
        proto.factory = self
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
