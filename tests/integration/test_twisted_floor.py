"""bench/twisted_floor.py, the benchmark's Twisted floor, as a real process with ftplib:
it must move files correctly, or its small-file row would measure a broken server."""

from __future__ import annotations

import ftplib
import hashlib
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backends import START_TIMEOUT

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIG = 20 * 1000 * 1000  # more than loopback's socket buffers take at once


class Floor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "twisted_floor.py"), "0", str(root), "0-0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready = self.process.stdout.readline()  # the port, once it listens
        if not ready:
            raise RuntimeError(self.process.stderr.read().decode())
        self.port = int(ready)

    def login(self) -> ftplib.FTP:
        client = ftplib.FTP(timeout=START_TIMEOUT)
        client.connect("127.0.0.1", self.port)
        client.af = socket.AF_INET6  # ftplib then asks EPSV, the one passive command served
        client.login()
        client.voidcmd("TYPE I")
        return client

    def open_descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "f0000").write_bytes(os.urandom(4096))
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    server = Floor(tmp_path)
    yield server
    server.process.kill()
    server.process.wait()


def epsv_port(client: ftplib.FTP) -> int:
    return int(client.sendcmd("EPSV").split("|")[3])


def read_all(data: socket.socket) -> bytes:
    chunks = []
    while chunk := data.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_small_download_arrives_whole_and_leaves_no_descriptor_open(floor: Floor) -> None:
    before = floor.open_descriptors()
    client = floor.login()
    for _ in range(3):
        received = bytearray()
        client.retrbinary("RETR small/f0000", received.extend)
        assert bytes(received) == (floor.root / "small" / "f0000").read_bytes()
    epsv_port(client)  # a listener never used, then the session ends
    client.quit()
    client = floor.login()
    epsv_port(client)
    client.close()  # without QUIT
    # A third session, to its end: its 221 and the server's close come after the
    # reactor has seen the second session's close (it arrived first).
    last = floor.login()
    last.sendcmd("QUIT")
    assert last.sock.recv(1) == b""
    last.close()
    assert floor.open_descriptors() == before


def test_a_second_epsv_closes_the_first_listener_and_serves_on_its_own(floor: Floor) -> None:
    client = floor.login()
    first, second = epsv_port(client), epsv_port(client)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", first)).close()
    with socket.create_connection(("127.0.0.1", second)) as data:
        assert client.sendcmd("RETR small/f0000").startswith("150")
        assert read_all(data) == (floor.root / "small" / "f0000").read_bytes()
    assert client.voidresp().startswith("226")


def test_226_comes_only_once_a_download_the_socket_could_not_take_has_gone(
        floor: Floor) -> None:
    client = floor.login()
    with socket.create_connection(("127.0.0.1", epsv_port(client))) as data:
        data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        assert client.sendcmd("RETR big.bin").startswith("150")
        # The data is unread, so most of the file waits in the server: no 226 yet.
        assert select.select([client.sock], [], [], 0.5)[0] == []
        received = read_all(data)
    assert hashlib.sha256(received).digest() == hashlib.sha256(
        (floor.root / "big.bin").read_bytes()).digest()
    assert client.voidresp().startswith("226")


def test_what_cannot_be_sent_is_refused(floor: Floor) -> None:
    client = floor.login()
    epsv_port(client)
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.sendcmd("RETR missing")
    epsv_port(client)
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.sendcmd("RETR small")  # a directory
    with pytest.raises(ftplib.error_temp, match="^425"):
        client.sendcmd("RETR small/f0000")  # no EPSV before it
    received = bytearray()
    client.retrbinary("RETR small/f0000", received.extend)  # the session still serves
    assert len(received) == 4096
