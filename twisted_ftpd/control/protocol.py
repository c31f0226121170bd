# -*- test-case-name: tests.test_control_lines,tests.test_control_flow -*-
"""The control connection: bytes in, lines to commands, replies out.

A line becomes a ``Command`` (``protocol.parser``) and joins the
``CommandScheduler``, which decides what may run now; ``dispatch`` gates it by the
command table and runs its handler, which sees only a ``CommandContext``. The
transfer's state lives in the ``DataSlot``, FTPS in ``ControlTLS``, replies and
their backpressure in ``ReplyOutput``, every timer in ``SessionTimers`` (the idle
timeout in ``IdleTimeout``), so that all of them end together when the
connection does; what the server's sessions share is one ``ServerServices``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.data.channel import set_nodelay
from twisted_ftpd.events import new_session_id
from twisted_ftpd.listing.mlsx import FACTS
from twisted_ftpd.protocol import paths, replies
from twisted_ftpd.protocol.errors import InvalidPath
from twisted_ftpd.protocol.parser import Command
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Session
from twisted_ftpd.protocol.values import Segments

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
from .lines import CommandLineReceiver, urgent_data_inline
from .output import ReplyOutput
from .scheduler import CommandScheduler
from .services import ServerServices
from .session_log import emit as emit_event
from .timers import IdleTimeout, SessionTimers
from .tls_session import ControlTLS


@implementer(IHandshakeListener)
class FTPControlProtocol(CommandLineReceiver):
    def __init__(self, server: ServerServices, implicit_tls: bool = False) -> None:
        self.server, self.config, self.clock = server, server.config, server.clock
        self.session = Session(mlst_facts=FACTS)
        self.session_id = new_session_id()
        self.shell: Any = None
        self.logout: Callable[[], None] | None = None
        self.gone = False
        self.timers = SessionTimers(self.clock)
        self.idle = IdleTimeout(self.clock, self.config.idle_timeout, self.timeoutConnection)
        self.tls = ControlTLS(server.tls, self.config, self.timers)
        self._implicit_tls = implicit_tls
        self.data = DataSlot(self.clock, self.config.stall_timeout, self._data_changed)
        self.scheduler = CommandScheduler(self._execute, self.set_reading,
                                          lambda: self.data.transfer_running)
        self.output: ReplyOutput | None = None  # made on connection
        self.output_factory: Callable[..., ReplyOutput] = ReplyOutput  # faults replace it
        self.on_lost: list[Callable[[FTPControlProtocol], None]] = []
        self._local_host: str | None = None
        self._peer_host: str | None = None

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        urgent_data_inline(self.transport)
        self.output = self.output_factory(self.transport, self.scheduler.hold,
                                          self.scheduler.release)
        self.transport.registerProducer(self.output, True)
        self.idle.start()
        emit_event(self, "connect")
        if self._implicit_tls:
            self.start_tls()
            self.session.pbsz, self.session.prot = True, "P"
        self.start_session()

    def start_session(self) -> None:
        """Greet the client, or refuse it with 421 (limits, bans) before it can send a
        thing. Needs the client's real address: behind a PROXY-protocol front end the
        whole connection starts only once the header has named the client
        (``proxy_protocol.ProxyHeaderReceiver``), so connectionMade is already late enough."""
        # At once, or once the shared state (--shared-state) has answered.
        defer.maybeDeferred(self.server.limits.admit, self).addCallback(self._greet)

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
        self.idle.stop()
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
        self.idle.activity()
        self.scheduler.push(command)

    def line_too_long(self) -> None:
        self.reply(replies.LINE_TOO_LONG)

    def _execute(self, command: Command) -> defer.Deferred[None] | None:
        result = dispatch.run(self, command)
        if isinstance(result, defer.Deferred):
            return result.addCallback(self._final_reply)
        self._final_reply(result)
        return None

    def _final_reply(self, reply: Reply | None) -> None:
        if reply is not None:
            self.reply(reply)

    def _data_changed(self) -> None:
        """A transfer started or ended: beside-commands may now run, or not."""
        self.idle.transfer(self.data.transfer is not None)
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
        # Asked by most commands and every event (Twisted builds a new address object
        # each time); the peer never changes, and behind a PROXY-protocol front end
        # the connection is made only once the header has named it.
        if self._peer_host is None:
            self._peer_host = self.transport.getPeer().host
        return self._peer_host

    @property
    def local_host(self) -> str:
        # Asked for every PASV/EPSV, and Twisted's getHost() makes a getsockname call
        # each time; the connection's own address never changes.
        if self._local_host is None:
            self._local_host = self.transport.getHost().host
        return self._local_host

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

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        return self.timers.sleep(seconds)

    def wait(self, waiting: defer.Deferred[Any]) -> defer.Deferred[Any]:
        return self.timers.bound(waiting)

    def when_idle(self) -> defer.Deferred[None]:
        return self.scheduler.when_idle()

    def end_login(self) -> None:
        logout, self.logout, self.shell, self.data.rates = self.logout, None, None, None
        if logout is not None:
            logout()
            emit_event(self, "logout")

    def close_after(self, reply: Reply) -> None:
        self.scheduler.stop()
        self.reply(reply)
        assert self.output is not None
        self.output.hang_up(self.timers)

