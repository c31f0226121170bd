# -*- test-case-name: tests.test_data_ascii -*-
"""TYPE A transfers: RFC 959 puts CRLF on the wire, while local files end lines with LF."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.interfaces import IWriteFile


class ToNetwork:
    """Downloads: every LF not already preceded by CR becomes CRLF, across chunks."""

    def __init__(self) -> None:
        self._after_cr = False

    def convert(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        head = b""
        if self._after_cr and chunk[:1] == b"\n":
            # The CR ended the previous chunk: this LF completes an existing CRLF.
            head, chunk = b"\n", chunk[1:]
        self._after_cr = chunk[-1:] == b"\r" if chunk else False
        return head + chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def flush(self) -> bytes:
        """Nothing is ever held back; here for symmetry with FromNetwork."""
        return b""


class FromNetwork:
    """Uploads: CRLF becomes LF, across chunks; a CR not followed by LF is kept."""

    def __init__(self) -> None:
        self._held_cr = False

    def convert(self, chunk: bytes) -> bytes:
        if self._held_cr:
            chunk = b"\r" + chunk
        # A final CR may be the first half of a CRLF split over two chunks.
        self._held_cr = chunk[-1:] == b"\r"
        if self._held_cr:
            chunk = chunk[:-1]
        return chunk.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        """The CR held back at the end of the data, if any."""
        held, self._held_cr = self._held_cr, False
        return b"\r" if held else b""


@implementer(IConsumer)
class AsciiConsumer:
    """Wraps a consumer (a DataProtocol) so that downloads go out with CRLF line ends.

    Producers pass through untouched, so the wrapped consumer pauses and
    resumes the real producer directly, even from inside ``write``.
    """

    def __init__(self, consumer: IConsumer) -> None:
        self._consumer = consumer
        self._convert = ToNetwork()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:  # noqa: N802
        self._consumer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:  # noqa: N802
        tail = self._convert.flush()
        if tail:
            self._consumer.write(tail)
        self._consumer.unregisterProducer()

    def write(self, data: bytes) -> None:
        converted = self._convert.convert(data)
        if converted:
            self._consumer.write(converted)


@implementer(IWriteFile)
class AsciiWriteFile:
    """Wraps an IWriteFile so that uploads received with CRLF are stored with LF."""

    def __init__(self, target: IWriteFile) -> None:
        self._target = target
        self._convert = FromNetwork()

    def write(self, data: bytes) -> defer.Deferred[None]:
        converted = self._convert.convert(data)
        if not converted:
            return defer.succeed(None)
        return self._target.write(converted)

    def commit(self) -> defer.Deferred[None]:
        tail = self._convert.flush()
        if not tail:
            return self._target.commit()
        d = self._target.write(tail)
        d.addCallbacks(lambda _: self._target.commit(), self._abort_after)
        return d

    def abort(self) -> defer.Deferred[None]:
        return self._target.abort()

    def _abort_after(self, failure: Failure) -> defer.Deferred[None]:
        """The final write failed: settle the inner file, then report that failure."""
        d = self._target.abort()
        d.addBoth(lambda _: failure)
        return d
