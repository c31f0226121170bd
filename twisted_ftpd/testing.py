# -*- test-case-name: tests.test_testing_api,tests.test_testing_faults,tests.test_testing_trial -*-
"""A real FTP server inside other people's test suites.

``start_server()`` runs the full server in-process on 127.0.0.1, on a free port,
with a temporary (or in-memory) root and known users, and returns a
``RunningServer`` whose ``stop()`` closes every listener, session and data
connection. Under trial, start it on the global reactor; in plain synchronous
code (pytest without pytest-twisted, scripts), ``ServerThread`` runs it on a
private reactor in a background thread so blocking clients such as ftplib can
talk to it. The pytest fixtures in ``twisted_ftpd.pytest_plugin`` use the latter.
"""

from __future__ import annotations

import functools
import hmac
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.internet.threads import blockingCallFromThread
from zope.interface import implementer

from twisted_ftpd.auth.perms import ALL, READ_ONLY
from twisted_ftpd.auth.userdb import ANONYMOUS_NAMES
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.faults import Faults
from twisted_ftpd.fs.memory import MemoryFilesystem, MemoryShell
from twisted_ftpd.fs.shell import FilesystemShell
from twisted_ftpd.interfaces import IFTPShell
from twisted_ftpd.protocol.errors import FileNotFound
from twisted_ftpd.service import FTPService, thread_runner

__all__ = ["FTPServerMixin", "RunningServer", "ServerThread", "start_server"]

DEFAULT_USERS = {"alice": "secret"}
Users = Mapping[str, str | tuple[str, str]]
# Where a test server differs from a production one. Failed logins are answered at
# once, and protected data connections need not resume the login's TLS session:
# Python's own ftplib.FTP_TLS never resumes (cpython#63699), and it is what most
# people test with. ``tls_require_reuse=True`` restores the strict check. Every
# client is 127.0.0.1, so a suite's tests of wrong passwords never ban it and there
# is no per-address connection limit (pass ``ban_after=``/``max_connections_per_ip=``
# to test a client against them).
TEST_DEFAULTS: dict[str, Any] = {"login_delay": 0.0, "tls_require_reuse": False,
                                 "ban_after": 0, "max_connections_per_ip": 0}


