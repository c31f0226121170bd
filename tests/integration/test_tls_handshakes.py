"""FTPS handshakes whatever ALPN list the client offers (FileZilla offers ``ftp`` and
``x-filezilla-ftp``), on control and data connections, explicit and implicit, with
OpenSSL (Python's ssl) and GnuTLS (gnutls-cli) as clients; and failed handshakes are
logged with their reason."""

from __future__ import annotations

import ftplib
import socket
import ssl
import subprocess
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import formatEvent, globalLogPublisher

from tests.integration.conftest import FTP_TIMEOUT, in_thread, require_binary
from tests.integration.tls_helpers import (
    SAFETY_TIMEOUT,
    TLSFiles,
    client_context,
    make_tls_files,
)

pytestmark = pytest.mark.integration

OFFERS = {
    "ftp": ["ftp"],
    "filezilla": ["ftp", "x-filezilla-ftp"],
    "http-only": ["h2", "http/1.1"],
    "none": [],
}
# What the server confirms for each offer: ours when offered, else no ALPN at all.
EXPECTED = {"ftp": "ftp", "filezilla": "ftp", "http-only": None, "none": None}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("alpn"))


def alpn_context(cert_pem: bytes, offer: list[str]) -> ssl.SSLContext:
    context = client_context(cert_pem)
    if offer:
        context.set_alpn_protocols(offer)
    return context


