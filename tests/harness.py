"""In-memory harness for control-channel tests: a real factory and protocol on a
StringTransport, a MemoryReactorClock for data connections and timers, and a
synchronous runner in place of the thread pool, so every test is deterministic.

The control tests share its helpers rather than keep copies: ``logged_in``, the
Session's data-connection steps (``start``/``finish``, ``download``, ``upload``,
``listing``, ``open_passive``/``open_active``), ``RecordingTransport`` for TLS and
aborts, and ``ManualRunner``/``held_harness`` for blocking calls the test releases.
Its users.db holds cheap scrypt hashes (``cheap_hash``), so a login costs microseconds.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import defer, error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.helpers import sync_run
from twisted_ftpd.auth import passwords, userdb
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.control.protocol import FTPControlProtocol
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.faults import Faults
from twisted_ftpd.service import build_factory

PEER = "192.0.2.7"
ALL_PERMS = "elradfmwMT"
LOCAL = "192.0.2.1"
_HASHES: dict[str, str] = {}
# Every Harness made by the running test; tests/conftest.py checks them afterwards.
LIVE: list[Harness] = []


def _hash(password: str) -> str:
    if password not in _HASHES:
        _HASHES[password] = passwords.hash_password(password)
    return _HASHES[password]


def cheap_hash(password: str) -> str:
    """A real ``$scrypt$`` hash at the lowest cost users.db accepts (ln=1, r=1, p=1).

    The server's own verification checks it in microseconds instead of the ~40 ms
    of the production cost, which every in-memory login used to pay. The tests of
    the password module and the integration tests keep the real cost.
    """
    salt = hashlib.sha256(password.encode("utf-8", "surrogateescape")).digest()[:16]
    key = hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, n=2, r=1, p=1,
                         dklen=32)
    encoded = f"$scrypt$ln=1,r=1,p=1${_b64(salt)}${_b64(key)}"
    assert passwords.is_valid_hash(encoded), encoded
    return encoded


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def write_users(path: Path, users: dict[str, tuple[str, str]], anonymous: str | None,
                hasher: Callable[[str], str] = _hash) -> None:
    """users: name → (password, perms); anonymous: its perms, or None for no anonymous.

    Passwords are hashed at the production cost unless ``hasher`` says otherwise.
    """
    lines = ["# test users"]
    if anonymous is not None:
        lines.append(f"anonymous::{anonymous}:")
    for name, (password, perms) in users.items():
        lines.append(userdb.format_record(userdb.UserRecord(name, hasher(password), perms, "")))
    path.write_text("\n".join(lines) + "\n")


class Harness:
    """One server factory; ``connect()`` gives control sessions on it."""

    def __init__(self, tmp_path: Path, users: dict[str, tuple[str, str]] | None = None,
                 anonymous: str | None = "elr", run=sync_run, **config) -> None:  # type: ignore[no-untyped-def]
        self.root = tmp_path / "root"
        self.root.mkdir(exist_ok=True)
        users_file = tmp_path / "users.db"
        write_users(users_file, {"alice": ("secret", ALL_PERMS)} if users is None else users,
                    anonymous, hasher=cheap_hash)
        # Failed logins wait exactly login_delay here (no random spread), so tests
        # can advance the clock by it; test_control_login tests the spread.
        config = {"login_delay_spread": 0.0, **config}
        self.config = replace(ServerConfig(), root=str(self.root), users=str(users_file),
                              **config)
        self.reactor = MemoryReactorClock()
        self.factory = build_factory(self.config, self.reactor, run=run)
        self.faults = Faults()  # hooked in as the test server does
        self.factory.session_hooks.append(self.faults.install)
        self.protocols: list[FTPControlProtocol] = []  # every session, even closed ones
        build = self.factory.buildProtocol

        def record(*args, **kwargs):  # type: ignore[no-untyped-def]
            proto = build(*args, **kwargs)
            self.protocols.append(proto)
            return proto

        self.factory.buildProtocol = record  # type: ignore[method-assign]
        LIVE.append(self)

    def connect(self, peer: str = PEER, local: str = LOCAL,
                transport_class: type[StringTransport] = StringTransport,
                implicit_tls: bool = False) -> Session:
        """A new control session from ``peer`` to ``local`` over a ``transport_class``
        (``RecordingTransport`` for one that records TLS starts, aborts and writes);
        ``implicit_tls`` as if it came in on the implicit-FTPS port."""
        address = IPv6Address if ":" in peer else IPv4Address
        if implicit_tls:
            proto = self.factory.buildProtocol(address("TCP", peer, 40000), implicit_tls=True)
        else:
            proto = self.factory.buildProtocol(address("TCP", peer, 40000))
        transport = transport_class(hostAddress=address("TCP", local, 52305),
                                    peerAddress=address("TCP", peer, 40000))
        proto.makeConnection(transport)
        return Session(self, proto, transport)

    def hung_sessions(self) -> list[FTPControlProtocol]:
        """Closed sessions whose last command never ended: a wait that outlived them."""
        return [p for p in self.protocols if p.gone and not p.when_idle().called]

    def leftover_timers(self) -> list[object]:
        """Drop every session still connected; the delayed calls that survive them.

        Whatever a session schedules (login delays, reply delays, closing grace,
        handshake deadlines, data-connection timeouts) must die with it.
        """
        for proto in list(self.factory.sessions):
            proto.connectionLost(Failure(error.ConnectionDone()))
        # A StringTransport never reports the close it was asked for; a reactor would.
        for call in self.reactor.getDelayedCalls():
            owner = getattr(call.func, "__self__", None)
            if (isinstance(owner, DataProtocol) and owner.lost is None
                    and getattr(owner.transport, "disconnecting", False)):
                owner.connectionLost(Failure(error.ConnectionDone()))
        return [call for call in self.reactor.getDelayedCalls() if call.active()]

    def put(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


class Session:
    def __init__(self, harness: Harness, proto: FTPControlProtocol,
                 transport: StringTransport) -> None:
        self.harness = harness
        self.proto = proto
        self.transport = transport
        # What the data connections it opens run over (RecordingTransport for TLS).
        self.data_transport: type[StringTransport] = StringTransport
        self.greeting = self.take()

    def take(self) -> list[str]:
        """Reply lines written since the last call."""
        text = self.transport.value().decode("utf-8", "surrogateescape")
        self.transport.clear()
        return [line for line in text.split("\r\n") if line]

    def send(self, line: str | bytes) -> list[str]:
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
        if not raw.endswith(b"\n"):
            raw += b"\r\n"
        self.proto.dataReceived(raw)
        return self.take()

    def codes(self, *lines: str | bytes) -> list[int]:
        """Send each line; the codes of the final reply lines, in order."""
        out: list[int] = []
        for line in lines:
            out.extend(int(reply[:3]) for reply in self.send(line) if reply[3:4] == " ")
        return out

    def login(self, user: str = "alice", password: str = "secret") -> None:
        assert self.send(f"USER {user}")[0].startswith("331")
        reply = self.send(f"PASS {password}")
        assert reply and reply[-1].startswith("230"), reply

    def lose(self, reason: Exception | None = None) -> None:
        """The control connection is gone (cleanly, or for ``reason``)."""
        self.proto.connectionLost(Failure(reason or error.ConnectionDone()))

    # -- data connections -------------------------------------------------------

    def pasv(self) -> tuple[object, int]:
        """PASV, returning the data factory the reactor was asked to listen with."""
        reply = self.send("PASV")
        assert reply[-1].startswith("227"), reply
        port, factory, _, _ = self.harness.reactor.tcpServers[-1]
        return factory, port

    def open_passive(self, peer: str = PEER) -> tuple[DataProtocol | None, StringTransport]:
        """Connect to the last passive listener from ``peer``."""
        _, factory, _, _ = self.harness.reactor.tcpServers[-1]
        address = IPv6Address if ":" in peer else IPv4Address
        proto = factory.buildProtocol(address("TCP", peer, 50000))
        transport = self.data_transport(peerAddress=address("TCP", peer, 50000))
        if proto is not None:
            proto.makeConnection(transport)
        return proto, transport

    def open_active(self, index: int = -1) -> tuple[DataProtocol, StringTransport]:
        """Complete a connectTCP the server asked for (the last one by default)."""
        host, port, factory, _, _ = self.harness.reactor.tcpClients[index]
        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = self.data_transport(peerAddress=IPv4Address("TCP", host, port))
        proto.makeConnection(transport)
        return proto, transport

    def start(self, *lines: str | bytes, codes: Sequence[int] = (150,),
              ) -> tuple[DataProtocol, StringTransport]:
        """PASV, then ``lines`` (answered with ``codes``: a transfer's 150 by default),
        then connect to the passive listener: the data connection's protocol and transport."""
        self.pasv()
        assert self.codes(*lines) == list(codes), lines
        proto, transport = self.open_passive()
        assert proto is not None
        return proto, transport

    def finish(self, proto: DataProtocol, reason: Exception | None = None) -> list[str]:
        """Close the data connection (cleanly, or for ``reason``); the replies that follow."""
        close(proto, reason)
        return self.take()

    def download(self, line: str | bytes, may_refuse: bool = False) -> tuple[list[str], bytes]:
        """PASV, ``line`` (RETR...), connect, read, close: (every reply, the bytes sent).

        The command must be answered 150 unless ``may_refuse``; then a refusal gives
        its replies and no bytes."""
        self.pasv()
        replies = self.send(line)
        if may_refuse and not (replies and replies[0].startswith("150")):
            return replies, b""
        assert replies and replies[0].startswith("150"), replies
        proto, transport = self.open_passive()
        assert proto is not None
        data = transport.value()
        return replies + self.finish(proto), data

    def upload(self, line: str, *chunks: bytes, may_refuse: bool = False) -> list[str]:
        """PASV, ``line`` (STOR, APPE, STOU...), connect, send ``chunks``, close: every
        reply. The command must be answered 150 unless ``may_refuse``."""
        self.pasv()
        replies = self.send(line)
        if may_refuse and not (replies and replies[0].startswith("150")):
            return replies
        assert replies and replies[0].startswith("150"), replies
        proto, _ = self.open_passive()
        assert proto is not None
        for chunk in chunks:
            proto.dataReceived(chunk)
        return replies + self.finish(proto)

    def listing(self, line: str, may_refuse: bool = False) -> tuple[list[str], list[str]]:
        """Like ``download``, for LIST/NLST/MLSD: (every reply, the listing's lines),
        each line CRLF-terminated."""
        replies, data = self.download(line, may_refuse)
        assert data == b"" or data.endswith(b"\r\n"), data
        return replies, lines_of(data)


class RecordingTransport(StringTransport):
    """A StringTransport that records startTLS, aborts and the order of writes around them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.tls_starts: list[tuple[object, bool]] = []
        self.events: list[tuple[str, object]] = []
        self.abort_calls = 0
        self.handle = object()

    @property
    def aborted(self) -> bool:
        return self.abort_calls > 0

    def write(self, data: bytes) -> None:
        self.events.append(("write", data))
        super().write(data)

    def abortConnection(self) -> None:  # noqa: N802
        self.abort_calls += 1
        self.events.append(("abortConnection", None))
        super().abortConnection()

    def startTLS(self, contextFactory: object, normal: bool = True) -> None:  # noqa: N802
        self.tls_starts.append((contextFactory, normal))
        self.events.append(("startTLS", contextFactory))

    def getHandle(self) -> object:  # noqa: N802
        return self.handle


class ManualRunner:
    """A ``run`` for the harness that holds every blocking call until ``flush()``:
    disk access and password checks then complete only when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple, dict, defer.Deferred]] = []

    def __call__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.calls.append((f, args, kwargs, d))
        return d

    def run_calls_of(self, f: Callable[..., Any]) -> None:
        """Run only the held calls of ``f`` (the user lookups that come before the
        password checks, say), in order, leaving the others held."""
        ours = [call for call in self.calls if call[0] == f]
        self.calls = [call for call in self.calls if call[0] != f]
        for call in ours:
            self._run(*call)

    def flush(self) -> None:
        """Run held calls (and any they lead to) until none is left."""
        while self.calls:
            self._run(*self.calls.pop(0))

    @staticmethod
    def _run(f: Callable[..., Any], args: tuple, kwargs: dict, d: defer.Deferred) -> None:
        try:
            result = f(*args, **kwargs)
        except BaseException:
            d.errback(Failure())
        else:
            d.callback(result)