@implementer(ICredentialsChecker)
class _MemoryChecker:
    """Plain-text test passwords, compared in constant time; no hashing to wait for."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, passwords: Mapping[str, str], anonymous: bool) -> None:
        self._passwords = passwords
        self._anonymous = anonymous

    def requestAvatarId(self, credentials: IUsernamePassword) -> defer.Deferred[str]:
        name = credentials.username.decode("utf-8", "surrogateescape")
        if name.lower() in ANONYMOUS_NAMES and self._anonymous:
            return defer.succeed("anonymous")
        expected = self._passwords.get(name)
        given = credentials.password
        if expected is not None and hmac.compare_digest(expected.encode(), given):
            return defer.succeed(name)
        return defer.fail(UnauthorizedLogin())


@implementer(IRealm)
class _Realm:
    def __init__(self, perms: Mapping[str, str], make_shell: Callable[[str], Any]) -> None:
        self._perms = perms
        self._make_shell = make_shell

    def requestAvatar(self, avatar_id: str, mind: object, *interfaces: Any) -> Any:
        if IFTPShell not in interfaces:
            raise NotImplementedError("twisted-ftpd only serves IFTPShell avatars")
        return IFTPShell, self._make_shell(self._perms[avatar_id]), lambda: None


class RunningServer:
    """A started server: where it listens, who may log in, and how to stop it."""

    def __init__(self, service: FTPService, users: dict[str, str], root: Path | None,
                 memory: MemoryFilesystem | None, cert: str | None,
                 cleanup: Callable[[], None], call: Callable[..., Any] | None = None,
                 faults: Faults | None = None) -> None:
        self.service = service
        self._faults = faults if faults is not None else Faults()
        self.users = users
        self.root = root
        self.memory = memory
        self.cert = cert
        self._cleanup = cleanup
        # Runs a function on the server's reactor thread and returns its result.
        self._call = call or (lambda f, *a: f(*a))
        self._owner: ServerThread | None = None  # set when running in a ServerThread
        # Remembered now, so they can still be read (in messages, say) after stop().
        address = service.port.getHost()
        self._host: str = address.host
        self._port: int = address.port
        implicit = service.implicit_port
        self._implicit_tls_port = implicit.getHost().port if implicit is not None else None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def implicit_tls_port(self) -> int | None:
        return self._implicit_tls_port

    @property
    def url(self) -> str:
        """``ftp://user:password@127.0.0.1:port/`` for the first user."""
        for name, password in self.users.items():
            credentials = f"{quote(name, safe='')}:{quote(password, safe='')}"
            return f"ftp://{credentials}@{self.host}:{self.port}/"
        return f"ftp://{self.host}:{self.port}/"

    @property
    def sessions(self) -> set[Any]:
        """The live control sessions (a snapshot)."""
        return self._call(lambda: set(self.service.factory.sessions))

    @property
    def faults(self) -> Faults:
        """Switch on failures: ``reply_delay``, ``drop_data_after(n)``,
        ``refuse_next_data_connection()``."""
        return self._faults

    def put_file(self, path: str, data: bytes) -> None:
        """Create (or replace) ``path`` under the root, with parent directories."""
        if self.memory is not None:
            self._call(self.memory.put, self._memory_path(path), data)
            return
        target = self._local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def read_file(self, path: str) -> bytes:
        """The content of ``path``; FileNotFoundError if there is none."""
        if self.memory is not None:
            try:
                return self._call(self.memory.read, self._memory_path(path))
            except FileNotFound:
                raise FileNotFoundError(path) from None
        return self._local(path).read_bytes()

    @staticmethod
    def _memory_path(path: str) -> str:
        if ".." in path.replace("\\", "/").split("/"):
            raise ValueError(f"{path!r} is outside the server root")
        return path

    def _local(self, path: str) -> Path:
        assert self.root is not None
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"{path!r} is outside the server root")
        return target

    def stop(self) -> defer.Deferred[None]:
        """Close the listeners and every session; fires when all are gone.

        For a server on a ServerThread this blocks until it is stopped.
        """
        if self._owner is not None:
            self._owner.stop()
            return defer.succeed(None)
        return self._stop_now()

    def _stop_now(self) -> defer.Deferred[None]:
        factory = self.service.factory
        sessions = list(factory.sessions)
        gone = []
        for session in list(factory.sessions):
            waiter: defer.Deferred[None] = defer.Deferred()
            session.on_lost.append(lambda _s, w=waiter: w.called or w.callback(None))
            gone.append(waiter)
        d = defer.maybeDeferred(self.service.stopService)
        for session in list(factory.sessions):
            # A test server stops now, even with a client that stopped reading.
            session.transport.abortConnection()
        d.addCallback(lambda _: defer.gatherResults(gone))
        # ...and for the commands they were running (an upload settling its file).
        d.addCallback(lambda _: defer.gatherResults([s.when_idle() for s in sessions]))
        d.addCallback(lambda _: None)
        d.addBoth(self._finish)
        return d

    def _finish(self, result: Any) -> Any:
        self._cleanup()
        return result


def _normalise_users(users: Users | None) -> tuple[dict[str, str], dict[str, str]]:
    passwords, perms = {}, {}
    for name, value in (DEFAULT_USERS if users is None else users).items():
        password, letters = (value, ALL) if isinstance(value, str) else value
        passwords[name], perms[name] = password, letters
    return passwords, perms


