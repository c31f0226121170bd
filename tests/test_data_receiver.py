"""How an upload's chunks reach its IWriteFile: as they arrive while writes complete at
once, in joined blocks (one in flight, the socket paused at the high-water mark) while
they go to a thread."""

from __future__ import annotations

from twisted.internet import defer, error
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.harness import RecordingTransport
from tests.helpers import MemoryTarget
from twisted_ftpd.data.channel import SEND_LIMIT, TRANSPORT_BUFFER, DataProtocol, DataTLS
from twisted_ftpd.data.streams import UPLOAD_READ, WRITE_BLOCK, Receiver
from twisted_ftpd.protocol.errors import LocalError

KiB = 1024
CHUNK = 256 * KiB


class Target(MemoryTarget):
    """Records every write; completes them at once, or holds them while ``pending``."""

    def __init__(self, *, pending: bool = False, fail: bool = False) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.pending = pending
        self.fail = fail
        self.held: list[defer.Deferred[None]] = []

    def write(self, data: bytes) -> defer.Deferred[None]:
        self.writes.append(data)
        if self.fail:
            raise OSError(28, "No space left on device")
        if self.pending:
            d: defer.Deferred[None] = defer.Deferred()
            self.held.append(d)
            return d
        return defer.succeed(None)


def receiving(target: Target) -> tuple[DataProtocol, StringTransport, list[object]]:
    proto = DataProtocol()
    transport = StringTransport()
    proto.makeConnection(transport)
    results: list[object] = []
    defer.ensureDeferred(Receiver(proto, target).run()).addBoth(results.append)
    return proto, transport, results


def chunks(count: int) -> list[bytes]:
    return [bytes([i]) * CHUNK for i in range(count)]


def test_inline_writes_take_each_chunk_as_it_arrives_without_joining() -> None:
    target = Target()
    proto, _, results = receiving(target)
    sent = chunks(6)
    for chunk in sent:
        proto.dataReceived(chunk)
    # The first block is gathered (nothing says yet that writes are inline)...
    assert target.writes[0] == b"".join(sent[:2])
    # ...then each chunk is written as it came, the very same object, not a copy.
    assert all(w is c for w, c in zip(target.writes[1:], sent[2:], strict=True))
    proto.connectionLost(Failure(error.ConnectionDone()))
    assert results == [6 * CHUNK] and target.committed
    assert b"".join(target.writes) == b"".join(sent)


def test_writes_that_wait_are_joined_into_blocks_one_in_flight() -> None:
    target = Target(pending=True)
    proto, transport, results = receiving(target)
    sent = chunks(8)
    for chunk in sent[:6]:
        proto.dataReceived(chunk)
    assert [len(w) for w in target.writes] == [WRITE_BLOCK]  # one block in flight
    assert transport.producerState == "paused"  # 4 chunks waiting: the high-water mark
    target.held.pop().callback(None)
    assert transport.producerState == "producing"
    assert [len(w) for w in target.writes] == [WRITE_BLOCK, 4 * CHUNK]  # the next, joined
    for chunk in sent[6:]:
        proto.dataReceived(chunk)
    target.pending = False
    target.held.pop().callback(None)  # the two waiting chunks go as one block
    assert [len(w) for w in target.writes] == [WRITE_BLOCK, 4 * CHUNK, 2 * CHUNK]
    proto.connectionLost(Failure(error.ConnectionDone()))
    assert results == [8 * CHUNK] and b"".join(target.writes) == b"".join(sent)


def test_a_write_that_waits_again_goes_back_to_blocks() -> None:
    target = Target()
    proto, _, _ = receiving(target)
    for chunk in chunks(3):
        proto.dataReceived(chunk)  # a block, then the third chunk alone: inline
    target.pending = True
    proto.dataReceived(b"x" * CHUNK)  # this write waits...
    proto.dataReceived(b"y" * CHUNK)
    target.held.pop().callback(None)
    assert [len(w) for w in target.writes] == [WRITE_BLOCK, CHUNK, CHUNK]
    proto.dataReceived(b"z" * CHUNK)  # ...so 2 chunks are gathered again before the next
    assert [len(w) for w in target.writes] == [WRITE_BLOCK, CHUNK, CHUNK, 2 * CHUNK]


def test_a_write_that_raises_fails_the_upload_and_drops_the_connection() -> None:
    target = Target()
    proto, transport, results = receiving(target)
    for chunk in chunks(2):
        proto.dataReceived(chunk)
    target.fail = True
    proto.dataReceived(b"x" * CHUNK)
    assert proto.aborted and transport.disconnecting
    proto.connectionLost(Failure(error.ConnectionLost()))
    assert len(results) == 1 and isinstance(results[0], Failure)
    assert results[0].check(LocalError) and target.aborted and not target.committed


class SizedTransport(RecordingTransport):
    bufferSize = 64 * KiB  # what Twisted's TCP transport reads at a time
    SEND_LIMIT = 128 * KiB  # and sends per writable event


def test_an_upload_reads_the_socket_in_larger_steps() -> None:
    proto = DataProtocol()
    transport = SizedTransport()
    proto.makeConnection(transport)
    assert transport.bufferSize == TRANSPORT_BUFFER  # any data connection
    assert transport.SEND_LIMIT == SizedTransport.SEND_LIMIT  # plain: Twisted's
    defer.ensureDeferred(Receiver(proto, Target()).run())
    assert transport.bufferSize == UPLOAD_READ > TRANSPORT_BUFFER


def test_a_tls_data_connection_sends_more_per_writable_event() -> None:
    transport = SizedTransport()
    DataProtocol(tls=DataTLS(object())).makeConnection(transport)
    assert transport.tls_starts  # TLS started on it
    assert transport.SEND_LIMIT == SEND_LIMIT > SizedTransport.SEND_LIMIT
