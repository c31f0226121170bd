# -*- test-case-name: tests.test_shutdown,tests.integration.test_shutdown -*-
"""A clean stop (SIGTERM, SIGINT, ``stopService``): running transfers may finish.

Once the listeners are closed, every session without a command in progress is
told ``421`` and closed at once; a session in the middle of a transfer (or any
other command) finishes it, gets its ``226``, then the ``421``. Whatever still
runs when the grace period is over is told ``421`` and closed, which aborts its
transfer. The stop is complete only when every session is gone *and* its last
command has settled, so an interrupted upload has landed (kept under its name
when it was new, the old file left alone when it was a replacement) before the
reactor stops its thread pool: no ``.part`` file stays behind.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from twisted_ftpd.protocol import replies

SHUTTING_DOWN = replies.SERVICE_CLOSING("Server shutting down; try again later.")

log = Logger()


class Shutdown:
    """Drains ``sessions`` (FTPControlProtocols) within ``grace`` seconds of ``clock``."""

    def __init__(self, sessions: Iterable[Any], grace: float, clock: IReactorTime) -> None:
        self._sessions = [s for s in sessions if not s.gone]
        self._grace = grace
        self._clock = clock
        self._deadline: IDelayedCall | None = None
        self.forced = False

    def start(self) -> defer.Deferred[None]:
        """Close idle sessions now, the others when their command ends; fires when
        all are gone and their commands have settled."""
        gone = [self._when_gone(session) for session in self._sessions]
        busy = [s for s in self._sessions if not s.when_idle().called]
        if busy:
            log.info("Shutting down: waiting up to {grace} s for {n} session(s) to finish "
                     "their transfers", grace=self._grace, n=len(busy))
            self._deadline = self._clock.callLater(self._grace, self.force)
        for session in self._sessions:
            session.when_idle().addCallback(lambda _, s=session: self._close(s))
        d = defer.gatherResults(gone)
        d.addCallback(self._all_gone)
        d.addCallback(lambda _: defer.gatherResults([s.when_idle() for s in self._sessions]))
        d.addCallback(lambda _: None)
        return d

    def force(self) -> None:
        """The grace period is over (or a second signal came): close every session."""
        self._cancel_deadline()
        if self.forced:
            return
        self.forced = True
        left = [s for s in self._sessions if not s.gone]
        if left:
            log.warn("Shutdown: closing {n} session(s) whose transfers did not finish in time",
                     n=len(left))
        for session in left:
            self._close(session)

    @staticmethod
    def _close(session: Any) -> None:
        if not session.gone and not session.scheduler.stopped:
            session.close_after(SHUTTING_DOWN)

    @staticmethod
    def _when_gone(session: Any) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        session.on_lost.append(lambda _: d.called or d.callback(None))
        return d

    def _all_gone(self, _: object) -> None:
        self._cancel_deadline()

    def _cancel_deadline(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()


def force_on_second_signal(reactor: Any, force: Callable[[], None]) -> None:
    """From now on SIGINT or SIGTERM skips the rest of the grace period (the reactor is
    already stopping, so its own handler would only report that it cannot stop twice).
    Only in the main thread, where signal handlers can be set."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        log.info("Received signal {signum} again: closing all sessions now", signum=signum)
        reactor.callFromThread(force)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
