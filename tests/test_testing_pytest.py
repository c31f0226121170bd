"""The pytest fixtures (``ftp_server``, ``ftp_server_tls``, ``ftp_server_factory``), used the
way a client's test suite would: from plain synchronous tests with ftplib, from
pytest-twisted tests with Twisted's FTPClient, and in a pytest run without pytest-twisted.
"""

from __future__ import annotations

import ftplib
import io
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.protocols.ftp import FTPClient, FTPFileListProtocol

from tests.helpers import SAFETY_TIMEOUT, check_read_only, ftp_login, ftp_retr, ftp_session
from twisted_ftpd.testing import RunningServer

REPO = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT = 120  # seconds; a safety net


# -- (a) a plain synchronous test ------------------------------------------------------------


def test_ftp_server_in_a_synchronous_test(ftp_server: RunningServer) -> None:
    assert ftp_server.host == "127.0.0.1"
    assert ftp_server.users == {"alice": "secret"}
    payload = os.urandom(200_000)
    ftp_server.put_file("sub/data.bin", payload)

    with ftp_session(ftp_server) as ftp:
        assert ftp.getwelcome().startswith("220 ")
        assert ftp_retr(ftp, "sub/data.bin") == payload
        ftp.storbinary("STOR sub/upload.bin", io.BytesIO(payload[::-1]))
        assert sorted(ftp.nlst("sub")) == ["data.bin", "upload.bin"]

    assert ftp_server.read_file("sub/upload.bin") == payload[::-1]
    assert (ftp_server.root / "sub" / "upload.bin").read_bytes() == payload[::-1]


# -- (b) pytest-twisted: Twisted's FTPClient on the global reactor ---------------------------


