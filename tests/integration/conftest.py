"""Fixtures and helpers for the integration suite: a real server on a real socket.

The server runs in-process on the global reactor (pytest-twisted drives it).
Blocking clients (ftplib, lftp, curl, wget) always run in a worker thread via
``deferToThread``, never in the reactor thread, or they would deadlock the server.
"""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, threads
from twisted.internet.protocol import Protocol
from twisted.protocols.ftp import FTPFileListProtocol

from tests.harness import write_users
from tests.integration.s3_server import s3_server  # noqa: F401 - a fixture for the S3 tests
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.service import FTPService

USERS = {"alice": ("secret", "elradfmwMT"), "bob": ("bobpw", "elr")}
ANONYMOUS_PERMS = "elr"
FTP_TIMEOUT = 30  # safety net only
CLI_TIMEOUT = 60  # safety net only
UTF8_NAME = "é ü 文件 -x.bin"


# -- Twisted FTPClient helpers ---------------------------------------------------------


class Collector(Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted interface name
        self.chunks.append(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class ListParser(FTPFileListProtocol):
    """Also keeps the lines FTPFileListProtocol could not parse."""

    def __init__(self) -> None:
        super().__init__()
        self.unparsed: list[str] = []

    def unknownLine(self, line: str) -> None:  # noqa: N802 - Twisted interface name
        self.unparsed.append(line)


# -- small helpers ------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def in_thread(f: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
    """Run blocking client code off the reactor thread."""
    return threads.deferToThread(f, *args, **kwargs)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry below ``root``: relative path -> sha256 (files) or "dir"."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = file_sha256(path)
    return out


def part_files(root: Path) -> list[str]:
    """Leftover temporary uploads (``.name.XXXX.part``) anywhere below ``root``."""
    return [str(p) for p in root.rglob("*.part")]


def require_binary(name: str, path: str | None = None) -> str:
    """Path of an external client (searched on ``path``, default $PATH); missing fails in CI
    (CI=true), skips locally."""
    found = shutil.which(name, path=path)
    if found is None:
        message = f"{name} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (required in CI)")
        pytest.skip(message)
    return found


def cli_env(home: Path) -> dict[str, str]:
    """A clean environment for CLI clients: private HOME, UTF-8 locale, no proxies."""
    env = {
        key: value
        for key, value in os.environ.items()
        if "proxy" not in key.lower() and not key.startswith(("LC_", "LANG"))
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), LC_ALL="C.UTF-8", LANG="C.UTF-8", no_proxy="*", NO_PROXY="*")
    return env


