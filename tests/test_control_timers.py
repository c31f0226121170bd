"""Session timers: everything ends with the session."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from twisted_ftpd.control.timers import IdleTimeout, SessionTimers


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


def idle_timeout(clock: Clock, seconds: float = 60.0) -> tuple[IdleTimeout, list[float]]:
    expired: list[float] = []
    idle = IdleTimeout(clock, seconds, lambda: expired.append(clock.seconds()))
    idle.start()
    return idle, expired


def expires_at(clock: Clock, expired: list[float], when: float) -> bool:
    """Whether the timeout fires at ``when`` exactly (not a second before)."""
    clock.advance(when - 1 - clock.seconds())
    before = list(expired)
    clock.advance(1)
    return before == [] and expired == [when]


def test_idle_timeout_counts_from_the_last_command() -> None:
    clock = Clock()
    idle, expired = idle_timeout(clock)
    clock.advance(50)
    idle.activity()
    assert expires_at(clock, expired, 110.0)


def test_idle_timeout_sleeps_while_a_transfer_moves() -> None:
    clock = Clock()
    idle, expired = idle_timeout(clock)
    idle.transfer(True)
    clock.advance(600)  # a long download is not idleness
    assert expired == []
    idle.transfer(False)  # counting starts again, from the transfer's end
    assert expires_at(clock, expired, 660.0)


def test_a_stopped_idle_timeout_never_starts_again() -> None:
    clock = Clock()
    idle, expired = idle_timeout(clock)
    idle.transfer(True)
    idle.stop()
    idle.transfer(False)  # the transfer ended as the connection went
    assert clock.getDelayedCalls() == []
    clock.advance(600)
    assert expired == []


def test_a_bound_wait_is_cancelled_when_the_session_ends() -> None:
    timers = SessionTimers(Clock())
    waiting: defer.Deferred[None] = defer.Deferred()
    outcome: list[object] = []
    timers.bound(waiting).addBoth(outcome.append)
    timers.cancel_all()
    assert isinstance(outcome[0].value, defer.CancelledError)  # type: ignore[attr-defined]
    late: defer.Deferred[None] = defer.Deferred()
    timers.bound(late).addErrback(outcome.append)  # after the end: cancelled at once
    assert isinstance(outcome[1].value, defer.CancelledError)  # type: ignore[attr-defined]


def test_a_bound_wait_that_fired_is_forgotten() -> None:
    timers = SessionTimers(Clock())
    waiting: defer.Deferred[str] = defer.Deferred()
    timers.bound(waiting)
    waiting.callback("done")
    timers.cancel_all()
    assert waiting.result == "done"
