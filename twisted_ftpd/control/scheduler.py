# -*- test-case-name: tests.test_control_scheduler -*-
"""Which command runs now: the control connection's queue, without any I/O.

Lines keep being read while a command runs (a slow disk, a pending data
connection, a transfer); their commands wait here and start one at a time, in
order. While a transfer streams, the table's ``beside`` rule lets some commands
run next to it: ABOR from anywhere in the queue, NOOP/STAT/HELP when they are
next in line. Nothing starts while the client is not reading its replies, and
more than ``MAX_QUEUED`` waiting commands stop the reading of new lines.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer

from twisted_ftpd.protocol.commands import COMMANDS, Beside
from twisted_ftpd.protocol.parser import Command

# More queued commands than this and we stop reading until the queue drains.
MAX_QUEUED = 64


class CommandScheduler:
    """``start(command)`` runs a command: None when it is done already, else a
    Deferred that fires when it is done (never failing); ``set_reading(bool)``
    switches the reading of lines; ``transfer_running()`` says whether a transfer
    holds the channel now."""

    def __init__(self, start: Callable[[Command], defer.Deferred[None] | None],
                 set_reading: Callable[[bool], None],
                 transfer_running: Callable[[], bool]) -> None:
        self._start = start
        self._set_reading = set_reading
        self._transfer_running = transfer_running
        # A list, not a deque: it holds a few commands at most (MAX_QUEUED), and an
        # empty deque costs every idle session 600 bytes more than an empty list.
        self._queue: list[Command] = []
        self._reading = True
        self._draining = False
        self._idle_waiters: list[defer.Deferred[None]] = []
        self.busy = False  # the main command (say, a transfer) is still running
        self.held = False  # the client is not reading its replies
        self.stopped = False  # QUIT, too many failed logins, or gone: run nothing more

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, command: Command) -> None:
        if self.stopped:
            return
        self._queue.append(command)
        self._update_reading()
        self.kick()

    def discard(self) -> None:
        """Forget every waiting command (AUTH: nothing sent in clear may run later)."""
        self._queue.clear()
        self._update_reading()

    def stop(self) -> None:
        self.stopped = True
        self.discard()

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False
        self.kick()

    def kick(self) -> None:
        """Start queued commands for as long as nothing holds them back.

        Iterative and non-reentrant: a command that completes at once does not start
        the next one from inside itself, so a long pipeline cannot exhaust the stack.
        """
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue and not self.stopped and not self.held:
                if self.busy:
                    command = self._beside()
                    if command is None:
                        return
                    self._start(command)
                    continue
                command = self._queue.pop(0)
                self._update_reading()
                self.busy = True
                try:
                    running = self._start(command)
                except BaseException:  # a bug: still free the session for what follows
                    self._finished()
                    raise
                if running is None:  # answered at once (TYPE, EPSV, USER...)
                    self._finished()
                else:
                    running.addBoth(self._done)
        finally:
            self._draining = False

    def _beside(self) -> Command | None:
        """While a transfer runs: the queued command that may run next to it, if any."""
        if not self._transfer_running():
            return None
        for command in self._queue:
            spec = COMMANDS.get(command.verb)
            if spec is not None and spec.beside is Beside.ANYWHERE:
                self._queue.remove(command)
                return command
        spec = COMMANDS.get(self._queue[0].verb)
        if spec is not None and spec.beside is Beside.AT_HEAD:
            return self._queue.pop(0)
        return None

    def _done(self, _: object) -> None:
        self._finished()
        self.kick()

    def _finished(self) -> None:
        self.busy = False
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_idle(self) -> defer.Deferred[None]:
        """Fires once the main command now running has finished."""
        if not self.busy:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def _update_reading(self) -> None:
        if len(self._queue) > MAX_QUEUED and self._reading:
            self._reading = False
            self._set_reading(False)
        elif not self._reading and len(self._queue) <= MAX_QUEUED // 2:
            self._reading = True
            self._set_reading(True)