def start_server(root: str | os.PathLike[str] | None = None, users: Users | None = None, *,
                 tls: bool = False, anonymous: bool | str = False,
                 passive_ports: tuple[int, int] | None = None, reactor: Any = None,
                 memory: bool = False, **options: Any) -> defer.Deferred[RunningServer]:
    """Start a server on 127.0.0.1, on a free port.

    ``users`` maps names to passwords (every permission) or to
    ``(password, permission letters)``; default ``{"alice": "secret"}``.
    ``root`` defaults to a new temporary directory, removed on ``stop()``;
    ``memory=True`` serves an in-memory tree instead of a directory.
    ``anonymous`` allows anonymous logins, read-only with ``True`` or with the
    given letters. ``tls=True`` enables FTPS with a fresh self-signed
    certificate (``.cert`` is its PEM path); data connections need not resume the
    login's TLS session unless ``tls_require_reuse=True``. Other keyword arguments are
    ``ServerConfig`` fields (``idle_timeout``, ``implicit_tls_port``...).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    passwords, perms = _normalise_users(users)
    if anonymous:
        perms["anonymous"] = READ_ONLY if anonymous is True else str(anonymous)
    scratch = tempfile.mkdtemp(prefix="twisted-ftpd-")
    root_path = Path(root) if root is not None else Path(scratch) / "root"
    try:
        return defer.succeed(_start(root_path, scratch, passwords, perms, tls, anonymous,
                                    passive_ports, reactor, memory, options))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _start(root_path: Path, scratch: str, passwords: dict[str, str], perms: dict[str, str],
           tls: bool, anonymous: bool | str, passive_ports: tuple[int, int] | None,
           reactor: Any, memory: bool, options: dict[str, Any]) -> RunningServer:
    if not memory:
        root_path.mkdir(parents=True, exist_ok=True)
    cert = _write_certificate(scratch) if tls else None
    fs = MemoryFilesystem() if memory else None
    runner = thread_runner(reactor)

    def make_shell(letters: str) -> Any:
        if fs is not None:
            return MemoryShell(fs, letters)
        return FilesystemShell(str(root_path), letters, run=runner)

    portal = Portal(_Realm(perms, make_shell), [_MemoryChecker(passwords, bool(anonymous))])
    config = ServerConfig(port=0, interface="127.0.0.1", root=str(root_path if not memory
                          else Path(scratch) / "unused"), users=os.devnull,
                          passive_ports=passive_ports, tls_cert=cert,
                          **{**TEST_DEFAULTS, **options})
    service = FTPService(config, reactor, portal=portal)
    faults = Faults()
    service.factory.session_hooks.append(faults.install)
    service.startService()
    return RunningServer(service, passwords, None if memory else root_path, fs, cert,
                         cleanup=lambda: shutil.rmtree(scratch, ignore_errors=True),
                         faults=faults)


def _write_certificate(directory: str) -> str:
    from twisted_ftpd.cert import make_self_signed, write_pem

    cert_pem, key_pem = make_self_signed("localhost", alt_names=["127.0.0.1"])
    path = os.path.join(directory, "server.pem")
    write_pem(path, cert_pem, key_pem)
    return path


class FTPServerMixin:
    """For ``twisted.trial.unittest.TestCase``: ``server = yield self.start_ftp_server()``
    starts a server that is stopped (and cleaned up) after the test."""

    def start_ftp_server(self, *args: Any, **kwargs: Any) -> defer.Deferred[RunningServer]:
        d = start_server(*args, **kwargs)
        d.addCallback(self._stop_after_test)
        return d

    def _stop_after_test(self, server: RunningServer) -> RunningServer:
        self.addCleanup(server.stop)  # type: ignore[attr-defined]
        return server


def _stopped(*args: Any) -> Any:
    raise RuntimeError("the test server has been stopped")


class ServerThread:
    """A server on a private reactor in a background thread, for synchronous code.

    ``with ServerThread(users={"bob": "pw"}) as server: ftplib.FTP(...)``; every
    method of the returned RunningServer is safe to call from the caller's thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self.server: RunningServer | None = None
        self._reactor: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> RunningServer:
        from twisted.internet.selectreactor import SelectReactor

        self._reactor = reactor = SelectReactor()
        self._thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                        name="twisted-ftpd test server", daemon=True)
        self._thread.start()
        start = functools.partial(start_server, *self._args, reactor=reactor, **self._kwargs)
        try:
            server = blockingCallFromThread(reactor, start)
        except BaseException:
            reactor.callFromThread(reactor.stop)
            self._thread.join(timeout=30)
            self._reactor = None
            raise
        server._call = lambda f, *a: blockingCallFromThread(reactor, f, *a)
        server._owner = self
        self.server = server
        return server

    def stop(self) -> None:
        if self._reactor is None:
            return
        reactor, self._reactor = self._reactor, None
        try:
            if self.server is not None:
                blockingCallFromThread(reactor, self.server._stop_now)
                self.server._call = _stopped
        finally:
            reactor.callFromThread(reactor.stop)
            assert self._thread is not None
            self._thread.join(timeout=30)

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
