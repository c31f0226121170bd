"""Reply output and its backpressure, and the test server's delayed variant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet import error, tcp
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import directlyProvides

from tests.helpers import read_available, socket_pair
from twisted_ftpd.control.output import CLOSE_GRACE, ReplyOutput
from twisted_ftpd.control.timers import SessionTimers
from twisted_ftpd.faults import DelayedReplyOutput, Faults
from twisted_ftpd.protocol import replies
from twisted_ftpd.proxy_protocol import Balancers, ProxyHeaderReceiver


def test_pause_resume_and_stop_tell_the_scheduler() -> None:
    events: list[str] = []
    output = ReplyOutput(StringTransport(), lambda: events.append("full"),
                         lambda: events.append("drained"))
    output.pauseProducing()
    assert output.full
    output.resumeProducing()
    assert not output.full and events == ["full", "drained"]
    output.stopProducing()
    assert output.full and events == ["full", "drained", "full"]


def test_send_writes_the_rendered_reply() -> None:
    transport = StringTransport()
    ReplyOutput(transport, lambda: None, lambda: None).send(replies.NOOP_OK)
    assert transport.value() == b"200 NOOP ok.\r\n"


def test_delayed_output_holds_replies_but_not_immediate_ones() -> None:
    clock, transport, faults = Clock(), StringTransport(), Faults()
    faults.reply_delay = 2
    output = DelayedReplyOutput(transport, lambda: None, lambda: None, faults,
                                SessionTimers(clock))
    output.send(replies.NOOP_OK)
    output.send(replies.AUTH_OK("TLS"), immediate=True)
    assert transport.value().startswith(b"234 ")
    transport.clear()
    done: list[bool] = []
    output.then(done.append, True)
    assert output.delay == 2 and done == []
    clock.advance(2)
    assert transport.value() == b"200 NOOP ok.\r\n" and done == [True]


class _Peer:
    """A ReplyOutput on a real ``tcp.Connection`` over a socket pair, on a MemoryReactor
    that records writers: the test reads the other end and plays the reactor's part."""

    def __init__(self) -> None:
        self.server, self.client = socket_pair()
        self.reactor = MemoryReactorClock()
        self.transport = tcp.Connection(self.server, Protocol(), reactor=self.reactor)
        self.transport.connected = True  # as tcp.Server sets it for an accepted socket
        self.output = ReplyOutput(self.transport, lambda: None, lambda: None)

    def received(self) -> bytes:
        return read_available(self.client)

    def fill(self) -> bytes:
        """Fill the server side's socket buffer, as a client that stopped reading would."""
        sent = bytearray()
        block = b"f" * 65536
        while True:
            try:
                sent += block[: self.server.send(block)]
            except BlockingIOError:
                return bytes(sent)

    def close(self) -> None:
        self.server.close()
        self.client.close()


@pytest.fixture
def peer() -> Iterator[_Peer]:
    made = _Peer()
    yield made
    made.close()


def test_a_reply_is_on_the_socket_before_the_reactor_turns(peer: _Peer) -> None:
    peer.output.send(replies.NOOP_OK)
    peer.output.send(replies.TYPE_SET("I"))
    assert peer.received() == b"200 NOOP ok.\r\n200 Type set to I.\r\n"
    assert peer.transport not in peer.reactor.getWriters()


def test_replies_queue_in_order_behind_a_full_socket(peer: _Peer) -> None:
    filler = peer.fill()
    peer.output.send(replies.NOOP_OK)  # nothing fits: Twisted's buffer takes it
    assert peer.transport in peer.reactor.getWriters()
    got = peer.received()  # room again; the next reply must still wait its turn
    peer.output.send(replies.TYPE_SET("I"))
    while peer.transport in peer.reactor.getWriters():
        peer.transport.doWrite()
        got += peer.received()
    assert got == filler + b"200 NOOP ok.\r\n200 Type set to I.\r\n"


