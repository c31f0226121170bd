"""Data connection set-ups decide once: connected, failed or closed, never two of them."""

from __future__ import annotations

import errno

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.failure import Failure

from twisted_ftpd.data import connect
from twisted_ftpd.data.connect import ActiveConnection, PassiveConnection
from twisted_ftpd.data.passive_range import NoFreePort
from twisted_ftpd.protocol.errors import DataConnectionError, TransferAborted


def passive(clock: Clock) -> tuple[MemoryReactor, PassiveConnection]:
    reactor = MemoryReactor()
    return reactor, PassiveConnection(reactor, clock, 30.0, "127.0.0.1", "127.0.0.1")


def accept(reactor: MemoryReactor, host: str = "127.0.0.1") -> object:
    factory = reactor.tcpServers[-1][1]
    return factory.buildProtocol(IPv4Address("TCP", host, 40000))


def failure_of(d: Deferred, kind: type[Exception]) -> bool:
    """Whether ``d`` has already failed with ``kind`` (the failure is consumed)."""
    seen: list[Failure] = []
    d.addErrback(seen.append)
    return len(seen) == 1 and seen[0].check(kind) is not None


def test_a_passive_set_up_hands_out_its_one_connection() -> None:
    clock = Clock()
    reactor, pending = passive(clock)
    waiting = pending.connection()
    proto = accept(reactor)
    assert proto is not None and not pending.decided
    assert accept(reactor) is None  # a second connection while the first comes up
    proto.makeConnection(StringTransport())
    assert pending.protocol is proto and pending.decided and pending.failure is None
    assert waiting.result is proto and pending.connection().result is proto
    clock.advance(30.0)  # the timeout is off once connected
    assert pending.failure is None


def test_a_passive_set_up_ignores_strangers_and_keeps_waiting() -> None:
    clock = Clock()
    reactor, pending = passive(clock)
    assert accept(reactor, "127.0.0.9") is None
    assert not pending.decided and accept(reactor) is not None


def test_a_timed_out_set_up_stays_failed() -> None:
    clock = Clock()
    reactor, pending = passive(clock)
    waiting = pending.connection()
    clock.advance(30.0)
    assert isinstance(pending.failure, DataConnectionError)
    assert failure_of(waiting, DataConnectionError)
    assert accept(reactor) is None  # too late: the port is gone
    assert failure_of(pending.connection(), DataConnectionError)


def test_a_port_that_cannot_accept_fails_the_set_up() -> None:
    clock = Clock()
    reactor, pending = passive(clock)
    waiting = pending.connection()
    reactor.tcpServers[-1][1].accept_failed(OSError(errno.EMFILE, "Too many open files"))
    assert isinstance(pending.failure, DataConnectionError)
    assert failure_of(waiting, DataConnectionError)
    assert pending.port is None  # the port was let go


def test_out_of_descriptors_is_425_at_once_not_a_search_of_the_range(monkeypatch) -> None:
    tried: list[int] = []

    def cannot(reactor: object, number: int, *args: object, **kwargs: object) -> None:
        tried.append(number)
        raise error.CannotListenError("127.0.0.1", number, OSError(errno.EMFILE, "Too many"))

    monkeypatch.setattr(connect, "listen_passive", cannot)
    with pytest.raises(DataConnectionError) as refused:
        PassiveConnection(MemoryReactor(), Clock(), 30.0, "127.0.0.1", "127.0.0.1",
                          range(40000, 40100))
    assert not isinstance(refused.value, NoFreePort) and len(tried) == 1


def test_closing_tells_the_waiters_why_and_ends_everything() -> None:
    clock = Clock()
    reactor, pending = passive(clock)
    waiting = pending.connection()
    proto = accept(reactor)
    transport = StringTransport()
    proto.makeConnection(transport)  # type: ignore[attr-defined]
    pending.close(TransferAborted())
    assert pending.closed and pending.protocol is proto and transport.disconnecting
    assert waiting.result is proto  # it had its answer before the close
    later = pending.connection()
    assert failure_of(later, DataConnectionError)
    late = PassiveConnection(reactor, clock, 30.0, "127.0.0.1", "127.0.0.1")
    asked = late.connection()
    late.close(TransferAborted())
    assert failure_of(asked, TransferAborted)
    assert late.failure is None  # closed, not failed


def test_an_active_set_up_dials_once_when_first_asked() -> None:
    reactor = MemoryReactor()
    pending = ActiveConnection(reactor, Clock(), 30.0, "127.0.0.1", 2121, "127.0.0.1")
    assert reactor.tcpClients == []  # PORT alone dials nothing
    pending.connection()
    pending.connection()
    assert len(reactor.tcpClients) == 1
    factory = reactor.tcpClients[0][2]
    factory.clientConnectionFailed(None, None)
    assert isinstance(pending.failure, DataConnectionError) and pending.decided
    assert failure_of(pending.connection(), DataConnectionError)
    assert len(reactor.tcpClients) == 1  # a failed set-up is not dialled again
