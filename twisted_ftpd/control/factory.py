# -*- test-case-name: tests.test_control_protocol -*-
"""Builds control connections and keeps track of the live ones."""

from __future__ import annotations

from twisted.cred.portal import Portal
from twisted.internet.interfaces import IAddress, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory

from twisted_ftpd.config import ServerConfig

from .protocol import FTPControlProtocol


class FTPFactory(ServerFactory):
    noisy = False

    def __init__(self, portal: Portal, config: ServerConfig, reactor: IReactorTCP,
                 clock: IReactorTime | None = None) -> None:
        self.portal = portal
        self.config = config
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.sessions: set[FTPControlProtocol] = set()

    def buildProtocol(self, addr: IAddress) -> FTPControlProtocol:
        proto = FTPControlProtocol(self.portal, self.config, self.reactor, self.clock)
        proto.factory = self
        self.sessions.add(proto)
        proto.on_lost.append(self.sessions.discard)
        return proto
