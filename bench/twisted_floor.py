"""The least a login or a small download costs on Twisted: the benchmark's "Twisted floor".

Twisted's default reactor and TCP transport with a ``LineReceiver`` that answers
with fixed replies: no parsing beyond the verb, no authentication, sessions,
limits, timers, paths or logs. It writes and closes the way twisted-ftpd does
(each reply straight to the socket, and the close at once when nothing waits in
Twisted's buffer) rather than through ``transport.write`` and ``loseConnection``,
which each cost a turn of the loop and two ``epoll_ctl`` calls. Whatever an FTP
server built on Twisted does, it pays at least this, so the benchmark's rows show
how much of twisted-ftpd's cost is its own and how much is the framework's.

It serves USER, PASS, QUIT and TYPE for the login workloads, and EPSV and RETR for
the small-file one. A download does what twisted-ftpd's does at the least, under
the rules twisted-ftpd keeps: EPSV opens a one-shot listener (twisted-ftpd's own
``OneShotPort``, thinner than ``listenTCP``); RETR opens the file in a thread (disk
calls never run on the reactor: one hop there and back), replies 150, sends the
file by ``sendfile`` on the accepted connection, closes it at once and replies
226. There is no REST, ABOR, timeout, TLS or check of who connected.

    python3 bench/twisted_floor.py PORT [ROOT [LOW-HIGH]]   (the passive ports)
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

from twisted.internet import error, protocol, reactor, threads
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from twisted_ftpd.data.ports import OneShotPort

REPLIES = {b"USER": b"331 Password required.\r\n", b"PASS": b"230 Logged in.\r\n",
           b"QUIT": b"221 Goodbye.\r\n", b"TYPE": b"200 Type set.\r\n"}


def close_now(transport: Any) -> None:
    """As twisted-ftpd closes a plain connection whose bytes are all in the kernel."""
    transport.stopReading()
    transport.stopWriting()
    transport.connectionLost(Failure(error.ConnectionDone()))


def say(transport: Any, data: bytes) -> bool:
    """Write straight to the socket; False when some of it waits in Twisted's buffer."""
    sent = transport.writeSomeData(data)
    if not isinstance(sent, int):  # the connection failed
        transport.loseConnection()
        return True
    if sent < len(data):
        transport.write(data[sent:])
        return False
    return True


PASSIVE = range(0, 1)  # the passive ports; 0: any the kernel picks


def listen(factory: protocol.Factory) -> OneShotPort | None:
    """A one-shot listener on a free passive port, tried from a random one onwards as
    twisted-ftpd does (the kernel's own pick slows down as TIME_WAIT fills its range)."""
    start = random.randrange(len(PASSIVE))
    for index in range(len(PASSIVE)):
        try:
            return OneShotPort(reactor, PASSIVE[(start + index) % len(PASSIVE)], factory, 1,
                               "127.0.0.1")
        except error.CannotListenError:
            continue
    return None


def open_file(path: str) -> tuple[int, int]:
    """In a thread: the file's descriptor and size."""
    fd = os.open(path, os.O_RDONLY)
    return fd, os.fstat(fd).st_size


class DataConnection(protocol.Protocol):
    def __init__(self, control: FixedReplies) -> None:
        self.control = control

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.control.data_connected(self)


class DataFactory(protocol.Factory):
    noisy = False

    def __init__(self, control: FixedReplies) -> None:
        self.control = control

    def buildProtocol(self, addr: Any) -> DataConnection:  # noqa: N802
        self.control.port.stopListening()
        return DataConnection(self.control)

    def accept_failed(self, reason: Exception) -> None:
        self.control.say(b"425 Cannot open the data connection.\r\n")


class FixedReplies(LineReceiver):
    root = "."
    buffered = False  # a reply went to Twisted's buffer (the socket was full)
    port: Any = None
    data: DataConnection | None = None
    source: tuple[int, int] | None = None  # the file RETR opened, waiting for its connection

    def connectionMade(self) -> None:  # noqa: N802
        # As twisted-ftpd: a reply must not wait for the ACK of the one before
        # (Nagle's algorithm), or 150 and 226 in a row cost a delayed ACK each time.
        self.transport.setTcpNoDelay(True)
        self.say(b"220 Ready.\r\n")

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb == b"EPSV":
            self.port = listen(DataFactory(self))
            if self.port is None:
                self.say(b"425 No free data port.\r\n")
            else:
                self.say(b"229 Entering Extended Passive Mode (|||%d|)\r\n"
                         % self.port.getHost().port)
        elif verb == b"RETR":
            path = os.path.join(self.root, os.fsdecode(arg))
            threads.deferToThread(open_file, path).addCallbacks(self.opened, self.not_opened)
        else:
            self.say(REPLIES.get(verb, b"502 Not implemented.\r\n"))
            if verb == b"QUIT":
                if self.buffered:
                    self.transport.loseConnection()
                else:
                    self.transport.stopReading()
                    self.transport.connectionLost(Failure(error.ConnectionDone()))

    def opened(self, source: tuple[int, int]) -> None:
        self.say(b"150 Opening BINARY mode data connection.\r\n")
        self.source = source
        if self.data is not None:
            self.send()

    def not_opened(self, reason: Failure) -> None:
        self.say(b"550 Cannot open the file.\r\n")

    def data_connected(self, data: DataConnection) -> None:
        self.data = data
        if self.source is not None:
            self.send()

    def send(self) -> None:
        (fd, size), self.source = self.source, None
        data, self.data = self.data, None
        transport, offset, whole = data.transport, 0, True
        try:
            while offset < size:
                try:
                    offset += os.sendfile(transport.fileno(), fd, offset, size - offset)
                except BlockingIOError:  # the socket is full: the rest through Twisted
                    whole = say(transport, os.pread(fd, size - offset, offset))
                    break
        finally:
            os.close(fd)
        if whole:
            close_now(transport)
        else:
            transport.loseConnection()
        self.say(b"226 Transfer complete.\r\n")

    def say(self, data: bytes) -> None:
        if not say(self.transport, data):
            self.buffered = True


def main(port: int, root: str = ".", passive: str = "0-0") -> None:
    global PASSIVE
    low, high = map(int, passive.split("-"))
    PASSIVE = range(low, high + 1)
    FixedReplies.root = root
    reactor.listenTCP(port, protocol.Factory.forProtocol(FixedReplies), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:4])
