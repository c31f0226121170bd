# -*- test-case-name: tests.test_data_ports -*-
"""The one-shot TCP listener behind each PASV/EPSV.

Twisted's ``tcp.Port`` is built to serve many connections for a long time: it
reserves a descriptor against EMFILE, accepts in growing batches under a log
buffer, logs "<Factory> starting on N" and "(TCP Port N Closed)", and closes on
the next reactor turn through a Deferred. A passive port lives for one transfer
and takes one connection, and that machinery was a fifth of a small download's
CPU. ``OneShotPort`` makes, binds and registers its socket itself, accepts one
connection per readable event (the factory refuses all but the first), and
closes at once. The connections it accepts are Twisted's own ``tcp.Server``
transports, exactly as ``tcp.Port`` would make them.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import error, tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorFDSet,
    IReactorTCP,
    IReadDescriptor,
)
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

# accept() errors that say the connection is gone, not that the port is broken.
_GONE = frozenset({errno.ECONNABORTED, errno.EPERM, errno.EPROTO})


@implementer(IListeningPort, IReadDescriptor)
class OneShotPort:
    """Listens from construction until ``stopListening``; see the module.

    ``factory.buildProtocol`` returns None for connections it refuses (they are
    closed). An accept that fails for want of descriptors or memory calls
    ``factory.accept_failed`` after the port has stopped: with level-triggered
    epoll, a connection left in the backlog would wake the reactor for ever.
    """

    transport = tcp.Server

    def __init__(self, reactor: IReactorFDSet, port: int, factory: Any, backlog: int,
                 interface: str) -> None:
        self.reactor = reactor
        self.factory = factory
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self._address = IPv6Address if family == socket.AF_INET6 else IPv4Address
        skt = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            # As tcp.Port: the port may be bound again while connections it
            # accepted linger in TIME_WAIT, as every data connection we close does.
            skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                address: Any = tcp._resolveIPv6(interface, port)
            else:
                address = (interface, port)
            skt.bind(address)
            skt.listen(backlog)
            self._host = skt.getsockname()
        except OSError as e:
            skt.close()
            raise error.CannotListenError(interface, port, e) from None
        self.socket = skt
        self._fileno = skt.fileno()
        self._realPortNumber = self._host[1]  # noqa: N815 - tcp.Server reads it
        self._accepted = 0
        self.connected = True
        reactor.addReader(self)

    # IListeningPort

    def startListening(self) -> None:  # noqa: N802 - Twisted's name
        """Nothing to do: the port listens from its construction."""

    def stopListening(self) -> Deferred[None]:  # noqa: N802
        """Close now (the Deferred has fired)."""
        if self.connected:
            self.connected = False
            self.reactor.removeReader(self)
            self.socket.close()
        return succeed(None)

    def getHost(self) -> IPv4Address | IPv6Address:  # noqa: N802
        return self._address("TCP", self._host[0], self._host[1])

    # IReadDescriptor, for the reactor

    def fileno(self) -> int:
        return self._fileno if self.connected else -1

    def logPrefix(self) -> str:  # noqa: N802
        return "OneShotPort"

    def doRead(self) -> None:  # noqa: N802
        try:
            skt, addr = self.socket.accept()
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno in _GONE:
                return
            self.stopListening()
            self.factory.accept_failed(e)
            return
        if len(addr) == 4:  # IPv6: the host with its scope, as tcp.Port gives it
            host = socket.getnameinfo(addr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)[0]
            addr = (host, *addr[1:])
        protocol = self.factory.buildProtocol(self._address("TCP", addr[0], addr[1]))
        if protocol is None:
            skt.close()
            return
        self._accepted += 1
        protocol.makeConnection(
            self.transport(skt, protocol, addr, self, self._accepted, self.reactor))

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        """The reactor is dropping its descriptors (it is stopping)."""
        self.stopListening()


def listen_passive(reactor: IReactorTCP, port: int, factory: Factory, backlog: int,
                   interface: str) -> IListeningPort:
    """A data port: a ``OneShotPort`` on Twisted's own POSIX reactors (asyncio's
    too); on any other (a test's MemoryReactor, say) its own ``listenTCP``."""
    if isinstance(reactor, PosixReactorBase):
        return OneShotPort(reactor, port, factory, backlog, interface)
    return reactor.listenTCP(port, factory, backlog=backlog, interface=interface)
