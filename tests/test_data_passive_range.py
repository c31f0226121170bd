"""PassiveRange: PASVs wait for this server's own passive listeners to close."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from twisted_ftpd.data.passive_range import NoFreePort, PassiveRange


def test_with_none_of_ours_open_there_is_nothing_to_wait_for() -> None:
    failure = PassiveRange(Clock()).wait(10)
    with pytest.raises(NoFreePort):
        failure.result.raiseException()  # type: ignore[attr-defined]
    failure.addErrback(lambda _: None)


def holding(*numbers: int, clock: Clock | None = None) -> PassiveRange:
    """A range whose listeners of ours hold ``numbers`` on 127.0.0.1."""
    ports = PassiveRange(clock or Clock())
    for number in numbers:
        ports.opened("127.0.0.1", number)
    return ports


def test_each_close_wakes_one_waiter_oldest_first() -> None:
    ports = holding(50001, 50002)
    woken: list[str] = []
    ports.wait(10).addCallback(lambda _: woken.append("first"))
    ports.wait(10).addCallback(lambda _: woken.append("second"))
    assert ports.waiting == 2
    ports.closed("127.0.0.1", 50001)
    assert woken == ["first"] and ports.ports == {("127.0.0.1", 50002)}
    ports.closed("127.0.0.1", 50002)
    assert woken == ["first", "second"] and ports.waiting == 0


def test_a_waiter_gives_up_after_its_timeout_and_leaves_no_timer() -> None:
    clock = Clock()
    ports = holding(50003, clock=clock)
    outcome: list[object] = []
    ports.wait(10).addBoth(outcome.append)
    clock.advance(9.9)
    assert outcome == []
    clock.advance(0.1)
    assert isinstance(outcome[0].value, NoFreePort)  # type: ignore[attr-defined]
    assert ports.waiting == 0 and clock.getDelayedCalls() == []
    ports.closed("127.0.0.1", 50003)  # nobody left to wake
    assert ports.held == 0


def test_a_woken_waiter_leaves_no_timer() -> None:
    clock = Clock()
    ports = holding(50004, clock=clock)
    d = ports.wait(10)
    ports.closed("127.0.0.1", 50004)
    assert d.called and clock.getDelayedCalls() == []


def test_a_closed_port_is_no_longer_ours() -> None:
    ports = holding(50001, 50002)
    ports.closed("127.0.0.1", 50001)
    ports.closed("127.0.0.1", 50001)  # said twice: still just the one port freed
    assert ports.ports == {("127.0.0.1", 50002)} and ports.held == 1


def test_a_cancelled_waiter_is_not_woken_and_leaves_no_timer() -> None:
    clock = Clock()
    ports = holding(50005, 50006, clock=clock)
    cancelled = ports.wait(10)
    cancelled.addErrback(lambda f: f.trap(defer.CancelledError))
    later: list[object] = []
    ports.wait(10).addCallback(later.append)
    cancelled.cancel()
    assert clock.getDelayedCalls() != [] and ports.waiting == 1
    ports.closed("127.0.0.1", 50005)
    assert later == [None] and clock.getDelayedCalls() == []


def test_a_waiter_woken_before_goes_first_when_it_waits_again() -> None:
    ports = holding(50001, 50002)
    woken: list[str] = []
    ports.wait(10).addCallback(lambda _: woken.append("newcomer"))
    ports.wait(10, first=True).addCallback(lambda _: woken.append("again"))
    ports.closed("127.0.0.1", 50001)
    assert woken == ["again"]


def test_the_same_port_on_another_address_is_another_port() -> None:
    ports = holding(50001)
    ports.opened("::1", 50001)
    ports.closed("::1", 50001)
    assert ports.ports == {("127.0.0.1", 50001)}
