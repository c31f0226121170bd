"""The sendfile download path, driven by hand: a real socket pair and file, a
MemoryReactor that records the writer, and doWrite called as the reactor would."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.failure import Failure

from tests.helpers import read_available, socket_pair
from twisted_ftpd.data import sendfile
from twisted_ftpd.data.channel import DataProtocol, DataTLS
from twisted_ftpd.data.sendfile import SendfileSender, send_download
from twisted_ftpd.data.throttle import TokenBucket
from twisted_ftpd.fs.files import DiskReadFile, ReadFile
from twisted_ftpd.fs.memory import MemoryReadFile
from twisted_ftpd.protocol.errors import LocalError, TransferAborted

MiB = 1024 * 1024


class SocketTransport(StringTransport):
    """A StringTransport whose handle is a real socket, as a TCP transport's is."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def getHandle(self) -> socket.socket:  # noqa: N802 - Twisted interface name
        return self.sock


class Pair:
    """A DataProtocol on one end of a socket pair; the test reads the other end."""

    def __init__(self) -> None:
        self.server, self.client = socket_pair()
        self.transport = SocketTransport(self.server)
        self.proto = DataProtocol()
        self.proto.makeConnection(self.transport)
        self.reactor = MemoryReactor()
        self.received = bytearray()

    def drain(self) -> None:
        self.received += read_available(self.client)

    def start(self, reader: ReadFile) -> tuple[SendfileSender, object]:
        """A sender for ``reader``, started: its first burst is sent."""
        sock = self.proto.direct_socket()
        assert sock is not None
        sender = SendfileSender(self.proto, reader, sock, self.reactor)
        return sender, sender.start()

    def pump(self, sender: SendfileSender, limit: int = 10_000) -> None:
        """Act as the reactor: doWrite while watched, the peer reading in between."""
        for _ in range(limit):
            self.drain()
            if sender not in self.reactor.writers:
                return
            sender.doWrite()
        raise AssertionError("the sender never finished")

    def close(self) -> None:
        self.server.close()
        self.client.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


def source(path: Path, offset: int = 0) -> DiskReadFile:
    f = open(path, "rb")  # noqa: SIM115 - DiskReadFile owns and closes it
    f.seek(offset)
    return DiskReadFile(f, "/" + path.name)


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * MiB + 12345)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


def failure_of(d: object) -> Failure:
    """The failure a Deferred has already failed with (consumed)."""
    failures: list[Failure] = []
    d.addErrback(failures.append)  # type: ignore[attr-defined]
    assert len(failures) == 1, d
    return failures[0]


def fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_a_whole_file_goes_by_sendfile(pair: Pair, big: tuple[Path, bytes]) -> None:
    path, data = big
    reader = source(path)
    d = send_download(pair.proto, reader, ascii=False, reactor=pair.reactor)
    assert pair.proto.download_path == "sendfile"
    assert 0 < pair.proto.bytes_moved < len(data)  # the first burst, until the socket was full
    (sender,) = pair.reactor.writers  # the rest when the reactor says it is writable
    assert pair.transport.producer is sender and pair.transport.streaming
    dup = sender.fileno()
    assert dup != pair.server.fileno()
    pair.pump(sender)
    assert bytes(pair.received) == data
    assert pair.transport.value() == b""  # nothing went through the transport
    assert d.result == len(data) == pair.proto.bytes_moved
    assert pair.transport.producer is None
    assert fd_closed(dup) and reader._file.closed


def test_a_small_file_goes_at_once(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"4 KiB " * 700)
    reader = source(path)
    d = send_download(pair.proto, reader, ascii=False, reactor=pair.reactor)
    assert d.result == 4200 and reader._file.closed
    assert pair.reactor.writers == set() and pair.transport.producer is None
    pair.drain()
    assert bytes(pair.received) == b"4 KiB " * 700


def test_rest_offset_is_where_sending_starts(pair: Pair, big: tuple[Path, bytes]) -> None:
    path, data = big
    sender, d = pair.start(source(path, 1_000_001))
    pair.pump(sender)
    assert bytes(pair.received) == data[1_000_001:]
    assert d.result == len(data) - 1_000_001


def test_one_writable_event_sends_at_most_a_burst(pair: Pair, big: tuple[Path, bytes],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendfile, "CHUNK", 1000)
    monkeypatch.setattr(sendfile, "BURST", 3000)
    sender, _ = pair.start(source(big[0]))
    assert pair.proto.bytes_moved == 3000
    assert sender in pair.reactor.writers  # the rest waits for the next event
    sender.doWrite()
    assert pair.proto.bytes_moved == 6000


