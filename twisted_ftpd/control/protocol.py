# -*- test-case-name: tests.test_control_lines,tests.test_control_flow -*-
"""The control connection: bytes in, commands run one at a time, replies out.

Lines are always read, even while a command is still running (a slow disk, a
pending data connection, a transfer): they wait in a bounded queue and run in
order. During a transfer, the commands the table marks ``during_transfer``
(NOOP, HELP...) are answered at once, so clients that poll the control channel
during a long transfer are not left hanging.
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, IReactorTCP, IReactorTime
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.channel import DataProtocol, set_nodelay
from twisted_ftpd.data.connect import PendingConnection
from twisted_ftpd.faults import Faults
from twisted_ftpd.listing.mlsx import FACTS
from twisted_ftpd.protocol import paths, replies
from twisted_ftpd.protocol.commands import COMMANDS
from twisted_ftpd.protocol.errors import (
    DataConnectionError,
    InvalidPath,
    ProtectionRequired,
    TransferAborted,
)
from twisted_ftpd.protocol.parser import MAX_LINE_LENGTH, Command, parse
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Session
from twisted_ftpd.protocol.values import Segments
from twisted_ftpd.tls import TLSCredentials, hang_up

from . import (
    cmd_data,
    cmd_files,
    cmd_info,
    cmd_login,
    cmd_security,
    cmd_site,
    cmd_transfer,
    dispatch,
)
from .tls_session import TLSSessionMixin

if TYPE_CHECKING:
    from twisted.cred.portal import Portal

# The handler modules register themselves with dispatch on import.
_HANDLER_MODULES = (cmd_data, cmd_files, cmd_info, cmd_login, cmd_security, cmd_site,
                    cmd_transfer)

log = Logger()

# More queued commands than this and we stop reading until the queue drains.
MAX_QUEUED = 64
# Seconds a closing connection may take to flush its last reply before it is cut.
CLOSE_GRACE = 10.0


@implementer(IHandshakeListener)
class FTPControlProtocol(TLSSessionMixin, LineReceiver, TimeoutMixin):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH

    def __init__(self, portal: Portal, config: ServerConfig, reactor: IReactorTCP,
                 clock: IReactorTime, tls: TLSCredentials | None = None,
                 implicit_tls: bool = False,
                 lookup_user: Callable[[str], defer.Deferred] | None = None) -> None:
        self.portal = portal
        self.tls = tls  # None: FTPS not configured
        self.tls_options = None  # this login's TLS context factory, once TLS has started
        self.secure = False  # the control connection's TLS handshake is done
        self._implicit_tls = implicit_tls
        self.lookup_user = lookup_user
        self.config = config
        self.reactor = reactor
        self.clock = clock
        self.callLater = clock.callLater  # TimeoutMixin's timer source
        self.session = Session(mlst_facts=FACTS)
        self.shell = None
        self.logout = None
        self.pending_data: PendingConnection | None = None
        self.transfer: DataProtocol | None = None
        self._queue: collections.deque[Command] = collections.deque()
        self._busy = False
        self._draining = False
        self._output_full = False
        self._awaiting_data = False
        self._discarding_long_line = False
        self._after_long_line = b""
        self._gone = False
        self._closing = False  # QUIT or too many failed logins: run nothing more
        self._claimed: PendingConnection | None = None  # taken by the running transfer
        self._idle_waiters: list[defer.Deferred[None]] = []
        self.on_lost: list = []
        self._timers: set = set()
        self._sleepers: dict[defer.Deferred[None], object] = {}  # sleep(): waiter → timer
        self._handshake_timer = None
        self._handshake_expired = False
        self.faults = Faults()

    # -- connection lifecycle -------------------------------------------------------

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        _urgent_data_inline(self.transport)
        self.transport.registerProducer(self, True)
        self.setTimeout(self.config.idle_timeout)
        if self._implicit_tls:
            self.start_tls()
            self.session.pbsz, self.session.prot = True, "P"
        self.reply(replies.SERVICE_READY(self.config.banner))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._gone = True
        self.tls_connection_lost(reason)
        self.setTimeout(None)
        self._queue.clear()
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        for waiter in list(self._sleepers):
            waiter.cancel()
        self.close_data()
        self.end_login()
        for callback in self.on_lost:
            callback(self)

    def timeoutConnection(self) -> None:
        self.close_after(replies.SERVICE_CLOSING("Idle timeout; closing control connection."))

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
        self._update_flow()
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
        """Start queued commands, in order, for as long as nothing holds them back.

        Iterative and non-reentrant: a command that completes at once does not
        start the next one from inside itself, so a long pipeline cannot exhaust
        the stack.
        """
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue and not self._gone and not self._closing:
                if self._output_full:
                    return  # the client is not reading its replies: wait for it
                if self._busy:
                    command = self._during_transfer_command()
                    if command is None:
                        return
                    dispatch.run(self, command).addCallback(self._send_result)
                    continue
                command = self._queue.popleft()
                self._update_flow()
                self._busy = True
                d = dispatch.run(self, command)
                d.addCallback(self._send_result)
                d.addBoth(self._command_done)
        finally:
            self._draining = False

    def _during_transfer_command(self) -> Command | None:
        """While a transfer streams, take the queued command that may run beside it:
        an ABOR anywhere in the queue, else NOOP/STAT/HELP at its head."""
        if self.transfer is None and not self._awaiting_data:
            return None
        for command in self._queue:
            if command.verb == "ABOR":
                self._queue.remove(command)
                return command
        spec = COMMANDS.get(self._queue[0].verb)
        if spec is not None and spec.during_transfer:
            return self._queue.popleft()
        return None

    def _send_result(self, result: Reply | None) -> None:
        if result is not None:
            self.reply(result)

    def _command_done(self, _: object) -> None:
        self._busy = False
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._run_next()

    def when_idle(self) -> defer.Deferred[None]:
        """Fires once the command now running (say, a transfer) has sent its reply."""
        if not self._busy:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    # -- flow control: IPushProducer, registered on our own transport -------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: the client is not reading its replies.

        Run no more commands until it drains; reading goes on (a TLS layer pauses
        us during its handshake, which needs reading), and the bounded command
        queue then stops it.
        """
        self._output_full = True

    def resumeProducing(self) -> None:
        self._output_full = False
        self._run_next()

    def stopProducing(self) -> None:
        self._output_full = True

    def _update_flow(self) -> None:
        """Read no more lines while too many commands wait."""
        hold = len(self._queue) > MAX_QUEUED
        if hold and not self.paused:
            LineReceiver.pauseProducing(self)
        elif not hold and self.paused and len(self._queue) <= MAX_QUEUED // 2:
            LineReceiver.resumeProducing(self)

    # -- services for handlers ------------------------------------------------------

    def reply(self, reply: Reply, immediate: bool = False) -> None:
        if self.faults.reply_delay and not immediate:
            self._later(self.faults.reply_delay, self._write, reply.render())
        else:
            self._write(reply.render())

    def _write(self, data: bytes) -> None:
        if not self._gone:
            self.transport.write(data)

    def _later(self, seconds: float, f: Callable[..., object], *args: object) -> None:
        """A timer that dies with the session."""
        if self._gone:
            return

        def fire() -> None:
            self._timers.discard(timer)
            f(*args)

        timer = self.clock.callLater(seconds, fire)
        self._timers.add(timer)

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
        if pending is not None and self.faults.take_refusal():
            pending.refuse()
        self.pending_data = pending

    def take_pending_data(self) -> PendingConnection:
        """The data connection for this transfer; each transfer needs a fresh setup."""
        pending, self.pending_data = self.pending_data, None
        if self.protection_required and self.session.prot != "P":
            if pending is not None:
                pending.close()
            raise ProtectionRequired()
        if pending is None:
            raise DataConnectionError("use PORT, EPRT, PASV or EPSV first.")
        if pending.failure is not None:
            raise pending.failure
        if (pending.tls is None) != (self.session.prot != "P"):
            pending.close()
            raise DataConnectionError("PROT changed since PASV/PORT; set up the connection again.")
        self._claimed = pending
        return pending

    async def open_data(self, pending: PendingConnection) -> DataProtocol:
        """Wait for the data connection and mark the session as transferring."""
        waiting = pending.connection()
        if not waiting.called:
            # The 150 is out: from now on ABOR, NOOP and STAT may run beside us.
            self._awaiting_data = True
            self._run_next()
        try:
            proto = await waiting
        except Exception:
            pending.close()
            raise
        finally:
            self._awaiting_data = False
        self.transfer = proto
        self.setTimeout(None)
        proto.watch(self.clock, self.config.stall_timeout)
        proto.drop_after(self.faults.take_drop_limit())
        self._run_next()  # let NOOP & co. through while the transfer runs
        return proto

    @property
    def in_transfer(self) -> bool:
        """True from the moment a transfer command takes its data connection."""
        return self._claimed is not None or self.transfer is not None

    def abort_transfer(self) -> None:
        """ABOR: break the running transfer off; its command then answers 426."""
        if self._claimed is not None:
            self._claimed.close(TransferAborted())
        if self.transfer is not None:
            self.transfer.close()

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
        """Wait on the session's clock.

        If the client leaves first, the wait fails with CancelledError, so the
        command waiting on it ends (and with it ``when_idle``) instead of hanging.
        """
        if self._gone:
            return defer.fail(defer.CancelledError())
        waiter: defer.Deferred[None] = defer.Deferred(
            lambda _: self._sleepers.pop(waiter).cancel())
        self._sleepers[waiter] = self.clock.callLater(seconds, self._wake, waiter)
        return waiter

    def _wake(self, waiter: defer.Deferred[None]) -> None:
        del self._sleepers[waiter]
        waiter.callback(None)

    def close_after(self, reply: Reply) -> None:
        self._closing = True
        self._queue.clear()
        self.reply(reply)
        if self.faults.reply_delay:
            self._later(self.faults.reply_delay, hang_up, self.transport)
        else:
            hang_up(self.transport)
        # A client that never reads would keep a closing connection forever.
        self._later(CLOSE_GRACE + self.faults.reply_delay, self.transport.abortConnection)


def _urgent_data_inline(transport: object) -> None:
    """Keep TCP urgent data in the stream: clients send ABOR's Telnet Synch (and
    ftplib the whole ABOR line) as urgent data, which the kernel would otherwise
    set aside, mangling the command (vsftpd does the same)."""
    handle = getattr(transport, "getHandle", lambda: None)()
    if isinstance(handle, socket.socket):
        try:
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        except OSError:
            pass
