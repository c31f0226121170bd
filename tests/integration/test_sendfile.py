"""Downloads by sendfile against real clients: what they get, and which path was taken.

Binary downloads over plain TCP go by ``os.sendfile``; TLS, TYPE A and throttled
downloads keep the producer path. Each test asserts the path its download took
(``DataProtocol.download_path``) as well as what the client received.
"""

from __future__ import annotations

import ftplib
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.helpers import ftp_retr
from tests.integration.conftest import (
    Server,
    file_sha256,
    in_thread,
    require_binary,
    run_cli,
    sha256,
    sparse_file,
)
from tests.integration.test_compliance import open_passive
from tests.integration.test_failures import reset_on_close
from tests.integration.tls_helpers import make_tls_files, tls_session
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.faults import Faults

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def watch_downloads(server: Server) -> list[DataProtocol]:
    """Every data connection the server's sessions make from now on."""
    seen: list[DataProtocol] = []
    server.factory.session_hooks.append(lambda proto: proto.data.on_connected.append(seen.append))
    return seen


def paths(seen: list[DataProtocol]) -> list[str]:
    return [proto.download_path for proto in seen]


@pytest.fixture
def big(server: Server) -> bytes:
    data = os.urandom(24 * MiB + 777)
    (server.root / "big.bin").write_bytes(data)
    return data


@pytest_twisted.ensureDeferred
async def test_ftplib_download_and_resume(server: Server, big: bytes) -> None:
    seen = watch_downloads(server)

    def session() -> tuple[bytes, bytes]:
        with server.session() as ftp:
            whole = ftp_retr(ftp, "big.bin")
            tail: list[bytes] = []
            ftp.retrbinary("RETR big.bin", tail.append, rest=10 * MiB + 3)
            return whole, b"".join(tail)

    whole, tail = await in_thread(session)
    assert sha256(whole) == sha256(big)
    assert sha256(tail) == sha256(big[10 * MiB + 3:])
    assert paths(seen) == ["sendfile", "sendfile"]
    assert [proto.bytes_moved for proto in seen] == [len(big), len(big) - 10 * MiB - 3]


