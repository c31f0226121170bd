# -*- test-case-name: tests.test_config,tests.integration.test_launchers -*-
"""Assemble a running server from options: portal, factory and listening ports.

Shared by ``python server.py``, ``twistd ftpd`` and in-process use, so all three
behave the same. This is the only module that touches the global reactor, and
only when no reactor is passed in.
"""

from __future__ import annotations

import os
import time

from twisted.application import service
from twisted.cred.portal import Portal
from twisted.internet import defer, threads
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.logger import Logger

from twisted_ftpd import listen, privileges, proxy_protocol
from twisted_ftpd.auth.cache import VerificationCache
from twisted_ftpd.auth.checker import UserDBChecker
from twisted_ftpd.auth.pgusers import is_database_url, open_user_source
from twisted_ftpd.auth.pool import PasswordPool
from twisted_ftpd.auth.realm import FTPRealm
from twisted_ftpd.auth.userdb import UserDB
from twisted_ftpd.auth.userdb_watch import UserDBWatch
from twisted_ftpd.config import Options, ServerConfig
from twisted_ftpd.control.factory import FTPFactory, ImplicitTLSFactory
from twisted_ftpd.fs.files import InlineWrites, Runner
from twisted_ftpd.fs.shell import FilesystemShell
from twisted_ftpd.fs.storage import StoragePool, StoreOptions, Stores, is_disk
from twisted_ftpd.logs import twistd_service
from twisted_ftpd.reporting import Reporting
from twisted_ftpd.shared_state import SharedState
from twisted_ftpd.shutdown import Shutdown, force_on_second_signal
from twisted_ftpd.startup import users_file_warnings
from twisted_ftpd.tls import TLSCredentials
from twisted_ftpd.urls import redact

__all__ = ["FTPService", "Options", "build_factory", "makeService"]

log = Logger()


def thread_runner(reactor: IReactorTCP) -> Runner:
    """Run blocking calls in ``reactor``'s own thread pool (not the global reactor's,
    so a server on a private reactor, as in test fixtures, works too)."""

    def run(f, *args, **kwargs):  # type: ignore[no-untyped-def]
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)

    return run


def build_stores(config: ServerConfig, run: Runner) -> Stores:
    """Object storage for ``--storage`` and users.db ``storage=``, its calls through ``run``."""
    return Stores(run, StoreOptions(config.storage_endpoint, config.storage_region))


def build_factory(config: ServerConfig, reactor: IReactorTCP,
                  clock: IReactorTime | None = None, run: Runner | None = None,
                  portal: Portal | None = None, stores: Stores | None = None,
                  tls: TLSCredentials | None = None) -> FTPFactory:
    """The control-connection factory for ``config``.

    ``run`` executes blocking calls (password hashing, disk access); by default
    they go to the reactor's thread pool. ``portal`` replaces the user file
    (in-process test servers bring their own users). ``stores`` serves object
    storage (by default its calls go through ``run`` too). ``tls`` replaces reading
    ``--tls-cert`` (a ``--workers`` process gets what its parent read).
    """
    if tls is None and config.tls_cert:
        tls = TLSCredentials.load(config.tls_cert, config.tls_key)
    runner = run or thread_runner(reactor)
    # Upload blocks are written inline while the disk keeps up (fs.files.InlineWrites);
    # a caller's own ``run`` decides where all blocking work goes.
    inline = InlineWrites() if run is None else None
    lookup_user = None
    watch = None
    shared = None
    if config.shared_state is not None:  # bans and limits counted across the nodes
        shared = SharedState(config.shared_state, reactor, clock, ttl=config.shared_state_ttl)
    if portal is None:
        userdb = open_user_source(config.users)  # users.db, or PostgreSQL
        realm = FTPRealm(userdb, config.root,
                         lambda home, perms: FilesystemShell(home, perms, run=runner,
                                                             umask=config.umask,
                                                             inline_writes=inline,
                                                             resolved=True), run=runner,
                         stores=stores or build_stores(config, runner),
                         storage=config.storage)
        realm.sessions.shared = shared  # max_sessions=N counts every node's sessions
        # Password checks get a small pool of their own (auth/pool.py), not the reactor's.
        checks = run or PasswordPool(reactor).run
        cache = VerificationCache(config.auth_cache_ttl, config.auth_cache_size,
                                  (clock or reactor).seconds)
        # users.db is read from memory while inotify says it is unchanged (FTPService
        # starts the watch); a database is asked at every login.
        watch = UserDBWatch(userdb, reactor, time.monotonic) if isinstance(userdb, UserDB) else None
        checker = UserDBChecker(userdb, defer_to_thread=checks, lookup_in_thread=runner,
                                cache=cache, check_home=realm.check_home, watch=watch,
                                home_now=realm.home_now)
        portal = Portal(realm, [checker])

        def lookup_user(name: str) -> defer.Deferred:
            if watch is not None:
                return watch.lookup(name, runner)
            return runner(userdb.lookup, name)

    return FTPFactory(portal, config, reactor, clock, tls=tls, lookup_user=lookup_user,
                      shared=shared, users_watch=watch)


