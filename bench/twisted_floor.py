"""The least a login costs on Twisted: the benchmark's "Twisted floor" server.

Twisted's default reactor and TCP transport with a ``LineReceiver`` that answers
USER, PASS and QUIT with fixed replies: no parsing beyond the verb, no
authentication, sessions, limits, timers or logs. It writes and closes the way
twisted-ftpd does (each reply straight to the socket, and the close at once when
nothing waits in Twisted's buffer) rather than through ``transport.write`` and
``loseConnection``, which each cost a turn of the loop and two ``epoll_ctl``
calls. Whatever an FTP server built on Twisted does for a login, it pays at
least this, so the benchmark's login rows show how much of twisted-ftpd's cost
is its own and how much is the framework's. It serves nothing else (the
benchmark runs it in the login workloads only).

    python3 bench/twisted_floor.py PORT
"""

from __future__ import annotations

import sys

from twisted.internet import error, protocol, reactor
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

REPLIES = {b"USER": b"331 Password required.\r\n", b"PASS": b"230 Logged in.\r\n",
           b"QUIT": b"221 Goodbye.\r\n"}


class FixedReplies(LineReceiver):
    buffered = False  # a reply went to Twisted's buffer (the socket was full)

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.say(b"220 Ready.\r\n")

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        verb = line.split(b" ", 1)[0].upper()
        self.say(REPLIES.get(verb, b"502 Not implemented.\r\n"))
        if verb != b"QUIT":
            return
        if self.buffered:
            self.transport.loseConnection()
        else:
            self.transport.stopReading()
            self.transport.connectionLost(Failure(error.ConnectionDone()))

    def say(self, data: bytes) -> None:
        sent = self.transport.writeSomeData(data)
        if not isinstance(sent, int):  # the connection failed
            self.transport.loseConnection()
        elif sent < len(data):
            self.buffered = True
            self.transport.write(data[sent:])


def main(port: int) -> None:
    reactor.listenTCP(port, protocol.Factory.forProtocol(FixedReplies), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
