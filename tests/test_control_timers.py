"""Session timers: everything ends with the session."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from twisted_ftpd.control.timers import SessionTimers


def test_later_fires_and_forgets() -> None:
    clock = Clock()
    timers = SessionTimers(clock)
    fired: list[int] = []
    timers.later(1, fired.append, 1)
    clock.advance(1)
    assert fired == [1] and clock.getDelayedCalls() == []


def test_sleep_fires_after_its_time() -> None:
    clock = Clock()
    waiter = SessionTimers(clock).sleep(5)
    clock.advance(4.9)
    assert not waiter.called
    clock.advance(0.1)
    assert waiter.called


def test_cancel_all_cancels_calls_and_fails_sleeps() -> None:
    clock = Clock()
    timers = SessionTimers(clock)
    fired: list[int] = []
    timers.later(1, fired.append, 1)
    waiter = timers.sleep(5)
    failures: list[type] = []
    waiter.addErrback(lambda f: failures.append(f.type))
    timers.cancel_all()
    assert failures == [defer.CancelledError]
    assert [c for c in clock.getDelayedCalls() if c.active()] == []
    clock.advance(10)
    assert fired == []
    # Nothing new starts on a finished session.
    assert timers.later(1, fired.append, 2) is None
    assert isinstance(timers.sleep(1).result.value, defer.CancelledError)


def test_cancel_one_call() -> None:
    clock = Clock()
    timers = SessionTimers(clock)
    fired: list[int] = []
    call = timers.later(1, fired.append, 1)
    timers.cancel(call)
    clock.advance(1)
    assert fired == []
