# -*- test-case-name: tests.test_data_tls,tests.test_control_transfer,tests.test_control_abort -*-
"""One data connection: TCP (and TLS) up to its end, its timers, limits and pauses.

What a transfer does with it (send a listing, finish a download, receive an
upload) is ``data.streams``.

A ``DataProtocol`` exists from the moment the TCP connection is up, which may
be before the transfer command arrives: some clients (Twisted's own FTPClient)
start writing upload data as soon as the connection opens. Early data is held
and the socket paused until a transfer claims the connection, so nothing is
lost and nothing piles up in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, error, tcp
from twisted.internet.interfaces import (
    IConsumer,
    IHandshakeListener,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.protocol.errors import (
    DataConnectionError,
    TLSSessionNotReused,
)
from twisted_ftpd.tls import (
    describe_tls_failure,
    session_reused,
    start_tls,
    write_in_large_batches,
)

from .throttle import Gate, ThrottledProducer, TokenBucket

log = Logger()
CONNECTION_DONE = Failure(error.ConnectionDone())

# Reads (and buffered writes) in 256 KiB steps instead of Twisted's 64 KiB.
TRANSPORT_BUFFER = 256 * 1024
SEND_LIMIT = 1024 * 1024
# Seconds a refused TLS data connection has to answer our close_notify.
REFUSE_GRACE = 5.0


def set_nodelay(transport: object) -> None:
    """Disable Nagle's algorithm: FTP replies and last data blocks must not wait 40 ms."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except OSError:
            pass


def close_now(transport: Any) -> bool:
    """Close a plain TCP connection at once, the way Twisted's ``loseConnection``
    closes one whose writing side is shut, for a caller that knows nothing it wrote
    waits in Twisted's buffer (so it is all in the kernel already). Twisted's usual
    way waits a reactor turn for the socket to be writable, to flush an empty
    buffer: two or three ``epoll_ctl`` calls, an empty ``send`` and a loop turn.
    False, with nothing done, for TLS, other transports, or one already closing."""
    if (isinstance(transport, tcp.Connection) and not ISSLTransport.providedBy(transport)
            and transport.connected and not transport.disconnecting):
        transport.stopReading()
        transport.stopWriting()
        transport.connectionLost(Failure(error.ConnectionDone()))
        return True
    return False


@dataclass(frozen=True)
class DataTLS:
    """How a protected (PROT P) data connection must be secured."""

    options: Any  # the login's TLS context factory, shared with its control connection
    require_reuse: bool = True  # refuse connections that do not resume the login's session
    clock: Any = None  # the server's reactor, for the TLS layer's timers


class _HeldTLSOutput:
    """Stands between a data connection's TLS layer and its socket, and holds back
    what the layer sends until ``release()`` or until the layer closes the socket.

    Under TLS 1.3 OpenSSL sends a NewSessionTicket once it has read the client's
    Finished, after resumed handshakes too, and neither pyOpenSSL nor cryptography
    exposes SSL_set_num_tickets (nor any ticket callback) to stop it. An uploading
    client never reads its data connection: the ticket lies unread in its socket,
    or arrives after the client closed it, and Linux answers with a reset that
    throws away the upload data the client's kernel had not delivered yet (lftp
    puts of 2 MB on a busy machine stopped at 262144 bytes, 426). Held back until
    the client's close_notify has been read, after the whole upload, the ticket
    costs nothing; sending (a download, a listing) releases it first, so the TLS
    stream is the same, only the ticket comes later.
    """

    # A ticket is a few hundred bytes; a client making us say more (KeyUpdates)
    # gets it sent rather than held without bound.
    LIMIT = 16 * 1024

    def __init__(self, wire: Any) -> None:
        self._wire = wire  # what the TLS layer writes to: startTLS's bypass of itself
        self._held: list[bytes] | None = []
        self._size = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wire, name)

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._wire.write(data)
            return
        self._held.append(data)
        self._size += len(data)
        if self._size > self.LIMIT:
            self.release()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def release(self) -> None:
        held, self._held = self._held, None
        if held:
            self._wire.write(b"".join(held))

    def loseConnection(self) -> None:
        # The TLS layer closes once both close_notify are out: the upload is all in.
        self.release()
        self._wire.loseConnection()

    def abortConnection(self) -> None:
        self._held = None  # an abort discards unsent bytes anyway
        self._wire.abortConnection()


