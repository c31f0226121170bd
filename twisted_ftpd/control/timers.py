# -*- test-case-name: tests.test_control_timers -*-
"""Every timer and wait a control connection starts, cancelled in one place when it
ends, and its idle timeout.

A wait that outlives its connection is a command that never finishes, and a server
that waits for its sessions to go idle (a test server stopping, a clean shutdown)
would wait for ever; so nothing here survives ``cancel_all``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.protocols.policies import TimeoutMixin

T = TypeVar("T")


class SessionTimers:
    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._calls: set[IDelayedCall] = set()
        # Every wait the session's end must cancel: sleeps with their timers, and the
        # waits ``bound`` was given (None: no timer of ours).
        self._sleepers: dict[defer.Deferred[Any], IDelayedCall | None] = {}
        self.cancelled = False

    def later(self, seconds: float, f: Callable[..., object], *args: object) -> IDelayedCall | None:
        """Call ``f(*args)`` in ``seconds``, unless the session ends first."""
        if self.cancelled:
            return None

        def fire() -> None:
            self._calls.discard(call)
            f(*args)

        call = self.clock.callLater(seconds, fire)
        self._calls.add(call)
        return call

    def cancel(self, call: IDelayedCall | None) -> None:
        if call is not None and call in self._calls:
            self._calls.discard(call)
            call.cancel()

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        """Fires after ``seconds``; fails with CancelledError if the session ends first."""
        if self.cancelled:
            return defer.fail(defer.CancelledError())
        waiter: defer.Deferred[None] = defer.Deferred(
            lambda _: self._sleepers.pop(waiter).cancel())  # type: ignore[union-attr]
        self._sleepers[waiter] = self.clock.callLater(seconds, self._wake, waiter)
        return waiter

    def bound(self, waiting: defer.Deferred[T]) -> defer.Deferred[T]:
        """``waiting``, cancelled (CancelledError) if the session ends first."""
        if self.cancelled:
            waiting.cancel()
            return waiting
        self._sleepers[waiting] = None

        def done(result: object) -> object:
            self._sleepers.pop(waiting, None)
            return result

        return waiting.addBoth(done)

    def _wake(self, waiter: defer.Deferred[None]) -> None:
        del self._sleepers[waiter]
        waiter.callback(None)

    def cancel_all(self) -> None:
        """The session is gone: cancel every call and end every wait."""
        self.cancelled = True
        calls, self._calls = self._calls, set()
        for call in calls:
            call.cancel()
        for waiter in list(self._sleepers):
            waiter.cancel()


class IdleTimeout(TimeoutMixin):
    """The control connection's idle timeout (Twisted's TimeoutMixin), asleep while a
    transfer's bytes move: a long download is not an idle client."""

    def __init__(self, clock: IReactorTime, seconds: float | None,
                 expired: Callable[[], None]) -> None:
        self.callLater = clock.callLater  # TimeoutMixin's timer source
        self._seconds = seconds
        self._expired = expired
        self._asleep = False
        self._stopped = False

    def start(self) -> None:
        self.setTimeout(self._seconds)

    def activity(self) -> None:
        """A command arrived: the client is not idle."""
        self.resetTimeout()

    def transfer(self, moving: bool) -> None:
        """Sleep while a transfer runs; start counting again when it ends."""
        if moving:
            self._asleep = True
            self.setTimeout(None)
        elif self._asleep and not self._stopped:
            self._asleep = False
            self.setTimeout(self._seconds)

    def stop(self) -> None:
        self._stopped = True
        self.setTimeout(None)

    def timeoutConnection(self) -> None:
        self._expired()
