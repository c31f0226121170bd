"""In-memory harness for control-channel tests: a real factory and protocol on a
StringTransport, a MemoryReactorClock for data connections and timers, and a
synchronous runner in place of the thread pool, so every test is deterministic.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import unittest
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from twisted.internet import defer, error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from twisted_ftpd.auth import passwords, userdb
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.control.protocol import FTPControlProtocol
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.faults import Faults
from twisted_ftpd.service import build_factory

PEER = "192.0.2.7"
LOCAL = "192.0.2.1"
_HASHES: dict[str, str] = {}
# Every Harness made by the running test; tests/conftest.py checks them afterwards.
LIVE: list[Harness] = []


def sync_run(f, *args, **kwargs) -> defer.Deferred:  # type: ignore[no-untyped-def]
    return defer.maybeDeferred(f, *args, **kwargs)


def temp_dir(case: unittest.TestCase) -> Path:
    """A fresh empty directory for one test case, removed after it.

    For trial-style classes: pytest's ``tmp_path`` fixture does not reach them under
    ``python -m twisted.trial``, and ``mktemp()`` writes below the working directory.
    """
    path = Path(tempfile.mkdtemp(prefix="twisted-ftpd-test-"))
    case.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


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
        write_users(users_file, {"alice": ("secret", "elradfmwMT")} if users is None else users,
                    anonymous, hasher=cheap_hash)
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

    def connect(self, peer: str = PEER, local: str = LOCAL) -> Session:
        address = IPv6Address if ":" in peer else IPv4Address
        proto = self.factory.buildProtocol(address("TCP", peer, 40000))
        transport = StringTransport(hostAddress=address("TCP", local, 52305),
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
        transport = StringTransport(peerAddress=address("TCP", peer, 50000))
        if proto is not None:
            proto.makeConnection(transport)
        return proto, transport


def close(proto: DataProtocol, reason: Exception | None = None) -> None:
    from twisted.internet import error
    from twisted.python.failure import Failure

    proto.connectionLost(Failure(reason or error.ConnectionDone()))


def lines_of(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", "surrogateescape").split("\r\n") if line]


def files(root: Path) -> Iterable[str]:
    return sorted(os.listdir(root))
