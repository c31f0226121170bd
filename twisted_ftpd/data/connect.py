# -*- test-case-name: tests.test_data_connect,tests.test_control_data,tests.test_data_tls -*-
"""Setting up a data connection: passive (we listen) or active (we dial the client).

A set-up has no state machine of its own: where the session's data connection
stands (pending, claimed, transferring) is ``control.data_slot``'s one machine.
A set-up only produces, at most once, an *outcome*: the connected DataProtocol
or the reason it failed; until then it is undecided, and once the slot drops it
it is closed. A passive listener accepts exactly one connection, and only from
the control connection's peer: connections from any other address are dropped
and the port keeps waiting for the right one. Both kinds give up after a timeout
measured on an injected clock, so tests need no real time.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, error
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import ClientFactory, Factory
from twisted.logger import Logger

from twisted_ftpd.protocol.addresses import normalize, same_host
from twisted_ftpd.protocol.errors import DataConnectionError

from .channel import DataProtocol, DataTLS
from .passive_range import NoFreePort, PassiveRange
from .ports import listen_passive

if TYPE_CHECKING:
    from twisted_ftpd.proxy_protocol import PassiveProxy

log = Logger()

# A listener cannot be made at all, whichever port: the process or system is out of
# descriptors or memory.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class PendingConnection:
    """Common part: hands out the DataProtocol once, to whoever asks, or the failure."""

    def __init__(self, clock: IReactorTime, timeout: float, tls: DataTLS | None = None) -> None:
        self.tls = tls
        self.closed = False  # the slot dropped it: nothing more happens
        self.outcome: DataProtocol | Exception | None = None  # decided at most once
        self._candidate: DataProtocol | None = None  # connected, handshake still running
        self._refusing = False
        self._clock = clock
        self._timeout = timeout
        self._timer = None
        self._waiters: list[defer.Deferred[DataProtocol]] = []

    def connection(self) -> defer.Deferred[DataProtocol]:
        """Fires with the connected DataProtocol; fails with DataConnectionError (425)."""
        if self.closed:
            return defer.fail(DataConnectionError("data connection closed."))
        if isinstance(self.outcome, Exception):
            return defer.fail(self.outcome)
        if self.outcome is not None:
            return defer.succeed(self.outcome)
        waiter: defer.Deferred[DataProtocol] = defer.Deferred()
        self._waiters.append(waiter)
        self._begin()
        return waiter

    def close(self, reason: Exception | None = None) -> None:
        """Abandon this setup: stop listening or dialing, drop any connection.

        Anyone still waiting for the connection gets ``reason`` (default: 425).
        """
        was_closed, self.closed = self.closed, True
        self._cancel_timer()
        self._stop()
        self._drop_candidate()
        if self.protocol is not None:
            self.protocol.close()
        if not was_closed:
            self._notify(reason or DataConnectionError("data connection closed."))

    def refuse(self) -> None:
        """Make the connection fail when it is attempted (fault injection): the
        client's connection to a passive port is dropped, an active dial never made."""
        self._refusing = True

    @property
    def failure(self) -> Exception | None:
        """Why this set-up already failed, if it did (timed out, refused...)."""
        if self.closed or not isinstance(self.outcome, Exception):
            return None
        return self.outcome

    @property
    def protocol(self) -> DataProtocol | None:
        """The connected data connection, once it is up."""
        return self.outcome if isinstance(self.outcome, DataProtocol) else None

    @property
    def decided(self) -> bool:
        """Connected, failed or closed: no further connection is wanted."""
        return self.closed or self.outcome is not None

    def _begin(self) -> None:
        """Hook: active connections dial when first asked."""

    def _stop(self) -> None:
        """Hook: release the listening port or the connector."""

    def _start_timer(self) -> None:
        self._timer = self._clock.callLater(self._timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(DataConnectionError("timed out."))

    def _connected(self, proto: DataProtocol) -> None:
        self._cancel_timer()
        self._stop()
        if self.decided:
            proto.close()
            return
        self.outcome = proto
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(proto)

    def _fail(self, failure: Exception) -> None:
        if self.decided:
            return
        self.outcome = failure
        self._cancel_timer()
        self._stop()
        self._drop_candidate()
        self._notify(failure)

    def _new_protocol(self, accepted: bool) -> DataProtocol:
        proto = DataProtocol(on_made=self._connected, on_failed=self._fail, tls=self.tls,
                             accepted=accepted)
        self._candidate = proto
        return proto

    def _drop_candidate(self) -> None:
        candidate, self._candidate = self._candidate, None
        if candidate is not None and candidate is not self.protocol:
            candidate.close()

    def _notify(self, failure: Exception) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(failure)


def port_order(ports: Sequence[int]) -> Iterator[int]:
    """The passive ports to try, in turn: from a random one of ``ports`` onwards, round
    the range. Uniformly random while that port is free, as a shuffle would be, but
    without shuffling a range of thousands of ports for every PASV (a fifth of the
    server's CPU time on a run of small downloads)."""
    count = len(ports)
    start = random.randrange(count) if count > 1 else 0
    for index in range(count):
        yield ports[(start + index) % count]


class _PassiveFactory(Factory):
    noisy = False

    def __init__(self, owner: PassiveConnection) -> None:
        self.owner = owner

    def buildProtocol(self, addr: IAddress) -> Any:
        owner = self.owner
        if owner.proxy is not None:  # load balancers may connect too (proxy_protocol.py)
            return owner.proxy.data_protocol(addr, owner._accept, owner._fail, owner.tls,
                                             owner.peer_host)
        return owner._accept(addr)

    def accept_failed(self, reason: Exception) -> None:
        """The port could not accept (out of descriptors, say) or set up the
        connection, and has closed: 425."""
        log.warn("Could not accept a passive data connection: {error}", error=reason)
        self.owner._fail(DataConnectionError("cannot accept the connection."))


class PassiveConnection(PendingConnection):
    """PASV/EPSV: a one-shot listener on the control connection's local address."""

    def __init__(
        self,
        reactor: IReactorTCP,
        clock: IReactorTime,
        timeout: float,
        local_host: str,
        peer_host: str,
        ports: Sequence[int] = (0,),
        tls: DataTLS | None = None,
        proxy: PassiveProxy | None = None,
        in_range: PassiveRange | None = None,
    ) -> None:
        """``in_range`` counts the listener among the server's own while it is open;
        NoFreePort when every port of ``ports`` is taken."""
        super().__init__(clock, timeout, tls)
        self.peer_host = peer_host
        self.proxy = proxy
        self.port: IListeningPort | None = None
        self._range = in_range
        self.host, self.port_number = "", 0  # where the listener is, once it listens
        self._range_key = ("", 0)  # how in_range knows it
        self._listen(reactor, normalize(local_host), ports)
        self._start_timer()

    def _listen(self, reactor: IReactorTCP, host: str, ports: Sequence[int]) -> None:
        ours = self._range.ports if self._range is not None else ()
        for number in port_order(ports):
            if (host, number) in ours:  # one of our own listeners has it: no need to try
                continue
            try:
                self.port = listen_passive(reactor, number, _PassiveFactory(self), backlog=5,
                                           interface=host)
            except error.CannotListenError as e:
                if getattr(e.socketError, "errno", None) in _OUT_OF_RESOURCES:
                    # Every other port would fail the same way, and waiting for
                    # one of ours to close would not help: 425 now.
                    log.warn("Cannot open a passive port: {error}", error=e.socketError)
                    raise DataConnectionError("cannot open a data port.") from None
                continue
            address = self.port.getHost()
            self.host, self.port_number = address.host, address.port
            if self._range is not None:
                self._range.opened(host, self.port_number)
                self._range_key = (host, self.port_number)
            return
        raise NoFreePort()

    def _accept(self, addr: IAddress) -> DataProtocol | None:
        if self.decided or self._candidate is not None:
            return None
        if self._refusing:
            self._fail(DataConnectionError("connection refused."))
            return None
        if not same_host(getattr(addr, "host", ""), self.peer_host):
            log.warn("Refused a passive data connection from {addr} (control peer is {peer})",
                     addr=addr, peer=self.peer_host)
            return None
        # The candidate makes a second connection be refused; handed out once it is up.
        self._stop()
        return self._new_protocol(accepted=True)

    def _stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            closing = defer.maybeDeferred(port.stopListening)
            if self._range is not None:  # its port may be bound again once it has closed
                closing.addBoth(lambda _, ours=self._range, key=self._range_key:
                                ours.closed(*key))


class _ActiveFactory(ClientFactory):
    noisy = False
    protocol = DataProtocol

    def __init__(self, owner: ActiveConnection) -> None:
        self.owner = owner

    def buildProtocol(self, addr: IAddress) -> DataProtocol:
        return self.owner._new_protocol(accepted=False)

    def clientConnectionFailed(self, connector: object, reason: object) -> None:
        self.owner._fail(DataConnectionError("connection refused."))


class ActiveConnection(PendingConnection):
    """PORT/EPRT: dial the client's address when a transfer first needs it."""

    def refuse(self) -> None:
        # Known before any transfer starts, so the transfer is refused before its 150.
        self._fail(DataConnectionError("connection refused."))

    def __init__(
        self,
        reactor: IReactorTCP,
        clock: IReactorTime,
        timeout: float,
        host: str,
        port: int,
        local_host: str,
        tls: DataTLS | None = None,
    ) -> None:
        super().__init__(clock, timeout, tls)
        self.target = (host, port)
        self._reactor = reactor
        self._local_host = normalize(local_host)
        self._connector = None

    def _begin(self) -> None:
        if self.decided or self._connector is not None:
            return
        if self._refusing:
            self._fail(DataConnectionError("connection refused."))
            return
        host, port = self.target
        bind = (self._local_host, 0) if (":" in self._local_host) == (":" in host) else None
        self._connector = self._reactor.connectTCP(
            host, port, _ActiveFactory(self), timeout=self._timeout, bindAddress=bind
        )
        self._start_timer()

    def _stop(self) -> None:
        connector, self._connector = self._connector, None
        if connector is not None and getattr(connector, "state", "") == "connecting":
            connector.stopConnecting()