class ALPNRecordingFTP_TLS(ftplib.FTP_TLS):  # noqa: N801 - mirrors ftplib's class name
    """FTP_TLS that resumes sessions on data connections (the server requires it) and
    records the ALPN protocol each data connection's handshake settled on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_alpn: list[str | None] = []

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(  # type: ignore[attr-defined]
                conn, server_hostname=self.host, session=self.sock.session)
            self.data_alpn.append(conn.selected_alpn_protocol())
        return conn, size


async def implicit_tls_server(server_factory, tls_files: TLSFiles):  # type: ignore[no-untyped-def]
    """A server with an implicit-FTPS port too: the server, and that port."""
    server = await server_factory(tls_cert=str(tls_files.path), implicit_tls_port=0)
    return server, server.service.implicit_port.getHost().port


@pytest.mark.parametrize("offer", list(OFFERS))
@pytest_twisted.ensureDeferred
async def test_explicit_ftps_with_any_alpn_offer(server_factory, tls_files: TLSFiles,
                                                 offer: str) -> None:
    server = await server_factory(tls_cert=str(tls_files.path))
    (server.root / "f.txt").write_bytes(b"payload")

    def client() -> tuple[str | None, list[str], bytes, list[str | None]]:
        ftp = ALPNRecordingFTP_TLS(context=alpn_context(tls_files.cert_pem, OFFERS[offer]),
                                   timeout=FTP_TIMEOUT)
        try:
            ftp.connect(server.host, server.port)
            ftp.auth()
            control = ftp.sock.selected_alpn_protocol()  # type: ignore[attr-defined]
            ftp.login("alice", "secret")
            ftp.prot_p()
            names = ftp.nlst()
            chunks: list[bytes] = []
            ftp.retrbinary("RETR f.txt", chunks.append)
            ftp.quit()
            return control, names, b"".join(chunks), ftp.data_alpn
        finally:
            ftp.close()

    control, names, data, data_alpn = await in_thread(client)
    assert control == EXPECTED[offer]
    assert names == ["f.txt"]
    assert data == b"payload"
    assert data_alpn == [EXPECTED[offer]] * 2


@pytest.mark.parametrize("offer", list(OFFERS))
@pytest_twisted.ensureDeferred
async def test_implicit_ftps_with_any_alpn_offer(server_factory, tls_files: TLSFiles,
                                                 offer: str) -> None:
    server, port = await implicit_tls_server(server_factory, tls_files)
    context = alpn_context(tls_files.cert_pem, OFFERS[offer])

    def client() -> tuple[str | None, bytes]:
        with socket.create_connection((server.host, port), timeout=SAFETY_TIMEOUT) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            greeting = tls.recv(1024)
            return tls.selected_alpn_protocol(), greeting

    selected, greeting = await in_thread(client)
    assert selected == EXPECTED[offer]
    assert greeting.startswith(b"220 ")


def gnutls(port: int, *args: str, commands: bytes) -> str:
    """gnutls-cli against 127.0.0.1:port, sending ``commands`` (ending with QUIT); what
    it printed. Its input stays open until the server hangs up: gnutls-cli gives up
    the session as soon as its input ends, before slow replies (a login) arrive."""
    binary = require_binary("gnutls-cli")
    proc = subprocess.Popen([binary, "--insecure", "-p", str(port), *args, "127.0.0.1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(commands)
        proc.stdin.flush()
        proc.wait(timeout=SAFETY_TIMEOUT)
        return proc.stdout.read().decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("offer", list(OFFERS))
@pytest_twisted.ensureDeferred
async def test_gnutls_client_with_any_alpn_offer(server_factory, tls_files: TLSFiles,
                                                 offer: str) -> None:
    server, implicit = await implicit_tls_server(server_factory, tls_files)
    alpn = [f"--alpn={protocol}" for protocol in OFFERS[offer]]
    logged_in = b"USER alice\r\nPASS secret\r\nPWD\r\nQUIT\r\n"

    explicit_out = await in_thread(gnutls, server.port, "--starttls-proto=ftp", *alpn,
                                   commands=logged_in)
    implicit_out = await in_thread(gnutls, implicit, *alpn, commands=b"QUIT\r\n")

    for output in (explicit_out, implicit_out):
        assert "Handshake was completed" in output, output
        assert "221 " in output, output
        if EXPECTED[offer] is None:
            assert "Application protocol" not in output, output
        else:
            assert f"- Application protocol: {EXPECTED[offer]}" in output, output
    assert "230 " in explicit_out and '257 "/"' in explicit_out, explicit_out


@pytest_twisted.ensureDeferred
async def test_failed_handshake_is_logged_with_its_reason(server_factory,
                                                          tls_files: TLSFiles) -> None:
    server = await server_factory(tls_cert=str(tls_files.path))
    events: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        if "TLS handshake" in text:
            events.append(text)

    globalLogPublisher.addObserver(observe)
    try:
        def client() -> None:
            context = client_context(tls_files.cert_pem)
            context.maximum_version = ssl.TLSVersion.TLSv1_1  # below the server's minimum
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.set_ciphers("ALL:@SECLEVEL=0")
            ftp = ftplib.FTP_TLS(context=context, timeout=FTP_TIMEOUT)
            try:
                ftp.connect(server.host, server.port)
                with pytest.raises((ssl.SSLError, OSError)):
                    ftp.auth()
            finally:
                ftp.close()

        await in_thread(client)
        await server.all_sessions_gone()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert len(events) == 1, events
    assert events[0].startswith("TLS handshake from 127.0.0.1 failed: "), events
    reason = events[0].split("failed: ", 1)[1].lower()
    assert "protocol" in reason or "version" in reason, events



@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest_twisted.ensureDeferred
async def test_quit_closes_without_waiting_for_the_clients_close_notify(
        server_factory, tls_files: TLSFiles, implicit: bool) -> None:
    """After 221 the server sends close_notify and closes TCP at once (a FIN): a client
    that never answers with its own close_notify (gnutls-cli) is not kept waiting
    until the server gives up and resets the connection."""
    server = await server_factory(tls_cert=str(tls_files.path), implicit_tls_port=0)
    port = server.service.implicit_port.getHost().port if implicit else server.port
    context = client_context(tls_files.cert_pem)

    def client() -> tuple[bytes, bytes]:
        with socket.create_connection((server.host, port), timeout=SAFETY_TIMEOUT) as raw:
            if not implicit:
                raw.recv(1024)  # 220
                raw.sendall(b"AUTH TLS\r\n")
                assert raw.recv(1024).startswith(b"234")
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")

            def pump() -> bytes:
                """Move TLS bytes until the handshake is done or a record is read."""
                while True:
                    try:
                        return tls.read(4096)
                    except ssl.SSLWantReadError:
                        if outgoing.pending:
                            raw.sendall(outgoing.read())
                        data = raw.recv(65536)
                        if not data:
                            return b""
                        incoming.write(data)
                    except ssl.SSLZeroReturnError:
                        return b""

            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    raw.sendall(outgoing.read())
                    incoming.write(raw.recv(65536))
            replies = pump() if implicit else b""  # implicit FTPS greets inside TLS
            tls.write(b"QUIT\r\n")
            raw.sendall(outgoing.read())
            while chunk := pump():
                replies += chunk
            # The server's close_notify arrived; we send none. The TCP connection
            # must now end with a FIN (b""), not linger and then be reset.
            return replies, raw.recv(65536)

    replies, after = await in_thread(client)
    assert b"221 " in replies, replies
    assert after == b""