class _TLSLayer(Protocol):
    """Stands for the TLS protocol startTLS puts between a transport and its bytes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def loseConnection(self) -> None:  # noqa: N802
        self.closing = True  # it would send its close_notify, then close the socket


def test_a_tls_transport_gets_every_reply_through_its_tls_layer(peer: _Peer) -> None:
    layer = peer.transport.protocol = _TLSLayer()
    peer.transport.TLS = True  # what startTLS leaves behind: bytes must be encrypted first
    directlyProvides(peer.transport, ISSLTransport)
    peer.output.send(replies.NOOP_OK)
    assert peer.received() == b"" and layer.written == [b"200 NOOP ok.\r\n"]


def test_a_closing_transport_sends_nothing_directly(peer: _Peer) -> None:
    peer.transport.loseConnection()
    peer.output.send(replies.NOOP_OK)
    assert peer.received() == b""


def test_nothing_reaches_a_client_cut_off_for_not_reading(peer: _Peer) -> None:
    filler = peer.fill()
    peer.output.send(replies.SERVICE_CLOSING("Bye."))  # waits in Twisted's buffer
    timers = SessionTimers(peer.reactor)
    peer.output.hang_up(timers)  # the grace for its last replies runs out...
    assert peer.transport.disconnecting and peer.transport.connected
    peer.reactor.advance(CLOSE_GRACE)
    peer.transport.disconnecting = False  # (as if its close were still waiting to flush)
    peer.output.send(replies.NOOP_OK)  # ...and a late reply goes nowhere
    assert peer.received() == filler


class _Recording(Protocol):
    def __init__(self) -> None:
        self.lost: list[object] = []

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802
        self.lost.append(reason)


def test_a_session_whose_replies_all_went_to_the_socket_closes_at_once(peer: _Peer) -> None:
    protocol = peer.transport.protocol = _Recording()
    peer.output.send(replies.GOODBYE)
    peer.output.hang_up(SessionTimers(peer.reactor))
    assert not peer.transport.connected  # closed now, without a reactor turn
    assert peer.transport not in peer.reactor.getWriters()
    assert peer.transport not in peer.reactor.getReaders()
    assert len(protocol.lost) == 1 and protocol.lost[0].check(error.ConnectionDone)
    assert peer.received() == b"221 Goodbye.\r\n"
    assert peer.client.recv(10) == b""  # then the end of the stream, not a reset


def test_a_reply_in_twisteds_buffer_is_flushed_before_the_close(peer: _Peer) -> None:
    protocol = peer.transport.protocol = _Recording()
    filler = peer.fill()
    peer.output.send(replies.GOODBYE)  # the socket is full: Twisted's buffer
    peer.output.hang_up(SessionTimers(peer.reactor))
    assert peer.transport.connected and protocol.lost == []
    got = b""
    while peer.transport.connected:  # the reactor's part: flush as the client reads
        got += peer.received()
        why = peer.transport.doWrite()
        if why is not None:
            peer.transport.connectionLost(Failure(why))
    got += peer.received()
    assert got == filler + b"221 Goodbye.\r\n"
    assert len(protocol.lost) == 1


def test_a_tls_session_closes_through_its_tls_layer(peer: _Peer) -> None:
    layer = peer.transport.protocol = _TLSLayer()
    peer.transport.TLS = True
    directlyProvides(peer.transport, ISSLTransport)
    peer.output.send(replies.GOODBYE)
    peer.output.hang_up(SessionTimers(peer.reactor))
    # Twisted's way: the TLS layer sends its close_notify first, then the socket closes.
    assert layer.closing and peer.transport.connected
    assert layer.written == [b"221 Goodbye.\r\n"] and peer.received() == b""


def test_behind_a_proxy_header_reader_replies_go_to_the_socket_below(peer: _Peer) -> None:
    receiver = ProxyHeaderReceiver(object(), lambda addr: None, Balancers([]), peer.reactor,
                                   5.0, "control connection")
    receiver.transport = peer.transport  # what it stands on once the header is read
    ReplyOutput(receiver, lambda: None, lambda: None).send(replies.NOOP_OK)
    assert peer.received() == b"200 NOOP ok.\r\n"
    assert peer.transport not in peer.reactor.getWriters()
