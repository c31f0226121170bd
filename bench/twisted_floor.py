"""The least a login or a small download costs on Twisted: the benchmark's "Twisted floor".

Twisted's default reactor and TCP transport with a ``LineReceiver`` that answers
with fixed replies: no parsing beyond the verb, no authentication, sessions,
limits, timers, path checks or logs. It writes and closes the way twisted-ftpd
does (each reply straight to the socket, and the close at once when nothing waits
in Twisted's buffer) rather than through ``transport.write`` and
``loseConnection``, which each cost a turn of the loop and two ``epoll_ctl``
calls. Whatever an FTP server built on Twisted does for a login, it pays at least
this, and for a small download, at least this if it keeps disk calls off the
reactor, so the benchmark's rows show how much of twisted-ftpd's cost is its own.

It serves USER, PASS, QUIT and TYPE for the login workloads, and EPSV and RETR for
the small-file one. A download does what twisted-ftpd's does at the least, under
the rules twisted-ftpd keeps: EPSV opens a one-shot listener in the passive range
(twisted-ftpd's own ``OneShotPort``, thinner than ``listenTCP``); RETR opens the
file in a thread (one hop there and back), replies 150, sends the file by
``sendfile`` on the accepted connection, closes it at once and replies 226. It is
a benchmark tool for loopback, not a server: paths are not confined to ROOT, no
one checks who connected, and what the socket cannot take at once is read on the
reactor (its files are small).

    python3 bench/twisted_floor.py PORT [ROOT [LOW-HIGH]]   (the passive ports)

It prints the port it listens on once it does (PORT 0 lets the kernel pick one).
"""

from __future__ import annotations

import os
import random
import stat
import sys
from typing import Any

from twisted.internet import error, protocol, reactor, threads
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from twisted_ftpd.data.channel import close_now
from twisted_ftpd.data.ports import OneShotPort

REPLIES = {b"USER": b"331 Password required.\r\n", b"PASS": b"230 Logged in.\r\n",
           b"QUIT": b"221 Goodbye.\r\n", b"TYPE": b"200 Type set.\r\n"}


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


def open_file(path: str) -> tuple[int, int]:
    """In a thread: a regular file's descriptor and size."""
    fd = os.open(path, os.O_RDONLY)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise IsADirectoryError(path)
    return fd, info.st_size


class DataConnection(protocol.Protocol):
    after_close: bytes | None = None  # a reply for when the buffered rest has gone

    def __init__(self, control: FixedReplies) -> None:
        self.control = control

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.control.data_connected(self)

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        if self.after_close is not None:
            self.control.say(self.after_close)


class DataFactory(protocol.Factory):
    """One EPSV's listener: its first connection is the data connection."""

    noisy = False
    port: OneShotPort | None = None

    def __init__(self, control: FixedReplies) -> None:
        self.control = control

    def buildProtocol(self, addr: Any) -> DataConnection | None:  # noqa: N802
        if self.port is None or self.control.port is not self.port:
            return None  # a later EPSV replaced this one
        self.control.close_port()
        return DataConnection(self.control)

    def accept_failed(self, reason: Exception) -> None:
        self.control.say(b"425 Cannot open the data connection.\r\n")


class FixedReplies(LineReceiver):
    buffered = False  # a reply went to Twisted's buffer (the socket was full)
    port: OneShotPort | None = None  # the open EPSV listener
    data: DataConnection | None = None  # its connection, not used yet
    source: tuple[int, int] | None = None  # the file RETR opened, waiting for the connection

    def connectionMade(self) -> None:  # noqa: N802
        # As twisted-ftpd: a reply must not wait for the ACK of the one before
        # (Nagle's algorithm), or 150 and 226 in a row cost a delayed ACK each time.
        self.transport.setTcpNoDelay(True)
        self.say(b"220 Ready.\r\n")

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb == b"EPSV":
            self.epsv()
        elif verb == b"RETR":
            path = os.path.join(self.factory.root, os.fsdecode(arg))
            threads.deferToThread(open_file, path).addCallbacks(self.opened, self.not_opened)
        else:
            self.say(REPLIES.get(verb, b"502 Not implemented.\r\n"))
            if verb == b"QUIT":
                if self.buffered:
                    self.transport.loseConnection()
                else:
                    close_now(self.transport)

    def epsv(self) -> None:
        self.close_port()
        self.drop_data()
        self.drop_source()
        factory = DataFactory(self)
        passive = self.factory.passive
        start = random.randrange(len(passive))  # as twisted-ftpd picks its ports
        for index in range(len(passive)):
            try:
                self.port = factory.port = OneShotPort(
                    reactor, passive[(start + index) % len(passive)], factory, 1, "127.0.0.1")
                break
            except error.CannotListenError:
                continue
        else:
            self.say(b"425 No free data port.\r\n")
            return
        self.say(b"229 Entering Extended Passive Mode (|||%d|)\r\n" % self.port.getHost().port)

    def opened(self, source: tuple[int, int]) -> None:
        if self.transport.disconnected or (self.port is None and self.data is None):
            os.close(source[0])  # the session ended, or RETR came without EPSV
            if not self.transport.disconnected:
                self.say(b"425 Use EPSV first.\r\n")
            return
        self.say(b"150 Opening BINARY mode data connection.\r\n")
        self.source = source
        if self.data is not None:
            self.send()

    def not_opened(self, reason: Failure) -> None:
        self.close_port()
        self.drop_data()
        self.say(b"550 Cannot open the file.\r\n")

    def data_connected(self, data: DataConnection) -> None:
        self.data = data
        if self.source is not None:
            self.send()

    def send(self) -> None:
        (fd, size), self.source = self.source, None
        data, self.data = self.data, None
        transport, offset, reply = data.transport, 0, b"226 Transfer complete.\r\n"
        try:
            while offset < size:
                try:
                    sent = os.sendfile(transport.fileno(), fd, offset, size - offset)
                except BlockingIOError:  # the socket is full: the rest through Twisted
                    if not say(transport, os.pread(fd, size - offset, offset)):
                        data.after_close = reply  # once Twisted has flushed it
                        transport.loseConnection()
                        return
                    break
                if sent == 0:  # the file shrank
                    reply = b"426 Transfer aborted.\r\n"
                    break
                offset += sent
        except OSError:  # the client went away
            reply = b"426 Transfer aborted.\r\n"
        finally:
            os.close(fd)
        close_now(transport)
        self.say(reply)

    def close_port(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            port.stopListening()

    def drop_data(self) -> None:
        data, self.data = self.data, None
        if data is not None:
            data.transport.loseConnection()

    def drop_source(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            os.close(source[0])

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self.close_port()
        self.drop_data()
        self.drop_source()

    def say(self, data: bytes) -> None:
        if not self.transport.disconnected and not say(self.transport, data):
            self.buffered = True


class FloorFactory(protocol.Factory):
    protocol = FixedReplies
    noisy = False

    def __init__(self, root: str, passive: range) -> None:
        self.root = root
        self.passive = passive  # 0 alone: any port the kernel picks


def main(port: int, root: str = ".", passive: str = "0-0") -> None:
    low, high = map(int, passive.split("-"))
    listening = reactor.listenTCP(port, FloorFactory(root, range(low, high + 1)),
                                  interface="127.0.0.1")
    print(listening.getHost().port, flush=True)  # ready: the port (PORT 0: the kernel's)
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:4])