def test_a_full_socket_waits_for_the_next_event(pair: Pair, big: tuple[Path, bytes]) -> None:
    sender, _ = pair.start(source(big[0]))
    for _ in range(20):  # nobody reads: the socket buffer fills, then EAGAIN
        sender.doWrite()
    moved = pair.proto.bytes_moved
    assert 0 < moved < len(big[1])
    sender.doWrite()
    assert pair.proto.bytes_moved == moved and sender in pair.reactor.writers


def test_lost_connection_stops_it(pair: Pair, big: tuple[Path, bytes]) -> None:
    reader = source(big[0])
    sender, d = pair.start(reader)
    dup = sender.fileno()
    sender.stopProducing()  # what the transport does when the connection is lost
    assert pair.reactor.writers == set()
    assert fd_closed(dup) and reader._file.closed
    assert failure_of(d).check(TransferAborted)


def test_peer_reset_fails_the_transfer(pair: Pair, big: tuple[Path, bytes]) -> None:
    sender, d = pair.start(source(big[0]))
    pair.client.close()  # unread data: the kernel answers with a reset
    sender.doWrite()
    assert pair.reactor.writers == set()
    assert failure_of(d).check(TransferAborted)


def test_socket_hang_up_seen_by_the_reactor_fails_the_transfer(
        pair: Pair, big: tuple[Path, bytes]) -> None:
    reader = source(big[0])
    sender, d = pair.start(reader)
    pair.reactor.removeWriter(sender)  # as the reactor does before telling it
    sender.connectionLost(Failure(ConnectionLost()))
    assert failure_of(d).check(TransferAborted)
    assert reader._file.closed


def test_a_bug_in_the_sender_is_a_local_error(pair: Pair, big: tuple[Path, bytes]) -> None:
    sender, d = pair.start(source(big[0]))
    pair.reactor.removeWriter(sender)
    sender.connectionLost(Failure(ZeroDivisionError()))
    assert failure_of(d).check(LocalError)


def test_aborted_connection_stops_at_the_next_event(pair: Pair, big: tuple[Path, bytes]) -> None:
    sender, d = pair.start(source(big[0]))
    moved = pair.proto.bytes_moved
    pair.drain()
    pair.proto.close()  # ABOR: Twisted reports the loss only on a later turn
    sender.doWrite()
    assert pair.reactor.writers == set() and pair.proto.bytes_moved == moved
    assert failure_of(d).check(TransferAborted)


def test_byte_limit_hangs_up_after_exactly_that_much(pair: Pair,
                                                     big: tuple[Path, bytes]) -> None:
    pair.proto.drop_after(100_000)
    sender, d = pair.start(source(big[0]))
    pair.pump(sender)
    assert bytes(pair.received) == big[1][:100_000]
    assert pair.transport.disconnecting and pair.proto.aborted
    assert not d.called
    sender.stopProducing()  # the transport, once it has closed
    assert failure_of(d).check(TransferAborted)


def test_pause_and_resume_stop_and_start_watching(pair: Pair, big: tuple[Path, bytes]) -> None:
    sender, _ = pair.start(source(big[0]))
    sender.pauseProducing()
    assert pair.reactor.writers == set()
    sender.resumeProducing()
    assert pair.reactor.writers == {sender}


def test_every_chunk_restarts_the_stall_timer(pair: Pair, big: tuple[Path, bytes]) -> None:
    clock = Clock()
    pair.proto.watch(clock, 10)
    sender, _ = pair.start(source(big[0]))
    clock.advance(9)
    pair.drain()
    sender.doWrite()
    clock.advance(9)
    assert not pair.proto.aborted
    clock.advance(2)
    assert pair.proto.aborted and pair.transport.disconnected