def run_cli(args: list[str], home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a CLI client (call it through ``in_thread``); output decoded as UTF-8."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=cli_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def lftp_script(server: Server, *commands: str) -> str:
    """An ``lftp -c`` script logged in to ``server`` over plain FTP as alice, that stops at
    the first failing command and does not retry."""
    return "; ".join([
        "set cmd:fail-exit yes",
        "set net:max-retries 1",
        "set net:timeout 20",
        "set ftp:ssl-allow no",
        f"open -u alice,secret -p {server.port} {server.host}",
        *commands,
    ])


def sparse_file(path: Path, size: int = 64 << 20) -> None:
    """A big file that costs no disk: long enough to outlast any socket buffer."""
    with open(path, "wb") as f:
        f.truncate(size)


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def parse_list_line(line: str) -> tuple[str, int, str]:
    """``ls -l`` line -> (mode, size, name); the name may contain spaces."""
    fields = line.split(None, 8)
    assert len(fields) == 9, line
    return fields[0], int(fields[4]), fields[8]


# -- the server -----------------------------------------------------------------------------


@dataclass
class Server:
    service: FTPService
    host: str
    port: int
    root: Path
    users: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(USERS))

    @property
    def factory(self) -> Any:
        return self.service.factory

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def url(self, path: str = "/") -> str:
        return f"ftp://{self.url_host}:{self.port}{path}"

    def connect(self, user: str | None = "alice", password: str | None = None,
                passive: bool = True) -> ftplib.FTP:
        """A connected (and, with ``user``, logged-in) ftplib client. Blocking."""
        ftp = ftplib.FTP(timeout=FTP_TIMEOUT)
        ftp.connect(self.host, self.port)
        ftp.set_pasv(passive)
        if user is not None:
            if password is None:
                password = self.users[user][0] if user in self.users else "guest@example.org"
            ftp.login(user, password)
        return ftp

    @contextlib.contextmanager
    def session(self, user: str | None = "alice", password: str | None = None,
                passive: bool = True) -> Iterator[ftplib.FTP]:
        ftp = self.connect(user, password, passive)
        try:
            yield ftp
        finally:
            close_quietly(ftp)

    def raw(self, user: str | None = "alice") -> RawControl:
        control = RawControl(self.host, self.port)
        if user is not None:
            control.login(user, self.users[user][0])
        return control

    def sessions_gone(self) -> defer.Deferred:
        """Fires once every control session now alive has ended (hooks ``on_lost``)."""
        waits = []
        for session in list(self.factory.sessions):
            gone: defer.Deferred = defer.Deferred()
            session.on_lost.append(lambda _proto, d=gone: d.called or d.callback(None))
            waits.append(gone)
        return defer.gatherResults(waits)

    async def all_sessions_gone(self) -> None:
        while self.factory.sessions:  # loops only if a new session raced in
            await self.sessions_gone()

    async def stop(self) -> None:
        await defer.maybeDeferred(self.service.stopService)
        await self.all_sessions_gone()

    async def still_serves(self) -> None:
        """Proof of life: a fresh session answers NOOP and serves a RETR."""
        data = os.urandom(100_000)
        (self.root / "probe.bin").write_bytes(data)

        def check() -> bytes:
            with self.session() as ftp:
                assert ftp.voidcmd("NOOP").startswith("200")
                chunks: list[bytes] = []
                ftp.retrbinary("RETR probe.bin", chunks.append)
                return b"".join(chunks)

        assert sha256(await in_thread(check)) == sha256(data)
        (self.root / "probe.bin").unlink()


class RawControl:
    """A control connection that sends and reads raw bytes (blocking; use in a thread)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=FTP_TIMEOUT)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def reply(self) -> bytes:
        """One complete reply (all lines of a multi-line one); b"" at EOF."""
        first = self.file.readline()
        if not first:
            return b""
        lines = [first]
        if first[3:4] == b"-":
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == b" "):
                line = self.file.readline()
                if not line:
                    break
                lines.append(line)
        return b"".join(lines)

    def cmd(self, line: str) -> bytes:
        self.send(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def login(self, user: str = "alice", password: str = "secret") -> None:
        assert self.cmd(f"USER {user}")[:3] == b"331"
        assert self.cmd(f"PASS {password}")[:3] == b"230"

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def close_quietly(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        pass
    ftp.close()


async def start_server(tmp: Path, interface: str = "127.0.0.1", **config: Any) -> Server:
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    users_file = tmp / "users.db"
    write_users(users_file, USERS, ANONYMOUS_PERMS)
    cfg = ServerConfig(port=0, interface=interface, root=str(root), users=str(users_file),
                       **config)
    service = FTPService(cfg)
    service.startService()
    assert service.port is not None
    return Server(service, interface, service.port.getHost().port, root)


@pytest_twisted.async_yield_fixture
async def server_factory(tmp_path: Path):
    """``await server_factory(interface=..., **config)``: extra servers, all stopped after."""
    started: list[Server] = []

    async def make(interface: str = "127.0.0.1", **config: Any) -> Server:
        server = await start_server(tmp_path / f"server{len(started)}", interface, **config)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Path):
    """The standard server on 127.0.0.1 (alice rw, bob and anonymous read-only)."""
    srv = await start_server(tmp_path / "server")
    yield srv
    await srv.stop()


# PostgreSQL, Redis and servers using them (tests/integration/backends.py), for every module.
from tests.integration.backends import (  # noqa: E402, F401
    node_factory,
    postgres_server,
    redis_server,
)
