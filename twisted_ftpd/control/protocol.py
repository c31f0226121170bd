# -*- test-case-name: tests.test_control_protocol -*-
"""The control connection: bytes in, commands run one at a time, replies out.

Lines are always read, even while a command is still running (a slow disk, a
pending data connection, a transfer): they wait in a bounded queue and run in
order. During a transfer, the commands the table marks ``during_transfer``
(NOOP, HELP...) are answered at once, so clients that poll the control channel
during a long transfer are not left hanging.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.channel import DataProtocol, set_nodelay
from twisted_ftpd.data.connect import PendingConnection
from twisted_ftpd.errors import DataConnectionError, InvalidPath
from twisted_ftpd.interfaces import Segments
from twisted_ftpd.protocol import paths, replies
from twisted_ftpd.protocol.commands import COMMANDS
from twisted_ftpd.protocol.parser import MAX_LINE_LENGTH, Command, parse
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Session

from . import cmd_data, cmd_files, cmd_info, cmd_login, cmd_transfer, dispatch

if TYPE_CHECKING:
    from twisted.cred.portal import Portal

# The handler modules register themselves with dispatch on import.
_HANDLER_MODULES = (cmd_data, cmd_files, cmd_info, cmd_login, cmd_transfer)

log = Logger()

# More queued commands than this and we stop reading until the queue drains.
MAX_QUEUED = 64


class FTPControlProtocol(LineReceiver, TimeoutMixin):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH

    def __init__(self, portal: Portal, config: ServerConfig, reactor: IReactorTCP,
                 clock: IReactorTime) -> None:
        self.portal = portal
        self.config = config
        self.reactor = reactor
        self.clock = clock
        self.callLater = clock.callLater  # TimeoutMixin's timer source
        self.session = Session()
        self.shell = None
        self.logout = None
        self.pending_data: PendingConnection | None = None
        self.transfer: DataProtocol | None = None
        self._queue: collections.deque[Command] = collections.deque()
        self._busy = False
        self._reading_paused = False
        self._discarding_long_line = False
        self._after_long_line = b""
        self._gone = False
        self._closing = False  # QUIT or too many failed logins: run nothing more
        self._claimed: PendingConnection | None = None  # taken by the running transfer
        self.on_lost: list = []
        self._timers: set = set()

    # -- connection lifecycle -------------------------------------------------------

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        self.setTimeout(self.config.idle_timeout)
        self.reply(replies.SERVICE_READY(self.config.banner))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._gone = True
        self.setTimeout(None)
        self._queue.clear()
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        self.close_data()
        self.end_login()
        for callback in self.on_lost:
            callback(self)

    def timeoutConnection(self) -> None:
        self.reply(replies.SERVICE_CLOSING("Idle timeout; closing control connection."))
        self.transport.loseConnection()

    # -- input ------------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self._discarding_long_line:
            # The tail of a line that was already refused as too long.
            self._discarding_long_line = False
            return
        self.resetTimeout()
        # A blank line is answered like any unknown command (500), in order.
        command = parse(line) or Command("", "")
        self._queue.append(command)
        if len(self._queue) > MAX_QUEUED and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()
        self._run_next()

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        # LineReceiver stops at an over-long line; carry on with what followed it.
        while self._after_long_line and not self._gone:
            rest, self._after_long_line = self._after_long_line, b""
            super().dataReceived(rest)

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self._discarding_long_line:
            self.reply(replies.LINE_TOO_LONG)
        _, newline, rest = line.partition(self.delimiter)
        self._discarding_long_line = not newline
        self._after_long_line = rest

    # -- running commands -----------------------------------------------------------

    def _run_next(self) -> None:
        while self._queue and not self._gone and not self._closing:
            command = self._queue[0]
            if self._busy:
                spec = COMMANDS.get(command.verb)
                if not (self.transfer is not None and spec is not None
                        and spec.during_transfer):
                    return
                self._queue.popleft()
                dispatch.run(self, command).addCallback(self._send_result)
                continue
            self._queue.popleft()
            self._resume_reading()
            self._busy = True
            d = dispatch.run(self, command)
            d.addCallback(self._send_result)
            d.addBoth(self._command_done)

    def _send_result(self, result: Reply | None) -> None:
        if result is not None:
            self.reply(result)

    def _command_done(self, _: object) -> None:
        self._busy = False
        self._run_next()

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._queue) <= MAX_QUEUED // 2:
            self._reading_paused = False
            self.transport.resumeProducing()

    # -- services for handlers ------------------------------------------------------

    def reply(self, reply: Reply) -> None:
        if not self._gone:
            self.transport.write(reply.render())

    @property
    def permissions(self) -> str:
        return getattr(self.shell, "permissions", "") if self.shell is not None else ""

    @property
    def peer_host(self) -> str:
        return self.transport.getPeer().host

    @property
    def local_host(self) -> str:
        return self.transport.getHost().host

    def resolve(self, arg: str, creating: bool = False) -> Segments:
        """The path ``arg`` names from the current directory.

        Names that are not UTF-8 may still be used to reach files that already
        have such names, but never to create new ones.
        """
        if creating and not Command("", arg).arg_is_clean:
            raise InvalidPath(arg)
        return paths.resolve(self.session.cwd, arg)

    def set_pending_data(self, pending: PendingConnection | None) -> None:
        """Replace the data connection set up by PORT/PASV; the old one is dropped."""
        if self.pending_data is not None:
            self.pending_data.close()
        self.pending_data = pending

    def take_pending_data(self) -> PendingConnection:
        """The data connection for this transfer; each transfer needs a fresh setup."""
        pending, self.pending_data = self.pending_data, None
        if pending is None:
            raise DataConnectionError("use PORT, EPRT, PASV or EPSV first.")
        self._claimed = pending
        return pending

    async def open_data(self, pending: PendingConnection) -> DataProtocol:
        """Wait for the data connection and mark the session as transferring."""
        try:
            proto = await pending.connection()
        except Exception:
            pending.close()
            raise
        self.transfer = proto
        self.setTimeout(None)
        proto.watch(self.clock, self.config.stall_timeout)
        self._run_next()  # let NOOP & co. through while the transfer runs
        return proto

    def end_transfer(self) -> None:
        claimed, self._claimed = self._claimed, None
        if claimed is not None:
            claimed.close()
        if self.transfer is not None:
            self.transfer.close()
            self.transfer = None
            if not self._gone:
                self.setTimeout(self.config.idle_timeout)

    def close_data(self) -> None:
        self.set_pending_data(None)
        self.end_transfer()

    def end_login(self) -> None:
        """Log the avatar out (REIN, QUIT, disconnect)."""
        logout, self.logout, self.shell = self.logout, None, None
        if logout is not None:
            logout()

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        """Wait on the session's clock; the wait is cancelled if the client leaves."""
        waiter: defer.Deferred[None] = defer.Deferred()

        def fire() -> None:
            self._timers.discard(timer)
            waiter.callback(None)

        timer = self.clock.callLater(seconds, fire)
        self._timers.add(timer)
        return waiter

    def close_after(self, reply: Reply) -> None:
        self._closing = True
        self._queue.clear()
        self.reply(reply)
        self.transport.loseConnection()