def test_a_file_sendfile_cannot_read_goes_through_the_producer(
        pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")  # as for a file system without it

    path = tmp_path / "f.txt"
    path.write_bytes(b"not for sendfile")
    monkeypatch.setattr(sendfile.os, "sendfile", refuse)
    d = send_download(pair.proto, source(path, 4), ascii=False, reactor=pair.reactor)
    assert pair.proto.download_path == "producer" and pair.reactor.writers == set()
    assert pair.transport.value() == b"for sendfile"
    assert d.result == len(b"for sendfile")


def test_a_read_error_is_a_local_error(pair: Pair, big: tuple[Path, bytes]) -> None:
    sender, d = pair.start(source(big[0]))
    sender._failed(OSError(5, "Input/output error"))  # EIO mid-file, as a bad disk gives
    assert failure_of(d).check(LocalError)
    assert pair.reactor.writers == set()


# Which path a download takes.


def test_type_a_takes_the_producer_path(pair: Pair, big: tuple[Path, bytes]) -> None:
    send_download(pair.proto, source(big[0]), ascii=True, reactor=pair.reactor)
    assert pair.proto.download_path == "producer" and pair.reactor.writers == set()
    assert pair.transport.value()  # translated and written through the transport


def test_a_download_rate_takes_the_producer_path(pair: Pair, big: tuple[Path, bytes]) -> None:
    clock = Clock()
    pair.proto.limit_rates(clock, TokenBucket(MiB, clock), None)
    send_download(pair.proto, source(big[0]), ascii=False, reactor=pair.reactor)
    assert pair.proto.download_path == "producer" and pair.reactor.writers == set()


def test_tls_takes_the_producer_path() -> None:
    proto = DataProtocol(tls=DataTLS(options=None))
    proto.transport = SocketTransport(socket.socket())
    try:
        assert proto.direct_socket() is None
    finally:
        proto.transport.sock.close()


def test_something_already_written_takes_the_producer_path(pair: Pair) -> None:
    pair.proto.write(b"x")
    assert pair.proto.direct_socket() is None


def test_a_transport_without_a_socket_takes_the_producer_path(big: tuple[Path, bytes]) -> None:
    proto = DataProtocol()
    proto.makeConnection(StringTransport())
    d = send_download(proto, source(big[0]), ascii=False, reactor=MemoryReactor())
    assert proto.download_path == "producer"
    assert d.result == len(big[1]) == len(proto.transport.value())


class PlainReadFile:
    """A backend's IReadFile without a descriptor (an object store)."""

    def __init__(self) -> None:
        self.sent_to: object = None

    def send(self, consumer: object) -> object:
        self.sent_to = consumer
        return "sending"


def test_a_read_file_without_a_descriptor_takes_the_producer_path(pair: Pair) -> None:
    from zope.interface import directlyProvides

    from twisted_ftpd.interfaces import IReadFile

    plain = PlainReadFile()
    directlyProvides(plain, IReadFile)
    assert send_download(pair.proto, plain, ascii=False, reactor=pair.reactor) == "sending"
    assert plain.sent_to is pair.proto and pair.proto.download_path == "producer"


def test_the_memory_shells_files_take_the_producer_path(pair: Pair) -> None:
    reader: ReadFile = MemoryReadFile(b"in memory", 3)
    d = send_download(pair.proto, reader, ascii=False, reactor=pair.reactor)
    assert pair.proto.download_path == "producer" and pair.reactor.writers == set()
    assert pair.transport.value() == b"memory" and d.result == 6


def test_the_disk_shell_opens_files_for_sendfile_at_the_rest_offset(tmp_path: Path) -> None:
    from tests.helpers import sync_run
    from twisted_ftpd.fs.shell import FilesystemShell
    from twisted_ftpd.interfaces import IFileDescriptorReadFile

    (tmp_path / "f.bin").write_bytes(b"0123456789")
    opened = FilesystemShell(str(tmp_path), "elr", run=sync_run).open_for_reading(("f.bin",), 4)
    reader = opened.result
    assert IFileDescriptorReadFile.providedBy(reader)
    fd, offset = reader.file_descriptor()
    assert offset == 4 and os.pread(fd, 10, offset) == b"456789"
    reader.close()
    with pytest.raises(RuntimeError):
        reader.file_descriptor()


def test_a_lone_download_sends_a_large_burst_per_event(pair: Pair, big: tuple[Path, bytes],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SendfileSender, "active", 0)
    monkeypatch.setattr(sendfile, "CHUNK", 1000)
    monkeypatch.setattr(sendfile, "BURST", 8000)
    monkeypatch.setattr(sendfile, "SHARE", 8000)
    sender, d = pair.start(source(big[0]))
    assert SendfileSender.active == 1 and pair.proto.bytes_moved == 8000
    pair.pump(sender)
    assert d.result == len(big[1]) and SendfileSender.active == 0  # its share given back


def test_concurrent_downloads_share_the_burst_down_to_a_floor(
        big: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SendfileSender, "active", 0)
    monkeypatch.setattr(sendfile, "CHUNK", 1000)
    monkeypatch.setattr(sendfile, "BURST", 8000)
    monkeypatch.setattr(sendfile, "SHARE", 8000)
    pairs = [Pair() for _ in range(10)]
    try:
        first, _ = pairs[0].start(source(big[0]))
        second, _ = pairs[1].start(source(big[0]))
        assert pairs[1].proto.bytes_moved == 4000  # two under way: half the share each
        first.doWrite()
        assert pairs[0].proto.bytes_moved == 8000 + 4000
        others = [p.start(source(big[0]))[0] for p in pairs[2:]]
        assert pairs[-1].proto.bytes_moved == 1000  # ten: the floor, not 800
        for sender in others:
            sender.stopProducing()  # their connections went away
        first.doWrite()
        assert pairs[0].proto.bytes_moved == 12000 + 4000  # two again
        second.stopProducing()
        assert SendfileSender.active == 1
    finally:
        for p in pairs:
            p.close()
