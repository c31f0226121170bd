# -*- test-case-name: tests.test_data_ascii -*-
"""Proves TYPE A conversion is exact whatever the chunking, and the wrappers stay transparent."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.testing import StringTransport
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_ftpd.data.ascii import AsciiConsumer, AsciiWriteFile, FromNetwork, ToNetwork
from twisted_ftpd.interfaces import IWriteFile

SAMPLE = b"a\nb\r\nc\rd\r\r\n\n\r\re\n\r"
CHUNK = 256 * 1024


def convert_chunks(converter: ToNetwork | FromNetwork, chunks: list[bytes]) -> bytes:
    return b"".join(converter.convert(c) for c in chunks) + converter.flush()


def to_net(*chunks: bytes) -> bytes:
    return convert_chunks(ToNetwork(), list(chunks))


def from_net(*chunks: bytes) -> bytes:
    return convert_chunks(FromNetwork(), list(chunks))


def splits(data: bytes) -> list[list[bytes]]:
    """Every way to cut ``data`` into 2 and into 3 chunks, empty ones included."""
    n = len(data)
    out = [[data[:i], data[i:]] for i in range(n + 1)]
    out += [[data[:i], data[i:j], data[j:]] for i in range(n + 1) for j in range(i, n + 1)]
    return out


@pytest.mark.parametrize(("direction", "wire_in", "expected"), [
    ("to-network", b"", b""),
    ("to-network", b"a\nb\n", b"a\r\nb\r\n"),
    ("to-network", b"a\r\nb\r\n", b"a\r\nb\r\n"),
    ("to-network", b"\n\n", b"\r\n\r\n"),
    ("to-network", b"a\rb", b"a\rb"),
    ("to-network", b"\r", b"\r"),
    ("to-network", b"\r\r\n", b"\r\r\n"),
    ("to-network", b"x\ny\r\nz\r", b"x\r\ny\r\nz\r"),
    ("to-network", b"\n\r\n\r\r\n", b"\r\n\r\n\r\r\n"),
    ("from-network", b"", b""),
    ("from-network", b"a\r\nb\r\n", b"a\nb\n"),
    ("from-network", b"a\nb\n", b"a\nb\n"),
    ("from-network", b"a\rb", b"a\rb"),
    ("from-network", b"\r", b"\r"),
    ("from-network", b"\r\r", b"\r\r"),
    ("from-network", b"\r\r\n", b"\r\n"),
    ("from-network", b"\n\r", b"\n\r"),
    ("from-network", b"x\r\ny\nz\r\r\n\r", b"x\ny\nz\r\n\r"),
])
def test_conversion_exact(direction: str, wire_in: bytes, expected: bytes) -> None:
    convert = to_net if direction == "to-network" else from_net
    assert convert(wire_in) == expected


def test_to_network_does_not_double_a_crlf_split_over_chunks() -> None:
    converter = ToNetwork()
    assert converter.convert(b"a\r") == b"a\r"
    assert converter.convert(b"\nb\n") == b"\nb\r\n"
    assert converter.flush() == b""


def test_to_network_remembers_cr_across_empty_chunks() -> None:
    assert to_net(b"a\r", b"", b"", b"\n") == b"a\r\n"
    assert to_net(b"a", b"", b"\n") == b"a\r\n"


def test_from_network_holds_a_final_cr_until_it_knows() -> None:
    converter = FromNetwork()
    assert converter.convert(b"a\r") == b"a"
    assert converter.convert(b"") == b""
    assert converter.convert(b"\nb\r") == b"\nb"
    assert converter.convert(b"c") == b"\rc"
    assert converter.convert(b"d\r") == b"d"
    assert converter.flush() == b"\r"
    assert converter.flush() == b""


def test_from_network_keeps_a_cr_before_a_chunk_of_another_cr() -> None:
    assert from_net(b"a\r", b"\r", b"\n") == b"a\r\n"


@pytest.mark.parametrize("sample", [SAMPLE, b"\r\n" * 4, b"\r\r\n\n\r"])
def test_every_split_matches_whole_conversion(sample: bytes) -> None:
    whole_to, whole_from = to_net(sample), from_net(sample)
    for chunks in splits(sample):
        assert to_net(*chunks) == whole_to, chunks
        assert from_net(*chunks) == whole_from, chunks


@pytest.mark.parametrize(
    "text", [b"", b"\n", b"plain", b"a\nb\n\nc", b"\n\n\nend", b"\x00\xff\n\t\x1b\n"]
)
def test_round_trip_without_crs(text: bytes) -> None:
    assert from_net(to_net(text)) == text
    for chunks in splits(to_net(text)):
        assert from_net(*chunks) == text


def test_binary_data_with_lone_crs_survives_uploads() -> None:
    blob = bytes(range(256)) * 3  # lone CRs (0x0d followed by 0x0e), no CRLF
    assert b"\r\n" not in blob
    assert from_net(blob) == blob
    assert from_net(*[blob[i : i + 13] for i in range(0, len(blob), 13)]) == blob
    # Downloads leave the CRs alone and add one before each LF.
    assert to_net(blob) == blob.replace(b"\n", b"\r\n")


def test_large_input_in_256k_chunks() -> None:
    # On the wire a line is 5 bytes and 256 KiB == -1 (mod 5): the wire chunks end
    # at every offset within a line, the first one between a CR and its LF.
    line = b"abc\n"
    text = line * (1024 * 1024 // len(line) + 1)
    wire = text.replace(b"\n", b"\r\n")
    assert len(text) > 1024 * 1024
    assert to_net(*[text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]) == wire
    cuts = [wire[i : i + CHUNK] for i in range(0, len(wire), CHUNK)]
    assert cuts[0].endswith(b"\r") and len(cuts) > 4
    assert from_net(*cuts) == text


@implementer(IPushProducer)
class FakeProducer:
    def __init__(self) -> None:
        self.paused = False
        self.stopped = False

    def pauseProducing(self) -> None:  # noqa: N802
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False

    def stopProducing(self) -> None:  # noqa: N802
        self.stopped = True


class PausingTransport(StringTransport):
    """A transport whose buffer is 'full' after every write."""

    def write(self, data: bytes) -> None:
        super().write(data)
        self.producer.pauseProducing()


def test_ascii_consumer_passes_producer_through_and_converts() -> None:
    transport = StringTransport()
    consumer = AsciiConsumer(transport)
    assert verifyObject(IConsumer, consumer)
    producer = FakeProducer()
    consumer.registerProducer(producer, True)
    assert transport.producer is producer
    assert transport.streaming is True
    consumer.write(b"one\ntwo\r")
    consumer.write(b"\nthree\n")
    consumer.write(b"")
    consumer.unregisterProducer()
    assert transport.producer is None
    assert transport.value() == b"one\r\ntwo\r\nthree\r\n"


def test_ascii_consumer_lets_the_transport_pause_the_producer_from_write() -> None:
    transport = PausingTransport()
    consumer = AsciiConsumer(transport)
    producer = FakeProducer()
    consumer.registerProducer(producer, True)
    consumer.write(b"line\n")
    assert producer.paused
    assert transport.value() == b"line\r\n"


class RecordingWriteFile:
    def __init__(self, fail_writes: bool = False) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.fail_writes = fail_writes

    def write(self, data: bytes) -> defer.Deferred[None]:
        self.writes.append(data)
        self.events.append("write")
        if self.fail_writes:
            return defer.fail(OSError(28, "No space left on device"))
        return defer.succeed(None)

    def commit(self) -> defer.Deferred[None]:
        self.events.append("commit")
        return defer.succeed(None)

    def abort(self) -> defer.Deferred[None]:
        self.events.append("abort")
        return defer.succeed(None)


def result(d: defer.Deferred) -> object:
    results: list[object] = []
    d.addBoth(results.append)
    assert len(results) == 1, "Deferred did not fire synchronously"
    return results[0]


def test_ascii_write_file_converts_and_commits() -> None:
    inner = RecordingWriteFile()
    upload = AsciiWriteFile(inner)
    assert verifyObject(IWriteFile, upload)
    assert result(upload.write(b"a\r\nb\r")) is None
    assert result(upload.write(b"\nc\r\n")) is None
    assert result(upload.commit()) is None
    assert b"".join(inner.writes) == b"a\nb\nc\n"
    assert inner.events == ["write", "write", "commit"]


def test_ascii_write_file_skips_empty_blocks() -> None:
    inner = RecordingWriteFile()
    upload = AsciiWriteFile(inner)
    assert result(upload.write(b"\r")) is None  # held back: nothing to write yet
    assert result(upload.write(b"")) is None
    assert inner.writes == []


def test_ascii_write_file_commit_writes_the_held_cr() -> None:
    inner = RecordingWriteFile()
    upload = AsciiWriteFile(inner)
    result(upload.write(b"end\r"))
    assert inner.writes == [b"end"]
    assert result(upload.commit()) is None
    assert inner.writes == [b"end", b"\r"]
    assert inner.events == ["write", "write", "commit"]


def test_ascii_write_file_abort_writes_nothing() -> None:
    inner = RecordingWriteFile()
    upload = AsciiWriteFile(inner)
    result(upload.write(b"end\r"))
    assert result(upload.abort()) is None
    assert inner.writes == [b"end"]
    assert inner.events == ["write", "abort"]


def test_ascii_write_file_failed_final_write_aborts_and_fails_commit() -> None:
    inner = RecordingWriteFile(fail_writes=True)
    upload = AsciiWriteFile(inner)
    assert result(upload.write(b"\r")) is None
    outcome = result(upload.commit())
    assert isinstance(outcome.value, OSError)  # type: ignore[attr-defined]
    assert inner.events == ["write", "abort"]