@pytest_twisted.ensureDeferred
async def test_curl_download_and_resume(server: Server, big: bytes, tmp_path: Path) -> None:
    curl = require_binary("curl")
    seen = watch_downloads(server)
    out = tmp_path / "out.bin"
    out.write_bytes(big[:5 * MiB])  # a broken-off download, resumed with -C -
    result = await in_thread(run_cli, [curl, "-sS", "-C", "-", "-o", str(out),
                                       server.url("/big.bin"), "-u", "alice:secret"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert file_sha256(out) == sha256(big)
    assert paths(seen) == ["sendfile"]


@pytest_twisted.ensureDeferred
async def test_type_a_download_takes_the_producer_path(server: Server) -> None:
    (server.root / "text.txt").write_bytes(b"one\ntwo\n" * 50_000)
    seen = watch_downloads(server)

    def session() -> list[str]:
        lines: list[str] = []
        with server.session() as ftp:
            ftp.retrlines("RETR text.txt", lines.append)  # TYPE A
        return lines

    assert await in_thread(session) == ["one", "two"] * 50_000
    assert paths(seen) == ["producer"]


@pytest_twisted.ensureDeferred
async def test_throttled_download_takes_the_producer_path(server_factory) -> None:
    server = await server_factory(max_download_rate=50 * MiB)
    data = os.urandom(2 * MiB)
    (server.root / "f.bin").write_bytes(data)
    seen = watch_downloads(server)

    def session() -> bytes:
        with server.session() as ftp:
            return ftp_retr(ftp, "f.bin")

    assert sha256(await in_thread(session)) == sha256(data)
    assert paths(seen) == ["producer"]


@pytest_twisted.ensureDeferred
async def test_tls_download_takes_the_producer_path_and_clear_data_sendfile(
        server_factory, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    server = await server_factory(tls_cert=str(tls.path))
    data = os.urandom(3 * MiB)
    (server.root / "f.bin").write_bytes(data)
    seen = watch_downloads(server)

    def session() -> tuple[bytes, bytes]:
        with tls_session(server.host, server.port, tls.cert_pem) as ftps:
            protected = ftp_retr(ftps, "f.bin")
            ftps.prot_c()  # clear data on a protected control connection
            return protected, ftp_retr(ftps, "f.bin")

    protected, clear = await in_thread(session)
    assert sha256(protected) == sha256(clear) == sha256(data)
    assert paths(seen) == ["producer", "sendfile"]


def start_retr(server: Server, name: str) -> tuple[Any, socket.socket]:
    """A raw control connection whose binary RETR has begun (150 read, data flowing)."""
    control = server.raw()
    control.cmd("TYPE I")
    data = open_passive(control)
    assert control.cmd(f"RETR {name}")[:3] == b"150"
    assert data.recv(65536)
    return control, data


@pytest_twisted.ensureDeferred
async def test_stat_counts_and_abor_stops_a_sendfile_download(server: Server) -> None:
    sparse_file(server.root / "huge.bin", 256 * MiB)  # outlasts any socket buffer
    seen = watch_downloads(server)

    def session() -> list[bytes]:
        control, data = start_retr(server, "huge.bin")
        try:
            stat = control.cmd("STAT").strip()
            control.send(b"ABOR\r\n")
            replies = [stat, control.reply(), control.reply()]
            data.close()
            return replies + [control.cmd("NOOP")]
        finally:
            control.close()

    stat, first, abor, noop = await in_thread(session)
    assert stat.startswith(b"213 Status: ") and stat.endswith(b" bytes transferred.")
    moved = int(stat.split()[2])
    assert 0 < moved < 256 * MiB
    assert (first[:3], abor[:3], noop[:3]) == (b"426", b"226", b"200")
    assert paths(seen) == ["sendfile"]
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_peer_reset_mid_download_is_426(server: Server) -> None:
    sparse_file(server.root / "huge.bin", 256 * MiB)
    seen = watch_downloads(server)
    events: list[dict[str, Any]] = []
    server.factory.events.observe(events.append)

    def session() -> bytes:
        control, data = start_retr(server, "huge.bin")
        try:
            reset_on_close(data)
            data.close()
            return control.reply()
        finally:
            control.close()

    assert (await in_thread(session))[:3] == b"426"
    assert paths(seen) == ["sendfile"]
    (transfer,) = [e for e in events if e["ftpd_event"] == "transfer"]
    assert not transfer["completed"] and transfer["bytes"] == seen[0].bytes_moved > 0
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_stalled_sendfile_download_is_dropped(server_factory) -> None:
    server = await server_factory(stall_timeout=0.5)
    sparse_file(server.root / "huge.bin", 256 * MiB)
    seen = watch_downloads(server)

    def session() -> bytes:
        control, data = start_retr(server, "huge.bin")
        try:
            return control.reply()  # the client never reads again
        finally:
            data.close()
            control.close()

    assert (await in_thread(session))[:3] == b"426"
    assert paths(seen) == ["sendfile"] and seen[0].aborted


@pytest_twisted.ensureDeferred
async def test_xferlog_counts_sendfile_bytes(server_factory, tmp_path: Path) -> None:
    xferlog = tmp_path / "xferlog"
    server = await server_factory(xferlog=str(xferlog))
    data = os.urandom(5 * MiB + 1)
    (server.root / "f.bin").write_bytes(data)
    seen = watch_downloads(server)

    def session() -> None:
        with server.session() as ftp:
            ftp_retr(ftp, "f.bin")
            ftp.retrbinary("RETR f.bin", lambda _: None, rest=MiB)

    await in_thread(session)
    await server.stop()
    lines = xferlog.read_text().splitlines()
    assert [int(line.split()[7]) for line in lines] == [len(data), len(data) - MiB]
    assert paths(seen) == ["sendfile", "sendfile"]


@pytest_twisted.ensureDeferred
async def test_fault_injected_break_cuts_a_sendfile_download(server: Server, big: bytes) -> None:
    faults = Faults()
    server.factory.session_hooks.append(faults.install)
    faults.drop_data_after(1_000_000)
    seen = watch_downloads(server)

    def session() -> tuple[bytes, str]:
        got: list[bytes] = []
        with server.session() as ftp:
            try:
                ftp.retrbinary("RETR big.bin", got.append)
            except ftplib.error_temp as e:
                return b"".join(got), str(e)
        return b"".join(got), "226"

    got, reply = await in_thread(session)
    assert reply.startswith("426")
    assert got == big[:1_000_000]
    assert paths(seen) == ["sendfile"]
