"""A real HAProxy in front of a real node, real clients behind it: each client binds
its own loopback address (127.0.0.5), HAProxy is on 127.0.0.1, the node on 127.0.0.2,
so the address the node logs, counts and checks can only be the client's if the
PROXY header was read, and PASV/EPSV data only arrive if they went through HAProxy."""

from __future__ import annotations

import ftplib
import io
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import formatEvent, globalLogPublisher

from tests.integration.conftest import (
    FTP_TIMEOUT,
    Server,
    close_quietly,
    in_thread,
    require_binary,
    run_cli,
    sha256,
)
from tests.integration.haproxy import Balancer, Node, free_range, start_haproxy
from tests.integration.tls_helpers import ReusingFTP_TLS, client_context, make_tls_files

pytestmark = pytest.mark.integration

CLIENT = "127.0.0.5"
BALANCER = "127.0.0.1"
NODE = "127.0.0.2"
STRANGER = "127.0.0.6"


class Stack:
    """A node behind HAProxy, with the node's session events and the server log."""

    def __init__(self, node: Server, balancer: Balancer, tmp: Path) -> None:
        self.node, self.balancer, self.tmp = node, balancer, tmp
        self.events: list[dict[str, Any]] = []
        node.factory.events.observe(self.events.append)
        self.log: list[str] = []

    def peers(self, name: str) -> set[str]:
        return {e["peer"] for e in self.events if e.get("ftpd_event") == name}

    def ftp(self) -> ftplib.FTP:
        """ftplib from the client's address, through the balancer, logged in (blocking)."""
        ftp = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=(CLIENT, 0))
        ftp.connect(BALANCER, self.balancer.port)
        ftp.login("alice", "secret")
        return ftp


@pytest_twisted.async_yield_fixture
async def stack(tmp_path: Path, server_factory: Callable[..., Any]):
    """``await stack(send=..., data_send=..., **node_config)``."""
    made: list[Balancer] = []
    observed: list[Any] = []

    async def make(send: str = "send-proxy-v2", data_send: str = "send-proxy-v2",
                   implicit: bool = False, **config: Any) -> Stack:
        held, low, high = free_range(6, (BALANCER, NODE))
        if implicit:
            config["implicit_tls_listen"] = (f"haproxy:tcp:0:interface={NODE}",)
        node = await server_factory(
            interface=NODE, listen=(f"haproxy:tcp:0:interface={NODE}",),
            proxy_from=(f"{BALANCER}/32",), passive_ports=(low, high),
            masquerade_address=BALANCER, xferlog=str(tmp_path / "xferlog"), **config)
        implicit_port = node.service.implicit_port.getHost().port if implicit else None
        balancer = start_haproxy(tmp_path, [Node("n1", NODE, node.port, (low, high),
                                                 implicit_port)],
                                 {"n1": held}, BALANCER, send, data_send)
        made.append(balancer)
        result = Stack(node, balancer, tmp_path)

        def observe(event: dict[str, Any]) -> None:
            result.log.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        observed.append(observe)
        return result

    yield make
    for observer in observed:
        globalLogPublisher.removeObserver(observer)
    for balancer in made:
        await in_thread(balancer.stop)


def require_loopback_aliases() -> None:
    """Linux answers on all of 127/8; elsewhere the aliases must be configured."""
    try:
        with socket.socket() as s:
            s.bind((CLIENT, 0))
    except OSError:
        pytest.skip(f"{CLIENT} is not a local address here")


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"], ids=["v1", "v2"])
@pytest_twisted.ensureDeferred
async def test_ftplib_through_haproxy_is_logged_as_the_client(stack: Any, send: str) -> None:
    require_loopback_aliases()
    s = await stack(send=send, data_send=send)
    data = os.urandom(300_000)

    def session() -> bytes:
        ftp = s.ftp()
        try:
            ftp.storbinary("STOR up.bin", io.BytesIO(data))  # PASV, through the balancer
            chunks: list[bytes] = []
            ftp.retrbinary("RETR up.bin", chunks.append)
            assert ftp.nlst() == ["up.bin"]
            return b"".join(chunks)
        finally:
            close_quietly(ftp)

    assert sha256(await in_thread(session)) == sha256(data)
    assert (s.node.root / "up.bin").read_bytes() == data
    await s.node.all_sessions_gone()
    for name in ("connect", "login", "transfer", "logout"):
        assert s.peers(name) == {CLIENT}, name
    xferlog = (s.tmp / "xferlog").read_text().splitlines()
    assert len(xferlog) == 2 and all(line.split()[6] == CLIENT for line in xferlog)