class Collector(Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted interface name
        self.chunks.append(data)


@pytest_twisted.ensureDeferred
async def test_ftp_server_with_twisted_client(ftp_server: RunningServer) -> None:
    ftp_server.put_file("docs/a.txt", b"alpha")
    ftp_server.put_file("docs/b.txt", b"bravo!")
    creator = ClientCreator(reactor, FTPClient, "alice", "secret", passive=1)
    client = await creator.connectTCP(ftp_server.host, ftp_server.port)
    try:
        listing = FTPFileListProtocol()
        await client.list("docs", listing)
        assert sorted((f["filename"], f["size"]) for f in listing.files) == [
            ("a.txt", 5), ("b.txt", 6)]
        collector = Collector()
        await client.retrieveFile("docs/b.txt", collector)
        assert b"".join(collector.chunks) == b"bravo!"
        assert len(ftp_server.sessions) == 1
    finally:
        await client.quit()


# -- (c) in a pytest run of its own, with and without pytest-twisted --------------------------

SUBPROCESS_TEST = '''
import ftplib
import io


def test_fixture(ftp_server, request):
    assert request.config.pluginmanager.hasplugin("twisted") is {twisted}
    ftp_server.put_file("in.txt", b"in")
    ftp = ftplib.FTP()
    ftp.connect(ftp_server.host, ftp_server.port, timeout=30)
    ftp.login("alice", "secret")
    out = io.BytesIO()
    ftp.retrbinary("RETR in.txt", out.write)
    ftp.storbinary("STOR out.txt", io.BytesIO(b"out"))
    ftp.quit()
    assert out.getvalue() == b"in"
    assert ftp_server.read_file("out.txt") == b"out"
'''


@pytest.mark.parametrize("twisted_plugin", [False, True], ids=["no-twisted", "twisted"])
def test_fixtures_in_a_separate_pytest_run(tmp_path: Path, twisted_plugin: bool) -> None:
    test_file = tmp_path / "test_uses_fixture.py"
    test_file.write_text(SUBPROCESS_TEST.format(twisted=twisted_plugin), encoding="utf-8")
    plugins = ["-p", "no:cacheprovider"] + ([] if twisted_plugin else ["-p", "no:twisted"])
    args = [sys.executable, "-m", "pytest", "-q", *plugins, str(test_file)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output, output


# -- (d) FTPS ---------------------------------------------------------------------------------


class SessionReusingFTP_TLS(ftplib.FTP_TLS):  # noqa: N801 - named after ftplib.FTP_TLS
    """ftplib.FTP_TLS whose protected data connections resume the control session,
    as strict servers (``tls_require_reuse=True``) require (ftplib's own does not)."""

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[Any, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size


def test_ftp_server_tls_with_plain_ftplib(ftp_server_tls: RunningServer) -> None:
    """The standard library's FTP_TLS, as every Python user starts: it never resumes
    TLS sessions, and the test server does not ask it to."""
    assert ftp_server_tls.cert is not None and os.path.isfile(ftp_server_tls.cert)
    payload = os.urandom(300_000)
    ftp_server_tls.put_file("secret.bin", payload)
    context = ssl.create_default_context(cafile=ftp_server_tls.cert)  # verifies 127.0.0.1

    ftp = ftplib.FTP_TLS(context=context)
    ftp.connect(ftp_server_tls.host, ftp_server_tls.port, timeout=SAFETY_TIMEOUT)
    try:
        assert "AUTH TLS" in ftp.sendcmd("FEAT")
        ftp.login("alice", "secret")  # AUTH TLS first
        assert isinstance(ftp.sock, ssl.SSLSocket)
        ftp.prot_p()
        assert ftp.nlst() == ["secret.bin"]
        assert ftp_retr(ftp, "secret.bin") == payload
        ftp.storbinary("STOR back.bin", io.BytesIO(payload[:1000]))
        ftp.set_pasv(False)
        assert sorted(ftp.nlst()) == ["back.bin", "secret.bin"]
    finally:
        ftp.quit()
    assert ftp_server_tls.read_file("back.bin") == payload[:1000]


def test_strict_server_with_session_reusing_client(ftp_server_factory: Any) -> None:
    server = ftp_server_factory(tls=True, tls_require_reuse=True)
    server.put_file("f.bin", b"data" * 1000)
    ftp = SessionReusingFTP_TLS(context=ssl.create_default_context(cafile=server.cert))
    ftp.connect(server.host, server.port, timeout=SAFETY_TIMEOUT)
    try:
        ftp.login("alice", "secret")
        ftp.prot_p()
        assert ftp_retr(ftp, "f.bin") == b"data" * 1000
    finally:
        ftp.quit()


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_strict_server_explains_its_522_to_plain_ftplib(ftp_server_factory: Any,
                                                         passive: bool) -> None:
    """Refused for not resuming, stock FTP_TLS gets the 522 and its reason as an
    ftplib.error_perm (a clean TLS shutdown of the data connection, not a broken pipe),
    and the session goes on."""
    server = ftp_server_factory(tls=True, tls_require_reuse=True)
    server.put_file("f.txt", b"x")
    ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=server.cert))
    ftp.connect(server.host, server.port, timeout=SAFETY_TIMEOUT)
    try:
        ftp.login("alice", "secret")
        ftp.prot_p()
        ftp.set_pasv(passive)
        with pytest.raises(ftplib.error_perm) as caught:
            ftp.nlst()
        assert str(caught.value).startswith("522 ")
        assert "resume" in str(caught.value) and "session reuse" in str(caught.value)
        assert ftp.voidcmd("NOOP").startswith("200")
    finally:
        ftp.close()


# -- (e) ftp_server_factory -----------------------------------------------------------------


def test_factory_users_and_permissions(ftp_server_factory: Any) -> None:
    server = ftp_server_factory(users={"writer": "w-pw", "reader": ("r-pw", "elr")})
    assert server.users == {"writer": "w-pw", "reader": "r-pw"}
    server.put_file("pub/readme.txt", b"read me")

    check_read_only(server, "reader", "r-pw", "pub/readme.txt", b"read me", "pub/new.txt")
    assert not (server.root / "pub" / "new.txt").exists()

    with ftp_session(server, "writer", "w-pw") as writer:
        writer.storbinary("STOR pub/new.txt", io.BytesIO(b"yes"))
    assert server.read_file("pub/new.txt") == b"yes"

    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_login(server, "alice", "secret")  # the default user is replaced, not added


def test_factory_anonymous(ftp_server_factory: Any) -> None:
    server = ftp_server_factory(anonymous=True)
    server.put_file("pub/file.txt", b"public")
    for name in ("anonymous", "ftp"):
        with ftp_session(server, name, "guest@example.com") as ftp:
            assert ftp_retr(ftp, "pub/file.txt") == b"public"
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.storbinary("STOR pub/upload.txt", io.BytesIO(b"x"))
    with ftp_session(server) as ftp:  # the named users still work, with every permission
        ftp.storbinary("STOR pub/upload.txt", io.BytesIO(b"alice was here"))
    assert server.read_file("pub/upload.txt") == b"alice was here"


def test_factory_anonymous_off_by_default(ftp_server: RunningServer) -> None:
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_login(ftp_server, "anonymous", "guest@example.com")


def test_factory_memory(ftp_server_factory: Any) -> None:
    server = ftp_server_factory(memory=True)
    assert server.root is None
    server.put_file("/deep/er/file.bin", b"\x00\x01\x02")

    with ftp_session(server) as ftp:
        assert ftp_retr(ftp, "deep/er/file.bin") == b"\x00\x01\x02"
        ftp.storbinary("STOR deep/uploaded.bin", io.BytesIO(b"in memory"))
        ftp.mkd("made")
        assert sorted(ftp.nlst("deep")) == ["er", "uploaded.bin"]
    assert server.read_file("deep/uploaded.bin") == b"in memory"
    assert server.memory is not None and server.memory.exists("made")


# -- (f) several servers at once ------------------------------------------------------------


def test_several_servers_in_parallel(ftp_server_factory: Any) -> None:
    servers = [ftp_server_factory(users={f"user{i}": f"pw{i}"}) for i in range(3)]
    assert len({s.port for s in servers}) == 3
    assert len({s.root for s in servers}) == 3
    for i, server in enumerate(servers):
        server.put_file("who.txt", f"server {i}".encode() * 10_000)

    barrier = threading.Barrier(len(servers))  # all three sessions open before any transfer
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def client(i: int, server: RunningServer) -> None:
        try:
            with ftp_session(server, f"user{i}", f"pw{i}") as ftp:
                barrier.wait(timeout=SAFETY_TIMEOUT)
                results[i] = ftp_retr(ftp, "who.txt")
                ftp.storbinary("STOR done.txt", io.BytesIO(f"done {i}".encode()))
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(servers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SAFETY_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    for i, server in enumerate(servers):
        assert results[i] == f"server {i}".encode() * 10_000
        assert server.read_file("done.txt") == f"done {i}".encode()


def closed_by_peer(sock: socket.socket) -> bytes:
    """What the peer sent before it closed (FIN) or aborted (RST) the connection; blocks
    until it has."""
    said = bytearray()
    try:
        while chunk := sock.recv(4096):
            said += chunk
    except ConnectionResetError:
        pass
    return bytes(said)


@pytest.fixture
def checked_after_teardown() -> Any:
    """Requested before ``ftp_server_factory``, so torn down after it: checks that the
    factory stopped every server it made, and closed the sessions still open."""
    started: list[tuple[RunningServer, int, ftplib.FTP]] = []
    yield started
    assert started, "the test registered no servers"
    for server, port, ftp in started:
        try:
            assert server.service.port is None  # no longer listening
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=SAFETY_TIMEOUT)
            # The server ended the session, and said so.
            assert closed_by_peer(ftp.sock) == b"421 Server shutting down; try again later.\r\n"
        finally:
            ftp.close()


def test_factory_stops_its_servers(checked_after_teardown: list[Any],
                                   ftp_server_factory: Any) -> None:
    for _ in range(2):
        server = ftp_server_factory()
        ftp = ftp_login(server)  # left open: teardown must close it
        assert ftp.voidcmd("NOOP").startswith("200")
        assert len(server.sessions) == 1
        checked_after_teardown.append((server, server.port, ftp))
