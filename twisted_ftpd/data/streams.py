# -*- test-case-name: tests.test_control_transfer,tests.test_control_flow -*-
"""Moving a transfer's bytes over a connected ``DataProtocol``: listings out, the end
of every download, and uploads in, each with backpressure both ways."""

from __future__ import annotations

import typing
from collections.abc import Iterator

from twisted.internet import defer, error
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.interfaces import IWriteFile
from twisted_ftpd.protocol.errors import FTPError, LocalError, TransferAborted

from .channel import DataProtocol

log = Logger()

# Uploads are written to disk in blocks of this size while writes go to a thread;
# one block in flight at a time. Larger blocks mean fewer writes and fewer hops.
WRITE_BLOCK = 512 * 1024
# Uploads read the socket in steps of up to this much (Twisted reads 64 KiB, data
# connections 256 KiB): a fast client fills the socket faster than one reactor turn
# drains 256 KiB, and each read costs a wake-up and a pass through Python.
UPLOAD_READ = 1024 * 1024
# LIST/NLST output is sent in batches of about this many bytes.
LINE_BATCH = 64 * 1024


def ended_cleanly(proto: DataProtocol, reason: BaseException) -> bool:
    """A clean close by the peer, not an error and not our own abort."""
    return isinstance(reason, error.ConnectionDone) and not proto.aborted


@implementer(IPushProducer)
class LineProducer:
    """Streams listing lines (a generator) without building one big string."""

    def __init__(self, lines: Iterator[str], consumer: object) -> None:
        self._lines = lines
        self._consumer = consumer
        self._paused = False
        self._done = False
        self.deferred: defer.Deferred[None] = defer.Deferred()

    def start(self) -> defer.Deferred[None]:
        self._consumer.registerProducer(self, True)
        self.resumeProducing()
        return self.deferred

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while not self._paused and not self._done:
            batch: list[bytes] = []
            size = 0
            for line in self._lines:
                encoded = (line + "\r\n").encode("utf-8", "surrogateescape")
                batch.append(encoded)
                size += len(encoded)
                if size >= LINE_BATCH:
                    break
            else:
                self._finish(batch)
                return
            self._consumer.write(b"".join(batch))

    def stopProducing(self) -> None:
        if not self._done:
            self._done = True
            self.deferred.errback(TransferAborted())

    def _finish(self, batch: list[bytes]) -> None:
        self._done = True
        if batch:
            self._consumer.write(b"".join(batch))
        self._consumer.unregisterProducer()
        self.deferred.callback(None)


async def finish_sending(proto: DataProtocol) -> None:
    """Half of every download: flush, close, and confirm the peer got it all."""
    proto.hang_up()
    reason = await proto.when_closed()
    if not ended_cleanly(proto, reason):
        raise TransferAborted()


class ReceiveLimit(typing.Protocol):
    """How much an upload may receive (a quota's room), asked chunk by chunk."""

    def admit(self, count: int) -> bool:
        """Whether ``count`` more bytes may be received."""

    def refusal(self) -> FTPError:
        """What the upload fails with once ``admit`` said no."""


class Receiver:
    """Feeds an upload into an IWriteFile in blocks, one block write in flight at a time.

    The socket keeps being read while a block is written (double buffering);
    only when ``HIGH_WATER`` bytes are waiting is it paused, so a slow disk
    throttles the client instead of filling memory. While the target's writes
    complete at once (``InlineWrites``: the page cache takes them), each chunk
    read from the socket is written as it arrives: joining chunks into blocks
    would copy every byte once more, to save hops that are not taken. A ``limit`` that refuses a
    chunk stops the upload there: the connection is dropped and the file
    settled as an aborted upload.
    """

    HIGH_WATER = 2 * WRITE_BLOCK

    def __init__(self, proto: DataProtocol, target: IWriteFile,
                 limit: ReceiveLimit | None = None) -> None:
        self._proto = proto
        self._target = target
        self._limit = limit
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._writing = False
        self._block = WRITE_BLOCK  # write once this much is buffered; 0 while writes are inline
        self._paused = False
        self._idle_waiters: list[defer.Deferred[None]] = []
        self._failed: Failure | None = None
        self.received = 0

    async def run(self) -> int:
        """Receive until the peer closes; returns the byte count or raises an FTPError."""
        self._proto.read_in(UPLOAD_READ)
        self._proto.claim(self._data)
        if not self._paused:
            self._proto.resume()
        reason = await self._proto.when_closed()
        while self._writing:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._idle_waiters.append(waiter)
            await waiter
        if self._failed is None and self._buffered:
            await self._write_buffer()
        if self._failed is not None:
            await self._target.abort()
            failure = self._failed
            raise failure.value if isinstance(failure.value, FTPError) else LocalError()
        if not ended_cleanly(self._proto, reason):
            await self._target.abort()
            raise TransferAborted()
        await self._target.commit()
        return self.received

    def _data(self, data: bytes) -> None:
        self.received += len(data)
        if self._failed is not None:
            return
        if self._limit is not None and not self._limit.admit(len(data)):
            self._failed = Failure(self._limit.refusal())
            self._proto.close()
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if not self._writing and self._buffered >= self._block:
            self._start_write()
        elif self._buffered >= self.HIGH_WATER and not self._paused:
            self._paused = True
            self._proto.pause()

    def _start_write(self) -> None:
        self._writing = True
        try:
            d = self._target.write(self._take())
        except Exception:
            d = defer.fail()
        # Done already: the next chunk goes straight on; else blocks, for fewer hops.
        self._block = 0 if d.called else WRITE_BLOCK
        d.addCallbacks(self._written, self._write_failed)

    def _write_failed(self, failure: Failure) -> None:
        self._fail_write(failure)
        self._written(None)

    def _written(self, _: object) -> None:
        self._writing = False
        if self._failed is not None:
            self._proto.close()
        elif self._buffered and self._buffered >= self._block:
            self._start_write()
        if self._paused and self._failed is None and self._buffered < self.HIGH_WATER:
            self._paused = False
            self._proto.resume()
        if not self._writing:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _take(self) -> bytes:
        """Everything buffered, as one block (not copied when it is one chunk)."""
        block = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        return block

    async def _write_buffer(self) -> None:
        try:
            await self._target.write(self._take())
        except Exception:
            self._fail_write(Failure())

    def _fail_write(self, failure: Failure) -> None:
        self._failed = failure
        log.failure("Writing an upload failed", failure)
