# -*- test-case-name: tests.test_data_passive_range -*-
"""A server's passive ports in use by its own listeners, and the PASVs waiting for one.

A passive listener lives from the PASV until its client connects, a few
milliseconds; but when more sessions than the range has ports ask at the same
moment (200 clients logging in together on a range of 100), the last ones find
every port taken. Failing them with 425 would make the size of the range a hard
limit on how many sessions may *start* a transfer at once, when it only needs to
bound how many wait for their connection. So a PASV that finds every port held
by this server's own listeners waits, a bounded time, for the next one to close.
If the ports are taken by something else (other programs, or a range too small
for anything), there is nothing to wait for, and the answer is 425 at once.
"""

from __future__ import annotations

from collections import deque

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from twisted_ftpd.protocol.errors import DataConnectionError

# Seconds a PASV may wait for a port: clients connect in milliseconds, so a port
# frees at once unless clients are holding listeners they never connect to.
PORT_WAIT = 10.0


class NoFreePort(DataConnectionError):
    """Every port of the passive range is taken (425)."""

    def __init__(self) -> None:
        super().__init__("no free passive port.")


class PassiveRange:
    """Knows the ports this server's open passive listeners hold (a new listener
    need not try them), and wakes a waiting PASV, oldest first, each time one of
    them has closed."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        # The (address, port) pairs our open passive listeners hold.
        self.ports: set[tuple[str, int]] = set()
        self._waiters: deque[defer.Deferred[None]] = deque()

    @property
    def held(self) -> int:
        """How many passive listeners of ours are open."""
        return len(self.ports)

    def opened(self, host: str, port: int) -> None:
        self.ports.add((host, port))

    def closed(self, host: str, port: int) -> None:
        """Ours on ``host``, ``port`` has closed: the port can be bound there again."""
        self.ports.discard((host, port))
        if self._waiters:  # (a waiter leaves the queue before it fires, whatever ends it)
            self._waiters.popleft().callback(None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def wait(self, timeout: float, first: bool = False) -> defer.Deferred[None]:
        """Fires once one of ours has closed; fails with NoFreePort after ``timeout``
        seconds, or at once when none of the taken ports is ours. ``first``: ahead
        of the others (a PASV woken before, whose port another session took)."""
        if self.held <= 0:
            return defer.fail(NoFreePort())
        waiter: defer.Deferred[None] = defer.Deferred(lambda d: self._forget(d))
        if first:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        timer = self._clock.callLater(timeout, self._give_up, waiter)

        def stop_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        return waiter.addBoth(stop_timer)

    def _give_up(self, waiter: defer.Deferred[None]) -> None:
        self._forget(waiter)
        waiter.errback(NoFreePort())

    def _forget(self, waiter: defer.Deferred[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