def held_harness(tmp_path: Path, **options) -> tuple[Harness, ManualRunner]:  # type: ignore[no-untyped-def]
    """A harness whose blocking calls (disk work, password checks) wait for the
    returned runner's ``flush()``."""
    runner = ManualRunner()
    return Harness(tmp_path, run=runner, **options), runner


def connect_recording(h: Harness, implicit_tls: bool = False,
                      ) -> tuple[Session, RecordingTransport]:
    """A new control session over a RecordingTransport, and that transport."""
    s = h.connect(transport_class=RecordingTransport, implicit_tls=implicit_tls)
    assert isinstance(s.transport, RecordingTransport)
    return s, s.transport


def logged_in(tmp_path: Path, perms: str = ALL_PERMS, peer: str = PEER, local: str = LOCAL,
              **options) -> tuple[Harness, Session]:  # type: ignore[no-untyped-def]
    """A harness (``options`` as for Harness) and a session from ``peer`` logged in as
    alice, with ``perms``."""
    h = Harness(tmp_path, users={"alice": ("secret", perms)}, **options)
    s = h.connect(peer=peer, local=local)
    s.login()
    return h, s


def failed_login(h: Harness, s: Session, user: str, password: str) -> list[str]:
    """USER/PASS that should fail: nothing until the login delay, then the replies."""
    assert s.send(f"USER {user}")[0].startswith("331")
    assert s.send(f"PASS {password}") == []
    h.reactor.advance(h.config.login_delay)
    return s.take()


def hidden(root: Path) -> list[str]:
    """The dot files in ``root``: where uploads in progress would show."""
    return [name for name in os.listdir(root) if name.startswith(".")]


def close(proto: DataProtocol, reason: Exception | None = None) -> None:
    proto.connectionLost(Failure(reason or error.ConnectionDone()))


def lines_of(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", "surrogateescape").split("\r\n") if line]


def files(root: Path) -> Iterable[str]:
    return sorted(os.listdir(root))
