# -*- test-case-name: tests.test_data_ports -*-
"""The one-shot TCP listener behind each PASV/EPSV.

Twisted's ``tcp.Port`` is built to serve many connections for a long time: it
reserves a descriptor against EMFILE, accepts in growing batches under a log
buffer, logs "<Factory> starting on N" and "(TCP Port N Closed)", and closes on
the next reactor turn through a Deferred. A passive port lives for one transfer
and takes one connection, and that machinery was a tenth of a small download's
CPU. ``OneShotPort`` makes, binds and registers its socket itself, accepts one
connection per readable event, and closes at once. The connections it accepts are
Twisted's own ``tcp.Server`` transports, exactly as ``tcp.Port`` would make them.
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
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

# accept() errors that say the connection is gone, not that the port is broken.
_GONE = frozenset({errno.ECONNABORTED, errno.EPERM, errno.EPROTO})


@implementer(IListeningPort, IReadDescriptor)
class OneShotPort:
    """Listens from construction until ``stopListening``; see the module.

    ``factory.buildProtocol`` returns None for connections it refuses (they are
    closed); the owner stops the port once it has its connection. An accept that
    fails for want of descriptors or memory, or a connection that cannot be set
    up, stops the port and calls ``factory.accept_failed``: with level-triggered
    epoll, a connection left in the backlog would wake the reactor for ever. The
    factory's ``doStart``/``doStop`` are not called (``tcp.Port`` calls them for
    factories shared by many ports).
    """

    transport = tcp.Server

    def __init__(self, reactor: IReactorFDSet, port: int, factory: Any, backlog: int,
                 interface: str) -> None:
        self.reactor = reactor
        self.factory = factory
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self._address = IPv6Address if family == socket.AF_INET6 else IPv4Address
        skt = None
        try:
            skt = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            # As tcp.Port: the port may be bound again while connections it
            # accepted linger in TIME_WAIT, as every data connection we close does.
            skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                address: Any = tcp._resolveIPv6(interface, port)
            else:
                address = (interface, port)
            skt.bind(address)
            skt.listen(backlog)
            self._host = self._numeric(skt.getsockname())
        except OSError as e:
            if skt is not None:
                skt.close()
            raise error.CannotListenError(interface, port, e) from None
        self.socket = skt
        self._fileno = skt.fileno()
        self._realPortNumber = self._host[1]  # noqa: N815 - tcp.Server reads it
        self._accepted = 0
        self.connected = True
        reactor.addReader(self)

    @staticmethod
    def _numeric(address: tuple[Any, ...]) -> tuple[Any, ...]:
        """An address from the socket, an IPv6 one with its scope in the host, as
        tcp.Port gives it."""
        if len(address) == 4:
            host = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)[0]
            return (host, *address[1:])
        return address

    # IListeningPort

    def startListening(self) -> None:  # noqa: N802 - Twisted's name
        """Nothing to do: the port listens from its construction."""

    def stopListening(self) -> Deferred[None]:  # noqa: N802
        """Close now (the Deferred has fired)."""
        if self.connected:
            # While connected, fileno() still names the socket: the reactor finds it
            # at once instead of searching all its descriptors for this object.
            self.reactor.removeReader(self)
            self.connected = False
            self.socket.close()
        return succeed(None)

    def getHost(self) -> IPv4Address | IPv6Address:  # noqa: N802
        return self._address("TCP", *self._host)

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
            if e.errno not in _GONE:
                self._give_up(e)
            return
        addr = self._numeric(addr)
        try:
            protocol = self.factory.buildProtocol(self._address("TCP", *addr))
            if protocol is None:
                skt.close()
                return
            self._accepted += 1
            transport = self.transport(skt, protocol, addr, self, self._accepted, self.reactor)
        except Exception as e:  # a bug: the set-up fails (425) rather than wait its timeout
            skt.close()
            log.failure("Setting up a passive data connection failed")
            self._give_up(e)
            return
        try:
            protocol.makeConnection(transport)
        except Exception:
            # As tcp.Port does: the connection is up, its protocol's error is logged.
            log.failure("connectionMade of a passive data connection failed")

    def _give_up(self, reason: Exception) -> None:
        self.stopListening()
        self.factory.accept_failed(reason)

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
