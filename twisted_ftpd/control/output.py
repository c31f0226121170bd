# -*- test-case-name: tests.test_control_output -*-
"""Replies out, with backpressure: a client that stops reading them stops its commands.

``ReplyOutput`` is the push producer registered on the control transport. Twisted
pauses it when the transport's buffer is full, that is when the client is not
reading; the scheduler then starts no more commands until it resumes. (This is
"our output is full", unrelated to pausing the *reading* of the client's lines.)

A reply goes onto the socket at once when nothing waits ahead of it. Twisted's
TCP transport queues every write for the next reactor turn, which costs each
reply two ``epoll_ctl`` calls and a turn of the loop (a fifth of the system
calls of a small download); C servers write the reply and move on, and so do we.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from zope.interface import implementer

from twisted_ftpd.data.channel import close_now
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.proxy_protocol import ProxyHeaderReceiver
from twisted_ftpd.tls import hang_up

from .timers import SessionTimers

# Seconds a closing connection may take to flush its last reply before it is cut.
CLOSE_GRACE = 10.0


def _plain_tcp(transport: Any) -> tcp.Connection | None:
    """The plain TCP connection (``tcp.Connection``) below ``transport``, whose buffer is
    empty now: the transport itself, or the one a PROXY-protocol header reader stands
    on (it passes writes down unchanged); None under TLS or anything else."""
    if isinstance(transport, ProxyHeaderReceiver):
        transport = transport.transport
    if isinstance(transport, tcp.Connection) and not ISSLTransport.providedBy(transport):
        return transport
    return None


@implementer(IPushProducer)
class ReplyOutput:
    def __init__(self, transport: Any, on_full: Callable[[], None],
                 on_drained: Callable[[], None]) -> None:
        self.transport = transport
        self._on_full = on_full
        self._on_drained = on_drained
        self.full = False
        self.closed = False
        # The TCP connection replies go to directly, until a write leaves bytes in
        # Twisted's buffer: from then on every reply queues behind them there, in order.
        self._socket = _plain_tcp(transport)

    def send(self, reply: Reply, immediate: bool = False) -> None:
        """Write a reply. ``immediate``: it must leave before anything else happens
        (234 before the TLS handshake); a delaying subclass honours it."""
        self.write(reply.render())

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        direct = self._socket
        if direct is not None and direct.connected and not direct.disconnecting and (
                not ISSLTransport.providedBy(direct)):
            sent = direct.writeSomeData(data)
            if isinstance(sent, int):
                data = data[sent:]
                if not data:
                    return
            self._socket = None  # the socket is full or failing: Twisted takes over
        self.transport.write(data)

    def then(self, f: Callable[..., object], *args: object) -> None:
        """Call ``f`` once the replies sent so far are written (now, here)."""
        f(*args)

    def hang_up(self, timers: SessionTimers) -> None:
        """Close the connection once the replies sent so far are written."""
        self.then(self._close)
        # A client that never reads would keep a closing connection for ever (none
        # is set when the connection has already closed).
        timers.later(CLOSE_GRACE + self.delay, self._abort)

    def _close(self) -> None:
        """Close now when every reply went straight to the socket (nothing waits in
        Twisted's buffer: ``close_now``), else flush first."""
        if self._socket is None or not close_now(self._socket):
            hang_up(self.transport)

    def _abort(self) -> None:
        self.closed = True  # nothing more for this client, not even straight to the socket
        self.transport.abortConnection()

    @property
    def delay(self) -> float:
        """How long ``then`` may wait (0 here)."""
        return 0.0

    # IPushProducer: Twisted calls these when the transport's buffer fills and drains.
    def pauseProducing(self) -> None:
        self.full = True
        self._on_full()

    def resumeProducing(self) -> None:
        self.full = False
        self._on_drained()

    def stopProducing(self) -> None:
        # The transport takes no more replies: as full as it gets, for good.
        self.pauseProducing()
