"""The end of a download: a data connection closes once everything written is sent,
at once when nothing waits in Twisted's buffer (sendfile), and never loses a byte.

A real epoll reactor of the test's own, stepped by hand, and a real TCP connection
accepted by the passive port.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport

from tests.helpers import SAFETY_TIMEOUT
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.data.ports import OneShotPort
from twisted_ftpd.data.sendfile import send_download
from twisted_ftpd.fs.files import DiskReadFile, ReadFile

MiB = 1024 * 1024


class Connected:
    """A DataProtocol on an accepted TCP connection, and the client's socket."""

    def __init__(self, reactor: EPollReactor) -> None:
        self.reactor = reactor
        self.proto = DataProtocol()
        factory = Factory.forProtocol(lambda: self.proto)
        port = OneShotPort(reactor, 0, factory, 5, "127.0.0.1")
        self.client = socket.create_connection(("127.0.0.1", port.getHost().port),
                                               timeout=SAFETY_TIMEOUT)
        self.step()
        port.stopListening()
        assert self.proto.transport is not None

    def step(self, times: int = 3) -> None:
        for _ in range(times):
            self.reactor.iterate(0)

    def read_all(self) -> bytes:
        """What the client receives up to the end of the connection (stepping the
        reactor while it waits, for what Twisted still has to flush)."""
        got = bytearray()
        self.client.setblocking(False)
        for _ in range(100_000):
            try:
                chunk = self.client.recv(MiB)
            except BlockingIOError:
                self.step(1)
                continue
            if not chunk:
                return bytes(got)
            got += chunk
        raise AssertionError("the connection never ended")


@pytest.fixture
def connected() -> Iterator[Connected]:
    reactor = EPollReactor()
    c = Connected(reactor)
    yield c
    c.client.close()
    reactor.removeAll()
    reactor._internalReaders.clear()


def lost(c: Connected) -> Any:
    d = c.proto.when_closed()
    return d.result if d.called else None


def test_a_sendfile_download_closes_at_once_with_every_byte(connected: Connected,
                                                           tmp_path: Path) -> None:
    data = os.urandom(100_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    sent = send_download(connected.proto, DiskReadFile(open(path, "rb")), ascii=False,  # noqa: SIM115
                         reactor=connected.reactor)
    assert connected.proto.download_path == "sendfile" and sent.called
    transport = connected.proto.transport
    connected.proto.hang_up()
    # Closed now, without waiting for a turn of the reactor, and no longer watched.
    assert isinstance(lost(connected), error.ConnectionDone)
    assert transport not in connected.reactor.getReaders()
    assert transport not in connected.reactor.getWriters()
    assert connected.read_all() == data


def test_buffered_bytes_are_flushed_before_the_close(connected: Connected) -> None:
    data = os.urandom(8 * MiB)  # more than the socket takes at once
    connected.proto.write(data)
    connected.proto.hang_up()
    assert lost(connected) is None  # Twisted still holds some: it closes after flushing
    assert connected.read_all() == data
    assert isinstance(lost(connected), error.ConnectionDone)


def test_a_producer_path_download_closes_after_its_last_chunk(connected: Connected,
                                                             tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    path = tmp_path / "f"
    path.write_bytes(data)
    sent = ReadFile(open(path, "rb")).send(connected.proto)  # noqa: SIM115
    connected.proto.hang_up()
    assert connected.read_all() == data
    assert sent.called and isinstance(lost(connected), error.ConnectionDone)


def test_a_connection_already_closing_is_left_to_it(connected: Connected) -> None:
    connected.proto.transport.loseConnection()
    connected.proto.hang_up()
    assert connected.read_all() == b""
    assert isinstance(lost(connected), error.ConnectionDone)


def test_a_connection_we_aborted_is_not_closed_cleanly(connected: Connected) -> None:
    """ABOR or the stall timer broke it off: it ends with the reset it was given."""
    connected.proto.close()
    connected.proto.hang_up()
    connected.step()
    assert isinstance(lost(connected), error.ConnectionAborted)


def test_other_transports_are_closed_their_own_way() -> None:
    """Not a plain TCP connection (TLS, a test's StringTransport): loseConnection."""
    proto = DataProtocol()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.hang_up()
    assert transport.disconnecting and proto.lost is None