@implementer(IConsumer, IHandshakeListener)
class DataProtocol(Protocol, TimeoutMixin):
    """The data connection, from TCP connect to close.

    It is also the consumer downloads write into, so every block sent or
    received restarts its stall timer: a peer that stops reading or sending
    for ``stall_timeout`` seconds is dropped instead of pinning the session.
    With TLS, it counts as made only once the handshake is done and, when
    required, shown to resume the login's own TLS session.
    """

    def __init__(self, on_made: Callable[[DataProtocol], None] | None = None,
                 on_failed: Callable[[Exception], None] | None = None,
                 tls: DataTLS | None = None, accepted: bool = True) -> None:
        self._on_made = on_made
        self._on_failed = on_failed
        self._tls = tls
        self._accepted = accepted  # we accepted the TCP connection (passive mode)
        self._ready = False
        self._early: list[bytes] = []
        self._sink: Callable[[bytes], None] | None = None
        self.lost: BaseException | None = None
        self.bytes_moved = 0  # for STAT during a transfer
        self.aborted = False  # we dropped it ourselves (see close)
        self.download_path = ""  # how a download was sent: "sendfile" or "producer"
        self._wrote = False  # something went through the transport's write buffer
        self._limit: int | None = None
        self._close_waiters: list[defer.Deferred[BaseException]] = []
        self._refusing = False  # a TLS shutdown of a refused connection is under way
        self._refuse_timer: Any = None
        self._held_output: _HeldTLSOutput | None = None  # TLS 1.3: the ticket, held back
        self._holds: set[str] = set()  # why reading is paused: "owner", "rate"
        self._download_rate: tuple[TokenBucket, IReactorTime] | None = None
        self._throttled: ThrottledProducer | None = None
        self._upload_gate: Gate | None = None

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        if hasattr(self.transport, "bufferSize"):
            # Read (and buffer writes) in 256 KiB steps instead of Twisted's 64 KiB.
            self.transport.bufferSize = TRANSPORT_BUFFER
        if self._tls is not None and hasattr(self.transport, "SEND_LIMIT"):
            # Send up to 1 MiB per writable event instead of Twisted's 128 KiB: an
            # FTPS download always goes through the transport (a plain one mostly
            # by sendfile, and 200 of those at once did no better with it).
            self.transport.SEND_LIMIT = SEND_LIMIT
        if self._tls is None:
            self._made()
        else:
            # The FTP server is the TLS server on data connections in both modes
            # (RFC 4217 section 7); Twisted's "normal" flag means "server" only on
            # connections we accepted, so an active connection passes False.
            if self._tls.clock is None:
                self.transport.startTLS(self._tls.options, self._accepted)
            else:
                start_tls(self.transport, self._tls.options, self._accepted, self._tls.clock)
            write_in_large_batches(self.transport)

    def handshakeCompleted(self) -> None:
        if self._tls is not None and self._tls.require_reuse:
            if not session_reused(self.transport.getHandle()):
                log.warn("Refused a TLS data connection that did not resume the login's session")
                self._refuse()
                self._failed(TLSSessionNotReused())
                return
        self._hold_tls_output()
        self._made()

    def _hold_tls_output(self) -> None:
        """Under TLS 1.3, hold back the session ticket OpenSSL has just queued.

        It is still in the TLS layer's buffer (flushed when this returns); see
        _HeldTLSOutput. Not under TLS 1.2: it sends no ticket after the handshake,
        and after a full handshake our Finished may still be in that buffer.
        """
        layer = getattr(self.transport, "protocol", None)  # startTLS put it there
        if (isinstance(layer, TLSMemoryBIOProtocol)
                and layer.getHandle().get_protocol_version_name() == "TLSv1.3"):
            self._held_output = layer.transport = _HeldTLSOutput(layer.transport)

    def _release_tls_output(self) -> None:
        """We are about to send: the held ticket goes first."""
        if self._held_output is not None:
            self._held_output.release()

    def _refuse(self) -> None:
        """End a refused TLS connection with a TLS shutdown, not a reset.

        The client then sees a clean end of data and goes on to read the 522 that
        explains the refusal (ftplib's ``unwrap()`` breaks on a reset). One that
        never answers our close_notify is cut after ``REFUSE_GRACE`` seconds.
        """
        self.aborted = True
        self._refusing = True
        self.transport.loseConnection()
        clock = self._tls.clock if self._tls is not None else None
        if clock is not None:
            self._refuse_timer = clock.callLater(REFUSE_GRACE, self.transport.abortConnection)

    def _made(self) -> None:
        self._ready = True
        if self._on_made is not None:
            self._on_made(self)

    def _failed(self, reason: Exception) -> None:
        on_failed, self._on_failed = self._on_failed, None
        if on_failed is not None:
            on_failed(reason)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        data, cut = self._over_limit(data)
        self.bytes_moved += len(data)
        if cut:
            self.close()
        if self._upload_gate is not None:
            self._upload_gate.passed(len(data))
        if self._sink is not None:
            self._sink(data)
            return
        # Nobody has claimed the connection yet: keep this, stop reading more.
        self._early.append(data)
        self._hold("owner", True)

    def watch(self, clock: IReactorTime, stall_timeout: float | None) -> None:
        """Start the stall timer, on ``clock`` (not for a connection already gone)."""
        if self.lost is not None:
            return
        self.callLater = clock.callLater
        self.setTimeout(stall_timeout)

    def drop_after(self, limit: int | None) -> None:
        """Break the connection after ``limit`` bytes (fault injection; None: never)."""
        self._limit = limit
        if limit is not None and self.bytes_moved >= limit:
            self.close()

    def _over_limit(self, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` still within the byte limit, and whether it is reached."""
        if self._limit is None:
            return data, False
        room = max(self._limit - self.bytes_moved, 0)
        return data[:room], len(data) >= room

    def timeoutConnection(self) -> None:
        log.info("Data connection stalled; dropping it")
        self.close()

    # IConsumer, delegating to the transport and counting as activity.
    def registerProducer(self, producer: object, streaming: bool) -> None:
        self._release_tls_output()
        if self._download_rate is not None:
            self._throttled = ThrottledProducer(producer, *self._download_rate)
            producer = self._throttled
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        if self._throttled is not None:
            self._throttled.gate.cancel()
            self._throttled = None
        self.transport.unregisterProducer()

    def limit_rates(self, clock: IReactorTime, download: TokenBucket | None,
                    upload: TokenBucket | None) -> None:
        """Hold this connection's traffic to the session's rates (None: unlimited)."""
        if download is not None:
            self._download_rate = (download, clock)
        if upload is not None:
            self._upload_gate = Gate(upload, clock, lambda: self._hold("rate", True),
                                     lambda: self._hold("rate", False))

    def write(self, data: bytes) -> None:
        self.resetTimeout()
        self._release_tls_output()
        self._wrote = True
        data, cut = self._over_limit(data)
        self.bytes_moved += len(data)
        self.transport.write(data)
        if self._throttled is not None:
            self._throttled.sent(len(data))
        if cut:  # flush what is within the limit, then hang up: the transfer fails
            self.aborted = True
            self.transport.loseConnection()

    def read_in(self, size: int) -> None:
        """Read the socket up to ``size`` bytes at a time (the transport's read size)."""
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = size

    # For a sender that writes to the socket itself (data.sendfile).
    def direct_socket(self) -> int | None:
        """The socket's descriptor, or None when bytes must go through the transport:
        TLS, a download rate, a connection already ended, or bytes already written
        (the transport may still hold some, and they must go first)."""
        if (self._tls is not None or self._download_rate is not None or self._wrote
                or self.lost is not None or self.aborted):
            return None
        handle = getattr(self.transport, "getHandle", lambda: None)()
        fileno = getattr(handle, "fileno", None)
        return fileno() if fileno is not None else None

    def room(self) -> int | None:
        """How many more bytes may go out before the byte limit (None: no limit)."""
        return None if self._limit is None else max(self._limit - self.bytes_moved, 0)

    def sent_directly(self, count: int) -> None:
        """``count`` bytes went straight onto the socket: count them for STAT and the
        logs, restart the stall timer, and hang up once the byte limit is reached."""
        self.resetTimeout()
        self.bytes_moved += count
        if self._limit is not None and self.bytes_moved >= self._limit:
            self.aborted = True
            self.transport.loseConnection()

    def hang_up(self) -> None:
        """Close once everything written is sent; the end of every download.

        When nothing ever went through the transport's buffer (a download sent by
        sendfile) and no producer is registered, everything is in the kernel
        already, and the connection is closed now (``close_now``).
        """
        transport = self.transport
        if (self._wrote or self.aborted or getattr(transport, "producer", None) is not None
                or not close_now(transport)):
            transport.loseConnection()

    def connectionLost(self, reason: Failure = CONNECTION_DONE) -> None:
        self.setTimeout(None)
        for gate in (self._upload_gate, self._throttled and self._throttled.gate):
            if gate is not None:
                gate.cancel()
        if self._refuse_timer is not None and self._refuse_timer.active():
            self._refuse_timer.cancel()
        if not self._ready:
            if self._tls is not None and not self._refusing:
                log.info("TLS handshake on a data connection failed: {why}",
                         why=describe_tls_failure(reason))
            self._failed(DataConnectionError("TLS handshake failed." if self._tls else "closed."))
        self.lost = reason.value
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(self.lost)

    def when_closed(self) -> defer.Deferred[BaseException]:
        """Fires with the exception that ended the connection (ConnectionDone if clean)."""
        if self.lost is not None:
            return defer.succeed(self.lost)
        waiter: defer.Deferred[BaseException] = defer.Deferred()
        self._close_waiters.append(waiter)
        return waiter

    def claim(self, sink: Callable[[bytes], None]) -> None:
        """Route incoming data to ``sink``, starting with anything that came early.

        The socket stays paused; the new owner resumes it when it is ready.
        """
        self._sink = sink
        early, self._early = self._early, []
        for chunk in early:
            sink(chunk)

    def resume(self) -> None:
        self._hold("owner", False)

    def pause(self) -> None:
        self._hold("owner", True)

    def _hold(self, reason: str, on: bool) -> None:
        """Reading stops while any reason holds it (the owner's disk, the rate)."""
        was = bool(self._holds)
        (self._holds.add if on else self._holds.discard)(reason)
        if self.lost is None and was != bool(self._holds):
            (self.transport.pauseProducing if self._holds else self.transport.resumeProducing)()

    def close(self) -> None:
        """Drop the connection now, without flushing (ABOR, session end, errors).

        Whatever the transport then reports, the transfer did not complete.
        A connection the peer already closed is left as it ended.
        """
        if self.lost is None and not self._refusing:
            self.aborted = True
            if self.transport is not None:
                self.transport.abortConnection()