def describe_users(spec: str | None) -> str:
    """The users file or database, as the start-up line names it (no password)."""
    if spec is None:
        return "none"
    return redact(spec) if is_database_url(spec) else os.path.abspath(spec)


def describe_root(config: ServerConfig) -> str:
    """What is served, as the start-up line names it: the store, or the absolute root."""
    return config.storage or os.path.abspath(config.root)


class FTPService(service.Service):
    """Listens for control connections; stopping it also ends every live session.

    The ports are bound in ``privilegedStartService`` (twistd calls it before dropping
    to ``--uid``/``--gid``, so port 21 works), then the server becomes ``--user``; in-process
    use may call ``startService`` alone. The root is created after that, by the user
    that will write to it.
    """

    def __init__(self, config: ServerConfig, reactor: IReactorTCP | None = None,
                 portal: Portal | None = None, tls: TLSCredentials | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        # Store calls get a bounded pool of their own, not the reactor's (fs/storage.py).
        self.storage_pool = StoragePool(reactor, config.storage_threads)  # type: ignore[arg-type]
        self.stores = build_stores(config, self.storage_pool.run)
        self.factory = build_factory(config, reactor, portal=portal, stores=self.stores,
                                     tls=tls)
        self.reporting = Reporting(config, self.factory, reactor)  # xferlog, metrics
        self.ports: list[IListeningPort] = []  # control connections, in --listen order
        self.implicit_ports: list[IListeningPort] = []  # implicit FTPS
        self._users_file = config.users if portal is None else None
        self.shutdown: Shutdown | None = None  # the stop in progress
        # The launchers (server.py, twistd) let a second SIGINT/SIGTERM end the grace.
        self.force_on_signal = False

    @property
    def port(self) -> IListeningPort | None:
        """The first control port (the one in-process users connect to)."""
        return self.ports[0] if self.ports else None

    @property
    def implicit_port(self) -> IListeningPort | None:
        return self.implicit_ports[0] if self.implicit_ports else None

    def privilegedStartService(self) -> None:  # noqa: N802 - Twisted interface name
        super().privilegedStartService()
        self._bind()

    def startService(self) -> None:
        self._bind()
        try:
            os.makedirs(self.config.root, exist_ok=True)
            # Blocking, once, before anyone is served: said now, not at the first login.
            warnings = users_file_warnings(self._users_file) if self._users_file else []
        except Exception:
            self._unbind()
            raise
        super().startService()
        if self.factory.shared is not None:
            self.factory.shared.start()
        if self.factory.users_watch is not None:  # as the serving user, as reads are
            self.factory.users_watch.start()
        for warning in warnings:
            log.warn("{warning}", warning=warning)
        if os.geteuid() == 0 and self._users_file:  # not for in-process test servers
            log.warn("serving as root: give --user (or twistd's --uid/--gid) to drop privileges")
        addresses = ", ".join(listen.describe(p) for p in self.ports)
        if self.implicit_ports:
            addresses += "; implicit FTPS on " + ", ".join(
                listen.describe(p) for p in self.implicit_ports)
        log.info("twisted-ftpd serving {root} (users file {users}) on {addresses} as {user}",
                 root=describe_root(self.config), users=describe_users(self._users_file),
                 addresses=addresses, user=privileges.running_as())
        if not is_disk(self.config.storage):
            self._probe_storage(self.config.storage)

    def _probe_storage(self, url: str) -> None:
        """Say at start-up whether ``--storage`` answers (in the pool, not waited for):
        a wrong bucket or missing keys are found before the first user is."""
        d = self.storage_pool.run(self.stores.probe, url)
        d.addCallbacks(
            lambda _: log.info("Storage {url} answers", url=url),
            lambda f: log.warn("Storage {url} does not answer as it should: {error!r}; "
                               "sessions get errors until it does", url=url, error=f.value))

    def _bind(self) -> None:
        """Listen on every configured address, then switch to ``--user``; nothing is
        served in between (the reactor does not run meanwhile). Once only."""
        if self.ports:
            return
        config = self.config
        implicit = listen.implicit_listeners(config.implicit_tls_listen,
                                             config.implicit_tls_port, config.interface)
        plan = [(alternatives, self.factory, self.ports) for alternatives in
                listen.control_listeners(config.listen, config.port, config.interface)]
        if implicit:
            implicit_factory = ImplicitTLSFactory(self.factory)
            plan += [(alternatives, implicit_factory, self.implicit_ports)
                     for alternatives in implicit]
        try:
            for alternatives, factory, ports in plan:
                ports.append(listen.listen(self.reactor, *proxy_protocol.listening(
                    alternatives, factory, config, self.factory.clock)))
            self.reporting.start()  # before the switch: the xferlog may be root's
            if config.user is not None:
                privileges.switch_to(privileges.resolve(config.user, config.group))
        except Exception:
            self._unbind()
            raise

    def _unbind(self) -> None:
        for port in [*self.ports, *self.implicit_ports]:
            port.stopListening()
        self.ports, self.implicit_ports = [], []
        self.reporting.stop()

    def stopService(self):  # type: ignore[no-untyped-def]
        """Stop accepting, let running transfers finish for ``shutdown_grace`` seconds,
        then close every session (``shutdown.py``); fires once all have settled."""
        super().stopService()
        if self.factory.users_watch is not None:
            self.factory.users_watch.stop()
        ports, self.ports, self.implicit_ports = [*self.ports, *self.implicit_ports], [], []
        stopped = defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        if ports:
            stopped.addCallback(lambda _: log.info("Stopped listening; new connections are "
                                                   "refused"))
        self.shutdown = Shutdown(self.factory.sessions, self.config.shutdown_grace,
                                 self.factory.clock)
        if self.force_on_signal:
            force_on_second_signal(self.reactor, self.shutdown.force)
        settled = self.shutdown.start()
        settled.addBoth(self._stop_hooks)
        settled.addBoth(self._stop_storage)
        done = defer.gatherResults([stopped, settled, self.reporting.stop()])
        if self.factory.shared is not None:  # once every session has given its slots back
            shared = self.factory.shared
            done.addCallback(lambda results: shared.stop().addCallback(lambda _: results))
        return done

    def _stop_hooks(self, result: object) -> object:
        """Once every session is gone, no upload hook may outlive the server."""
        hooks = self.factory.upload_hooks
        if hooks is None:
            return result
        return hooks.stop().addCallback(lambda _: result)

    def _stop_storage(self, result: object) -> object:
        """Once every session is gone, so is every store call: end the pool's threads."""
        self.storage_pool.stop()
        return result


def makeService(options: Options) -> service.MultiService:
    """twistd's entry point (IServiceMaker): one server, or ``--workers`` of them."""
    from twisted_ftpd.workers import WorkerPool, make_server  # it imports this module

    top = twistd_service(options)  # also sets up the log (logs.py)
    server = make_server(options.to_config())
    server.force_on_signal = True
    if isinstance(server, WorkerPool):  # workers that keep dying stop twistd
        server.failed.addErrback(lambda _: server.reactor.stop())
    server.setServiceParent(top)
    return top