@pytest_twisted.ensureDeferred
async def test_curl_epsv_and_lftp_pasv_through_haproxy(stack: Any, tmp_path: Path) -> None:
    require_loopback_aliases()
    curl, lftp = require_binary("curl"), require_binary("lftp")
    s = await stack()
    data = os.urandom(200_000)
    (s.node.root / "down.bin").write_bytes(data)
    out = tmp_path / "out.bin"
    url = f"ftp://alice:secret@{BALANCER}:{s.balancer.port}/down.bin"
    result = await in_thread(run_cli, [curl, "-sS", "--interface", CLIENT, "-o", str(out),
                                       url], tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == data  # curl asks EPSV first: only the port, on 127.0.0.1
    (tmp_path / "put.bin").write_bytes(data)
    script = "; ".join([
        "set cmd:fail-exit yes", "set net:max-retries 1", "set net:timeout 20",
        "set ftp:ssl-allow no", "set ftp:prefer-epsv no", f"set net:socket-bind-ipv4 {CLIENT}",
        f"open -u alice,secret -p {s.balancer.port} {BALANCER}", "put put.bin"])
    result = await in_thread(run_cli, [lftp, "-c", script], tmp_path / "home", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (s.node.root / "put.bin").read_bytes() == data
    await s.node.all_sessions_gone()
    assert s.peers("transfer") == {CLIENT} and len(s.peers("login")) == 1


def raw(host: str, port: int, source: str) -> socket.socket:
    return socket.create_connection((host, port), timeout=FTP_TIMEOUT,
                                    source_address=(source, 0))


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a dropped connection ends with a reset)."""
    chunks = []
    try:
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


@pytest_twisted.ensureDeferred
async def test_a_forged_header_from_elsewhere_is_refused(stack: Any) -> None:
    require_loopback_aliases()
    s = await stack()

    def forge() -> tuple[bytes, bytes]:
        with raw(NODE, s.node.port, STRANGER) as sock:  # around the balancer
            banner = sock.recv(4096)
            sock.sendall(f"PROXY TCP4 10.9.9.9 {NODE} 1234 21\r\nUSER alice\r\n".encode())
            return banner, read_all(sock)

    banner, rest = await in_thread(forge)
    assert banner.startswith(b"220 ") and rest == b""  # served directly, until it forged
    assert any(STRANGER in line and "not one of the balancers" in line for line in s.log)
    assert "10.9.9.9" not in str(s.events)


@pytest_twisted.ensureDeferred
async def test_the_balancer_must_send_its_header_in_time(stack: Any) -> None:
    s = await stack(proxy_header_timeout=0.5)

    def silent() -> bytes:
        with raw(NODE, s.node.port, BALANCER) as sock:
            return read_all(sock)

    assert await in_thread(silent) == b""  # no banner: dropped, not greeted
    assert any("sent no PROXY header within 0.5 s" in line for line in s.log)
    assert s.peers("connect") == set()


@pytest_twisted.ensureDeferred
async def test_implicit_ftps_behind_haproxy(stack: Any, tmp_path: Path) -> None:
    """HAProxy's header comes first, then TLS from the client; the data connections
    (PROT P) too, and they resume the control connection's TLS session."""
    require_loopback_aliases()
    curl = require_binary("curl")
    tls = make_tls_files(tmp_path)
    s = await stack(implicit=True, tls_cert=str(tls.path))
    data = os.urandom(150_000)
    (s.node.root / "secret.bin").write_bytes(data)
    out = tmp_path / "out.bin"
    url = f"ftps://alice:secret@{BALANCER}:{s.balancer.implicit_port}/secret.bin"
    result = await in_thread(run_cli, [curl, "-sS", "-k", "--interface", CLIENT, "-o",
                                       str(out), url], tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == data
    await s.node.all_sessions_gone()
    assert s.peers("login") == {CLIENT}
    assert [e["tls"] for e in s.events if e.get("ftpd_event") == "transfer"] == [True]


@pytest_twisted.ensureDeferred
async def test_tls_mode_data_without_header_needs_the_resumed_session(stack: Any,
                                                                      tmp_path: Path) -> None:
    """--proxy-data tls: HAProxy adds no header to data connections; a PROT P one that
    resumes the login's session is the client's, a clear one is refused with 425."""
    require_loopback_aliases()
    tls = make_tls_files(tmp_path)
    s = await stack(data_send="", tls_cert=str(tls.path), proxy_data="tls")
    data = os.urandom(100_000)
    (s.node.root / "f.bin").write_bytes(data)

    def session() -> tuple[bytes, str]:
        ftp = ReusingFTP_TLS(context=client_context(tls.cert_pem, check_hostname=False),
                             timeout=FTP_TIMEOUT, source_address=(CLIENT, 0))
        try:
            ftp.connect(BALANCER, s.balancer.port)
            ftp.auth()
            ftp.login("alice", "secret")
            ftp.prot_p()
            chunks: list[bytes] = []
            ftp.retrbinary("RETR f.bin", chunks.append)
            assert ftp.data_sessions_reused == [True]
            ftp.prot_c()
            with pytest.raises(ftplib.error_temp) as refused:
                ftp.retrbinary("RETR f.bin", chunks.append)
            return b"".join(chunks), str(refused.value)
        finally:
            close_quietly(ftp)

    got, refusal = await in_thread(session)
    assert got == data
    assert refusal == ("425 Can't open data connection: through the balancer, data "
                       "connections need TLS (PROT P).")
