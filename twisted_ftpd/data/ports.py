# -*- test-case-name: tests.test_data_ports -*-
"""The one-shot TCP listener behind each PASV/EPSV, without Twisted's two log lines.

Twisted's ``tcp.Port`` logs "<Factory> starting on N" when it starts and
"(TCP Port N Closed)" when it stops, unconditionally (``Factory.noisy`` only
silences the factory's own lines). For a control port that is worth a line; for
a data port opened per transfer it is two lines that say nothing to an
administrator, and formatting and then filtering them out (``logs.QuietPorts``)
cost more than a small download's own work. ``QuietPort`` is ``tcp.Port`` with
both lines left out; everything else (accepting, closing, the descriptor
reserved against EMFILE) is Twisted's.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import error, tcp
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import Factory

from twisted_ftpd.logs import listen_quietly


class QuietPort(tcp.Port):
    """``tcp.Port`` that logs neither its start nor its close."""

    def startListening(self) -> None:  # noqa: N802 - Twisted's name
        # tcp.Port.startListening for a new socket, minus its log.msg.
        tcp._reservedFD.reserve()
        skt = None
        try:
            skt = self.createInternetSocket()
            if self.addressFamily == socket.AF_INET6:
                address: Any = tcp._resolveIPv6(self.interface, self.port)
            else:
                address = (self.interface, self.port)
            skt.bind(address)
        except OSError as e:
            if skt is not None:
                skt.close()
            raise error.CannotListenError(self.interface, self.port, e) from None
        skt.listen(self.backlog)
        self._realPortNumber = skt.getsockname()[1]
        self.factory.doStart()
        self.connected = True
        self.socket = skt
        self.fileno = skt.fileno  # type: ignore[method-assign]
        self.numberAccepts = 100
        self.startReading()

    def _logConnectionLostMsg(self) -> None:  # noqa: N802 - Twisted's name
        """Nothing: this port's close is not worth a line (see the module)."""


def listen_passive(reactor: IReactorTCP, port: int, factory: Factory, backlog: int,
                   interface: str) -> IListeningPort:
    """``reactor.listenTCP`` for a data port: a ``QuietPort`` on Twisted's own POSIX
    reactors; on any other (a test's MemoryReactor, say) its own ``listenTCP``, whose
    lines ``logs.QuietPorts`` still leaves out."""
    if isinstance(reactor, PosixReactorBase):
        quiet = QuietPort(port, factory, backlog, interface, reactor)
        quiet.startListening()
        return quiet
    return listen_quietly(reactor.listenTCP, port, factory, backlog=backlog,
                          interface=interface)
