# -*- test-case-name: tests.test_service -*-
"""Assemble a running server from options: portal, factory and listening port.

Shared by ``python server.py``, ``twistd ftpd`` and in-process use, so all three
behave the same. This is the only module that touches the global reactor, and
only when no reactor is passed in.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.cred.portal import Portal
from twisted.internet import error
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.logger import Logger

from twisted_ftpd.auth.checker import UserDBChecker
from twisted_ftpd.auth.realm import FTPRealm
from twisted_ftpd.auth.userdb import UserDB
from twisted_ftpd.config import Options, ServerConfig
from twisted_ftpd.control.factory import FTPFactory
from twisted_ftpd.fs.files import Runner
from twisted_ftpd.fs.shell import FilesystemShell

__all__ = ["FTPService", "Options", "build_factory", "makeService"]

log = Logger()


def build_factory(config: ServerConfig, reactor: IReactorTCP,
                  clock: IReactorTime | None = None, run: Runner | None = None) -> FTPFactory:
    """The control-connection factory for ``config``; creates the root if missing.

    ``run`` executes blocking calls (password hashing, disk access); by default
    they go to the reactor's thread pool.
    """
    os.makedirs(config.root, exist_ok=True)
    userdb = UserDB(config.users)
    realm = FTPRealm(userdb, config.root,
                     lambda home, perms: FilesystemShell(home, perms, run=run))
    portal = Portal(realm, [UserDBChecker(userdb, defer_to_thread=run)])
    return FTPFactory(portal, config, reactor, clock)


class FTPService(service.Service):
    """Listens for control connections; stopping it also ends every live session."""

    def __init__(self, config: ServerConfig, reactor: IReactorTCP | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.factory = build_factory(config, reactor)
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        self.port = self._listen()
        address = self.port.getHost()
        log.info("twisted-ftpd serving {root!r} on {host} port {port}",
                 root=os.path.abspath(self.config.root), host=address.host, port=address.port)

    def _listen(self) -> IListeningPort:
        interface = self.config.interface
        if interface:
            return self.reactor.listenTCP(self.config.port, self.factory, interface=interface)
        try:
            # One dual-stack socket serves IPv6 and IPv4 (as mapped addresses).
            return self.reactor.listenTCP(self.config.port, self.factory, interface="::")
        except error.CannotListenError:
            return self.reactor.listenTCP(self.config.port, self.factory, interface="0.0.0.0")

    def stopService(self):  # type: ignore[no-untyped-def]
        super().stopService()
        for session in list(self.factory.sessions):
            session.transport.loseConnection()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None


def makeService(options: Options) -> service.MultiService:
    """twistd's entry point (IServiceMaker)."""
    top = service.MultiService()
    FTPService(options.to_config()).setServiceParent(top)
    return top
