"""Passive data ports: Twisted's TCP port without its per-port log lines, and the
order the passive range is tried in."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.logger import globalLogPublisher

from twisted_ftpd.data.connect import port_order
from twisted_ftpd.data.ports import QuietPort, listen_passive


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


def test_a_quiet_port_accepts_and_closes_without_a_log_line(reactor, logged) -> None:
    factory = Accepting()
    port = listen_passive(reactor, 0, factory, backlog=5, interface="127.0.0.1")
    assert isinstance(port, QuietPort)
    number = port.getHost().port
    assert number > 0
    with socket.create_connection(("127.0.0.1", number)):
        step(reactor)
    assert len(factory.accepted) == 1
    port.stopListening()
    step(reactor)
    assert not port.connected
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", number), timeout=1).close()
    assert [t for t in logged if "starting on" in t or "Closed" in t] == []


def test_a_quiet_port_is_set_up_as_twisteds_own_port(reactor, logged) -> None:
    """Guards the copy of tcp.Port.startListening against a Twisted that sets up more."""
    quiet = listen_passive(reactor, 0, Factory(), backlog=5, interface="127.0.0.1")
    plain = reactor.listenTCP(0, Factory(), backlog=5, interface="127.0.0.1")
    try:
        assert set(vars(quiet)) == set(vars(plain))
        assert (quiet.connected, quiet.numberAccepts) == (plain.connected, plain.numberAccepts)
        assert quiet in reactor.getReaders()
        assert any("starting on" in t for t in logged)  # Twisted's own port still says so
        assert not any(f"starting on {quiet.getHost().port}" in t for t in logged)
    finally:
        quiet.stopListening()
        plain.stopListening()
        step(reactor)


def test_a_quiet_port_on_a_busy_address_is_cannot_listen(reactor) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(error.CannotListenError):
            QuietPort(busy.getsockname()[1], Factory(), 5, "127.0.0.1", reactor).startListening()


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
