"""Passive data ports: the one-shot listener behind each PASV, and the order the
passive range is tried in."""

from __future__ import annotations

import errno
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import error, tcp
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.logger import globalLogPublisher

from tests.helpers import SAFETY_TIMEOUT
from twisted_ftpd.data.connect import port_order
from twisted_ftpd.data.ports import OneShotPort, listen_passive


@pytest.fixture
def reactor() -> Iterator[EPollReactor]:
    """A real epoll reactor of the test's own, stepped by hand (never run)."""
    r = EPollReactor()
    yield r
    r.removeAll()
    r._internalReaders.clear()


@pytest.fixture
def logged() -> Iterator[list[str]]:
    texts: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        texts.append(" ".join(str(part) for part in event.get("message", ()))
                     or str(event.get("log_format")))

    globalLogPublisher.addObserver(observe)
    yield texts
    globalLogPublisher.removeObserver(observe)


def step(reactor: EPollReactor, times: int = 5) -> None:
    for _ in range(times):
        reactor.iterate(0.01)


class Accepting(Factory):
    noisy = False

    def __init__(self) -> None:
        self.accepted: list[Protocol] = []

    def buildProtocol(self, addr: Any) -> Protocol:
        proto = Protocol()
        self.accepted.append(proto)
        return proto


def connect(port: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port.getHost().port), timeout=SAFETY_TIMEOUT)


def test_a_one_shot_port_accepts_and_closes_at_once_without_a_log_line(reactor, logged) -> None:
    factory = Accepting()
    port = listen_passive(reactor, 0, factory, backlog=5, interface="127.0.0.1")
    assert isinstance(port, OneShotPort)
    number = port.getHost().port
    assert number > 0 and port in reactor.getReaders()
    with connect(port) as client:
        step(reactor)
        assert len(factory.accepted) == 1
        transport = factory.accepted[0].transport
        # Twisted's own server transport, as tcp.Port makes it.
        assert isinstance(transport, tcp.Server)
        assert transport.getPeer().port == client.getsockname()[1]
        assert transport.getHost().port == number
        closing = port.stopListening()
        assert closing.called  # closed now, not on a later turn
        assert not port.connected and port not in reactor.getReaders()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", number), timeout=1).close()
        transport.write(b"still here")  # the accepted connection lives on
        step(reactor)
        assert client.recv(100) == b"still here"
        transport.loseConnection()
        step(reactor)
    assert port.stopListening().called  # a second stop is harmless
    assert [t for t in logged if "starting on" in t or "Closed" in t] == []


def test_a_refused_connection_is_closed_and_the_port_keeps_listening(reactor) -> None:
    class RefuseFirst(Accepting):
        refused = 0

        def buildProtocol(self, addr: Any) -> Protocol | None:
            if not self.refused:
                self.refused += 1
                return None
            return super().buildProtocol(addr)

    factory = RefuseFirst()
    port = listen_passive(reactor, 0, factory, backlog=5, interface="127.0.0.1")
    try:
        with connect(port) as first:
            step(reactor)
            assert first.recv(10) == b""  # closed by us
            with connect(port):
                step(reactor)
                assert len(factory.accepted) == 1
    finally:
        port.stopListening()


def test_the_ipv6_loopback_is_served_too(reactor) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    factory = Accepting()
    try:
        port = listen_passive(reactor, 0, factory, backlog=5, interface="::1")
    except error.CannotListenError:
        pytest.skip("no ::1 here")
    try:
        assert port.getHost().host == "::1"
        with socket.create_connection(("::1", port.getHost().port), timeout=SAFETY_TIMEOUT):
            step(reactor)
        assert factory.accepted[0].transport.getPeer().host == "::1"
    finally:
        port.stopListening()


def test_a_port_on_a_busy_address_is_cannot_listen(reactor) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(error.CannotListenError):
            OneShotPort(reactor, busy.getsockname()[1], Factory(), 5, "127.0.0.1")
    assert not [r for r in reactor.getReaders() if isinstance(r, OneShotPort)]


def test_the_port_can_be_bound_again_while_its_connection_lingers(reactor) -> None:
    """Every data connection we close leaves TIME_WAIT on the passive port."""
    factory = Accepting()
    port = listen_passive(reactor, 0, factory, backlog=5, interface="127.0.0.1")
    number = port.getHost().port
    with connect(port):
        step(reactor)
        port.stopListening()
        factory.accepted[0].transport.loseConnection()  # we close first: TIME_WAIT is ours
        step(reactor)
    again = OneShotPort(reactor, number, Factory(), 5, "127.0.0.1")
    again.stopListening()


def test_a_stopping_reactor_closes_the_port(reactor) -> None:
    port = listen_passive(reactor, 0, Accepting(), backlog=5, interface="127.0.0.1")
    number = port.getHost().port
    reactor.disconnectAll()
    assert not port.connected
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", number), timeout=1).close()


