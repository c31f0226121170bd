# -*- test-case-name: tests.test_control_output -*-
"""Replies out, with backpressure: a client that stops reading them stops its commands.

``ReplyOutput`` is the push producer registered on the control transport. Twisted
pauses it when the transport's buffer is full, that is when the client is not
reading; the scheduler then starts no more commands until it resumes. (This is
"our output is full", unrelated to pausing the *reading* of the client's lines.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.tls import hang_up

from .timers import SessionTimers

# Seconds a closing connection may take to flush its last reply before it is cut.
CLOSE_GRACE = 10.0


@implementer(IPushProducer)
class ReplyOutput:
    def __init__(self, transport: Any, on_full: Callable[[], None],
                 on_drained: Callable[[], None]) -> None:
        self.transport = transport
        self._on_full = on_full
        self._on_drained = on_drained
        self.full = False
        self.closed = False

    def send(self, reply: Reply, immediate: bool = False) -> None:
        """Write a reply. ``immediate``: it must leave before anything else happens
        (234 before the TLS handshake); a delaying subclass honours it."""
        self.write(reply.render())

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def then(self, f: Callable[..., object], *args: object) -> None:
        """Call ``f`` once the replies sent so far are written (now, here)."""
        f(*args)

    def hang_up(self, timers: SessionTimers) -> None:
        """Close the connection once the replies sent so far are written."""
        self.then(hang_up, self.transport)
        # A client that never reads would keep a closing connection for ever.
        timers.later(CLOSE_GRACE + self.delay, self.transport.abortConnection)

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
