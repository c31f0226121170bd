"""Real PostgreSQL and Redis servers for the shared-state tests, started from the Debian
packages in a temporary directory on a free 127.0.0.1 port (never the system's own
cluster or service), once per test session; each can be stopped and started again.

As root, PostgreSQL refuses to run, so it runs as ``nobody`` with a data directory
owned by it. Without the packages the tests are skipped, except under CI=true.
"""

from __future__ import annotations

import glob
import itertools
import os
import select
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.service import FTPService

START_TIMEOUT = 30  # seconds; a safety net, never a wait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> str:
    """Debian keeps the server programs in /usr/lib/postgresql/N/bin, off the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return os.pathsep.join([*reversed(found), os.environ.get("PATH", "")])


class PostgresServer:
    """A throwaway cluster; ``database()`` makes an empty database per test."""

    def __init__(self, base: Path) -> None:
        from tests.integration.conftest import require_binary  # conftest imports this module

        initdb = require_binary("initdb", path=_postgres_bin())
        self.bin = Path(initdb).parent
        self.data = base / "data"
        self.port = free_port()
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            os.chown(base, *_nobody())
            self._as_owner = ["runuser", "-u", "nobody", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "ftpd", "-A", "trust", "--no-sync",
                  "--no-locale", "-E", "UTF8")
        self._names = itertools.count(1)
        self.running = False

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as_owner, str(self.bin / program), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=START_TIMEOUT, cwd=self.data.parent)

    def start(self) -> None:
        settings = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data.parent / "log"),
                  "-o", settings, "-w", "-t", str(START_TIMEOUT), "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://ftpd@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a name made here, never from input
        return self.url(name)


def _nobody() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


class RedisServer:
    """redis-server without persistence."""

    def __init__(self, base: Path) -> None:
        from tests.integration.conftest import require_binary

        self.binary = require_binary("redis-server")
        self.base = base
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # Readiness by systemd's notify protocol (``--supervised systemd``): redis
        # sends READY=1 to NOTIFY_SOCKET once it accepts connections, so nothing polls.
        path = str(self.base / f"redis-{self.port}.notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(path)
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.base), "--supervised", "systemd"],
                env={**os.environ, "NOTIFY_SOCKET": path},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Woken by its message, or by its exit (a pidfd turns readable): no waiting
            # out the timeout for a server that died at start.
            exited = os.pidfd_open(self.process.pid)
            try:
                while True:
                    ready, _, _ = select.select([notify, exited], [], [], START_TIMEOUT)
                    if notify not in ready:
                        raise RuntimeError("redis-server did not start")
                    if b"READY=1" in notify.recv(4096).split(b"\n"):
                        break  # STATUS= lines come first
            finally:
                os.close(exited)
                os.unlink(path)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(START_TIMEOUT)
            self.process = None

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="twisted-ftpd-pg-"))
    try:
        server = PostgresServer(base)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    base = Path(tempfile.mkdtemp(prefix="twisted-ftpd-redis-"))
    server = RedisServer(base)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def start_node(tmp: Path, users: str, users_passwords: dict[str, tuple[str, str]],
                     **config: Any) -> Any:
    """An in-process server (a conftest ``Server``) on 127.0.0.1 whose users come from
    ``users`` (a users.db path or a PostgreSQL URL); failed logins are answered at once."""
    from tests.integration.conftest import Server

    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    config.setdefault("login_delay", 0.0)
    cfg = ServerConfig(port=0, interface="127.0.0.1", root=str(root), users=users, **config)
    service = FTPService(cfg)
    service.startService()
    assert service.port is not None
    return Server(service, "127.0.0.1", service.port.getHost().port, root,
                  users=dict(users_passwords))


@pytest_twisted.async_yield_fixture
async def node_factory(tmp_path: Path):
    """``await node_factory(users, passwords, **config)``: servers, all stopped after."""
    started: list[Any] = []

    async def make(users: str, passwords: dict[str, tuple[str, str]], **config: Any) -> Any:
        server = await start_node(tmp_path / f"node{len(started)}", users, passwords, **config)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()