OUT_OF_DESCRIPTORS = """
import resource, socket, sys
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.error import CannotListenError
from twisted_ftpd.data.ports import OneShotPort

class Owner(Factory):
    failed = None
    def buildProtocol(self, addr):
        return Protocol()
    def accept_failed(self, reason):
        self.failed = reason

reactor = EPollReactor()
owner = Owner()
port = OneShotPort(reactor, 0, owner, 5, "127.0.0.1")
client = socket.create_connection(("127.0.0.1", port.getHost().port))
spare = []
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
try:
    while True:
        spare.append(open("/dev/null"))
except OSError:
    pass
for _ in range(5):
    reactor.iterate(0.01)
print(owner.failed.errno if owner.failed else None, port.connected, port in reactor.getReaders())
try:
    while True:  # the closed port gave a descriptor back: take it
        spare.append(open("/dev/null"))
except OSError:
    pass
try:
    OneShotPort(reactor, 0, owner, 5, "127.0.0.1")
except CannotListenError as e:
    print(e.socketError.errno)
"""


def test_out_of_descriptors_fails_the_set_up_instead_of_spinning() -> None:
    """With level-triggered epoll, a connection left in the backlog would make the
    port readable for ever; the port gives up and tells its owner (425)."""
    done = subprocess.run([sys.executable, "-c", OUT_OF_DESCRIPTORS], capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT, check=True)
    # And a new port at the limit cannot listen (not a bare OSError).
    assert done.stdout.split() == [str(errno.EMFILE), "False", "False", str(errno.EMFILE)]


class RecordingReactor:
    """The reactor's descriptor bookkeeping, recording what it was handed."""

    def __init__(self) -> None:
        self.readers: list[Any] = []
        self.removed_as: list[int] = []

    def addReader(self, reader: Any) -> None:  # noqa: N802 - Twisted's name
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:  # noqa: N802
        self.removed_as.append(reader.fileno())
        self.readers.remove(reader)


def test_the_reactor_is_told_the_descriptor_it_stops_watching() -> None:
    """With -1 the epoll reactor would search all its descriptors for the port."""
    recording = RecordingReactor()
    port = OneShotPort(recording, 0, Factory(), 5, "127.0.0.1")
    number = port.socket.fileno()
    port.stopListening()
    assert recording.removed_as == [number] and recording.readers == []


class Failing(Accepting):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where
        self.failed: list[Exception] = []

    def buildProtocol(self, addr: Any) -> Protocol:
        if self.where == "build":
            raise RuntimeError("a bug")
        proto = super().buildProtocol(addr)
        if self.where == "made":
            proto.connectionMade = lambda: 1 / 0  # type: ignore[method-assign]
        return proto

    def accept_failed(self, reason: Exception) -> None:
        self.failed.append(reason)


def test_a_connection_that_cannot_be_set_up_fails_the_port(reactor, logged) -> None:
    factory = Failing("build")
    port = listen_passive(reactor, 0, factory, backlog=5, interface="127.0.0.1")
    with connect(port) as client:
        step(reactor)
        assert [type(e) for e in factory.failed] == [RuntimeError]
        assert not port.connected and port not in reactor.getReaders()
        assert client.recv(10) == b""  # its socket was closed
    assert any("Setting up a passive data connection failed" in t for t in logged)


def test_a_failing_connection_made_is_logged_and_the_connection_kept(reactor, logged) -> None:
    factory = Failing("made")
    port = listen_passive(reactor, 0, factory, backlog=5, interface="127.0.0.1")
    try:
        with connect(port):
            step(reactor)
            assert factory.failed == [] and port.connected
            transport = factory.accepted[0].transport
            assert transport in reactor.getReaders()
            transport.loseConnection()
            step(reactor)
    finally:
        port.stopListening()
    assert any("connectionMade of a passive data connection failed" in t for t in logged)


def test_other_reactors_listen_their_own_way() -> None:
    memory = MemoryReactor()
    listen_passive(memory, 40001, Factory(), backlog=5, interface="127.0.0.1")
    assert [(p, b, i) for p, _, b, i in memory.tcpServers] == [(40001, 5, "127.0.0.1")]


def test_the_passive_range_is_tried_once_each_from_a_random_start(monkeypatch) -> None:
    ports = list(range(50000, 50010))
    monkeypatch.setattr(random, "randrange", lambda n: 7)
    assert list(port_order(ports)) == [50007, 50008, 50009, *range(50000, 50007)]
    monkeypatch.undo()
    starts = {next(port_order(ports)) for _ in range(500)}
    assert starts == set(ports)  # every port can come first
    assert sorted(port_order(ports)) == ports
    assert list(port_order([0])) == [0]
