# -*- test-case-name: tests.test_control_lines,tests.test_control_flow -*-
"""The control connection: bytes in, lines to commands, replies out.

A line becomes a ``Command`` (``protocol.parser``) and joins the
``CommandScheduler``, which decides what may run now; ``dispatch`` gates it by the
command table and runs its handler, which sees only a ``CommandContext``. The
transfer's state lives in the ``DataSlot``, FTPS in ``ControlTLS``, replies and
their backpressure in ``ReplyOutput``, and every timer in ``SessionTimers``, so
that all of them end together when the connection does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, IReactorTCP, IReactorTime
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.channel import set_nodelay
from twisted_ftpd.data.throttle import SessionRates
from twisted_ftpd.events import EventLog, new_session_id
from twisted_ftpd.listing.mlsx import FACTS
from twisted_ftpd.protocol import paths, replies
from twisted_ftpd.protocol.errors import InvalidPath
from twisted_ftpd.protocol.parser import Command
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Session
from twisted_ftpd.protocol.values import Segments
from twisted_ftpd.quota import QuotaRegistry
from twisted_ftpd.tls import TLSCredentials, hang_up

# The handler modules register themselves with dispatch on import.
from . import (  # noqa: F401
    cmd_data,
    cmd_files,
    cmd_info,
    cmd_login,
    cmd_security,
    cmd_site,
    cmd_transfer,
    dispatch,
)
from .data_slot import DataSlot
from .limits import ConnectionLimits
from .lines import CommandLineReceiver, urgent_data_inline
from .output import ReplyOutput
from .scheduler import CommandScheduler
from .session_log import emit as emit_event
from .timers import SessionTimers
from .tls_session import ControlTLS

if TYPE_CHECKING:
    from twisted.cred.portal import Portal

    from twisted_ftpd.hooks import UploadHooks

# Seconds a closing connection may take to flush its last reply before it is cut.
CLOSE_GRACE = 10.0


@implementer(IHandshakeListener)
class FTPControlProtocol(CommandLineReceiver, TimeoutMixin):
    def __init__(self, portal: Portal, config: ServerConfig, reactor: IReactorTCP,
                 clock: IReactorTime, tls: TLSCredentials | None = None,
                 implicit_tls: bool = False,
                 lookup_user: Callable[[str], defer.Deferred] | None = None,
                 limits: ConnectionLimits | None = None) -> None:
        self.portal, self.config, self.reactor, self.clock = portal, config, reactor, clock
        self.lookup_user = lookup_user
        self.callLater = clock.callLater  # TimeoutMixin's timer source
        self.session = Session(mlst_facts=FACTS)
        self.shell: Any = None
        self.logout: Callable[[], None] | None = None
        self.gone = False
        self.timers = SessionTimers(clock)
        self.tls = ControlTLS(tls, config, self.timers)
        self._implicit_tls = implicit_tls
        self.data = DataSlot(clock, config.stall_timeout, self._data_changed)
        self.rates: SessionRates | None = None  # set at login
        self.data.on_connected.append(lambda proto: self.rates and self.rates.apply(proto))
        self._idle_suspended = False
        self.scheduler = CommandScheduler(self._execute, self.set_reading,
                                          lambda: self.data.transfer_running)
        self.output: ReplyOutput | None = None  # made on connection
        self.output_factory: Callable[..., ReplyOutput] = ReplyOutput  # faults replace it
        self.on_lost: list[Callable[[FTPControlProtocol], None]] = []
        # The server's limits and bans (the factory's); on its own, a protocol has its own.
        self.limits = limits if limits is not None else ConnectionLimits.from_config(config, clock)
        self.session_id = new_session_id()
        self.events = EventLog()  # the factory gives it its server's
        self.upload_hooks: UploadHooks | None = None  # the factory gives its server's...
        self.quotas = QuotaRegistry(clock)  # ...and these, shared by all its sessions

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        urgent_data_inline(self.transport)
        self.output = self.output_factory(self.transport, self.scheduler.hold,
                                          self.scheduler.release)
        self.transport.registerProducer(self.output, True)
        self.setTimeout(self.config.idle_timeout)
        emit_event(self, "connect")
        if self._implicit_tls:
            self.start_tls()
            self.session.pbsz, self.session.prot = True, "P"
        self.start_session()

    def start_session(self) -> None:
        """Greet the client, or refuse it with 421 (limits, bans) before it can send a
        thing. Needs the client's real address: behind a PROXY-protocol front end,
        call it once the header has been read, not at connectionMade."""
        # At once, or once the shared state (--shared-state) has answered.
        defer.maybeDeferred(self.limits.admit, self).addCallback(self._greet)

    def _greet(self, refusal: Reply | None) -> None:
        if self.gone:
            return
        if refusal is not None:
            self.close_after(refusal)
            return
        self.reply(replies.SERVICE_READY(self.config.banner))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.gone = True
        self.tls.connection_lost(reason, self.peer_host)
        self.setTimeout(None)
        self.scheduler.stop()
        self.timers.cancel_all()
        self.data.close()
        self.end_login()
        for callback in self.on_lost:
            callback(self)

    def timeoutConnection(self) -> None:
        self.close_after(replies.SERVICE_CLOSING("Idle timeout; closing control connection."))

    def handshakeCompleted(self) -> None:
        self.tls.handshake_completed()

    def command_received(self, command: Command) -> None:
        self.resetTimeout()
        self.scheduler.push(command)

    def line_too_long(self) -> None:
        self.reply(replies.LINE_TOO_LONG)

    def _execute(self, command: Command) -> defer.Deferred[None]:
        return dispatch.run(self, command).addCallback(self._send_result)

    def _send_result(self, result: Reply | None) -> None:
        if result is not None:
            self.reply(result)

    def _data_changed(self) -> None:
        """The idle timer sleeps while bytes move; beside-commands may now run."""
        if self.data.transfer is not None:
            self._idle_suspended = True
            self.setTimeout(None)
        elif self._idle_suspended and not self.gone:
            self._idle_suspended = False
            self.setTimeout(self.config.idle_timeout)
        self.scheduler.kick()

    # -- the CommandContext -------------------------------------------------------

    def reply(self, reply: Reply, immediate: bool = False) -> None:
        if not self.gone and self.output is not None:
            self.output.send(reply, immediate)

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
        # Names that are not UTF-8 may reach existing files but never create new ones.
        if creating and not Command("", arg).arg_is_clean:
            raise InvalidPath(arg)
        return paths.resolve(self.session.cwd, arg)

    def start_tls(self) -> None:
        # Anything sent in clear after AUTH is dropped unread: nothing is smuggled in.
        self.scheduler.discard()
        self.discard_input()
        self.tls.start(self.transport, self.peer_host)

    def take_data(self) -> Any:
        return self.data.take(self.session.prot == "P",
                              self.tls.protection_required(self.session))

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        return self.timers.sleep(seconds)

    def when_idle(self) -> defer.Deferred[None]:
        return self.scheduler.when_idle()

    def end_login(self) -> None:
        logout, self.logout, self.shell, self.rates = self.logout, None, None, None
        if logout is not None:
            logout()
            emit_event(self, "logout")

    def close_after(self, reply: Reply) -> None:
        self.scheduler.stop()
        self.reply(reply)
        assert self.output is not None
        self.output.then(hang_up, self.transport)
        # A client that never reads would keep a closing connection for ever.
        self.timers.later(CLOSE_GRACE + self.output.delay, self.transport.abortConnection)

