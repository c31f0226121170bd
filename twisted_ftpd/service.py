# -*- test-case-name: tests.test_config,tests.integration.test_launchers -*-
"""Assemble a running server from options: portal, factory and listening port.

Shared by ``python server.py``, ``twistd ftpd`` and in-process use, so all three
behave the same. This is the only module that touches the global reactor, and
only when no reactor is passed in.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.cred.portal import Portal
from twisted.internet import defer, error, threads
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from twisted_ftpd.auth.checker import UserDBChecker
from twisted_ftpd.auth.realm import FTPRealm
from twisted_ftpd.auth.userdb import UserDB
from twisted_ftpd.config import Options, ServerConfig
from twisted_ftpd.control.factory import FTPFactory, ImplicitTLSFactory
from twisted_ftpd.fs.files import Runner
from twisted_ftpd.fs.shell import FilesystemShell
from twisted_ftpd.logs import twistd_service
from twisted_ftpd.shutdown import Shutdown, force_on_second_signal
from twisted_ftpd.tls import TLSCredentials

__all__ = ["FTPService", "Options", "build_factory", "makeService"]

log = Logger()


def thread_runner(reactor: IReactorTCP) -> Runner:
    """Run blocking calls in ``reactor``'s own thread pool (not the global reactor's,
    so a server on a private reactor, as in test fixtures, works too)."""

    def run(f, *args, **kwargs):  # type: ignore[no-untyped-def]
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)

    return run


def build_factory(config: ServerConfig, reactor: IReactorTCP,
                  clock: IReactorTime | None = None, run: Runner | None = None,
                  portal: Portal | None = None) -> FTPFactory:
    """The control-connection factory for ``config``; creates the root if missing.

    ``run`` executes blocking calls (password hashing, disk access); by default
    they go to the reactor's thread pool. ``portal`` replaces the user file
    (in-process test servers bring their own users).
    """
    tls = TLSCredentials.load(config.tls_cert, config.tls_key) if config.tls_cert else None
    os.makedirs(config.root, exist_ok=True)
    runner = run or thread_runner(reactor)
    lookup_user = None
    if portal is None:
        userdb = UserDB(config.users)
        realm = FTPRealm(userdb, config.root,
                         lambda home, perms: FilesystemShell(home, perms, run=runner), run=runner)
        portal = Portal(realm, [UserDBChecker(userdb, defer_to_thread=runner)])

        def lookup_user(name: str) -> defer.Deferred:
            return runner(userdb.lookup, name)

    return FTPFactory(portal, config, reactor, clock, tls=tls, lookup_user=lookup_user)


class FTPService(service.Service):
    """Listens for control connections; stopping it also ends every live session."""

    def __init__(self, config: ServerConfig, reactor: IReactorTCP | None = None,
                 portal: Portal | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.factory = build_factory(config, reactor, portal=portal)
        self.port: IListeningPort | None = None
        self.implicit_port: IListeningPort | None = None
        self.shutdown: Shutdown | None = None  # the stop in progress
        # The launchers (server.py, twistd) let a second SIGINT/SIGTERM end the grace.
        self.force_on_signal = False

    def startService(self) -> None:
        super().startService()
        self.port = self._listen(self.config.port, self.factory)
        if self.config.implicit_tls_port is not None:
            try:
                self.implicit_port = self._listen(self.config.implicit_tls_port,
                                                  ImplicitTLSFactory(self.factory))
            except Exception:
                self.port.stopListening()
                raise
            log.info("twisted-ftpd serving implicit FTPS on port {port}",
                     port=self.implicit_port.getHost().port)
        address = self.port.getHost()
        log.info("twisted-ftpd serving {root!r} on {host} port {port}",
                 root=os.path.abspath(self.config.root), host=address.host, port=address.port)

    def _listen(self, port: int, factory: ServerFactory) -> IListeningPort:
        interface = self.config.interface
        if interface:
            return self.reactor.listenTCP(port, factory, interface=interface)
        try:
            # One dual-stack socket serves IPv6 and IPv4 (as mapped addresses).
            return self.reactor.listenTCP(port, factory, interface="::")
        except error.CannotListenError:
            return self.reactor.listenTCP(port, factory, interface="0.0.0.0")

    def stopService(self):  # type: ignore[no-untyped-def]
        """Stop accepting, let running transfers finish for ``shutdown_grace`` seconds,
        then close every session (``shutdown.py``); fires once all have settled."""
        super().stopService()
        ports = [p for p in (self.port, self.implicit_port) if p is not None]
        self.port = self.implicit_port = None
        stopped = defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        if ports:
            stopped.addCallback(lambda _: log.info("Stopped listening; new connections are "
                                                   "refused"))
        self.shutdown = Shutdown(self.factory.sessions, self.config.shutdown_grace,
                                 self.factory.clock)
        if self.force_on_signal:
            force_on_second_signal(self.reactor, self.shutdown.force)
        return defer.gatherResults([stopped, self.shutdown.start()])


def makeService(options: Options) -> service.MultiService:
    """twistd's entry point (IServiceMaker)."""
    top = twistd_service(options)  # also sets up the log (logs.py)
    server = FTPService(options.to_config())
    server.force_on_signal = True
    server.setServiceParent(top)
    return top
