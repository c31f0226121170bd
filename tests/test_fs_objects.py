"""The object-storage shell over fsspec's memory filesystem: the conformance suite
(as objects answer it) without a server, plus the adapter's own rules."""

from __future__ import annotations

import itertools

import fsspec
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from tests.object_semantics import ObjectSemanticsMixin
from twisted_ftpd.fs.object_files import READ_CHUNK, store_error
from twisted_ftpd.fs.objects import ObjectShell
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import Segments

_roots = itertools.count()


def _run(f, *args):  # type: ignore[no-untyped-def]
    return maybeDeferred(f, *args)


class MemoryStoreMixin:
    def setUp(self) -> None:
        self.fs = fsspec.filesystem("memory")
        self.root = f"/objects-test/{next(_roots)}"
        self.fs.makedirs(self.root, exist_ok=True)
        self.addCleanup(self.fs.rm, self.root, recursive=True)

    def make_shell(self, permissions: str) -> ObjectShell:
        return ObjectShell(self.fs, self.root, permissions, run=_run)

    def key(self, segments: Segments) -> str:
        return "/".join((self.root, *segments))


class MemoryObjectShellTests(MemoryStoreMixin, ObjectSemanticsMixin, SynchronousTestCase):
    def create_file(self, segments: Segments, data: bytes) -> None:
        self.fs.pipe_file(self.key(segments), data)

    def create_dir(self, segments: Segments) -> None:
        self.fs.makedirs(self.key(segments), exist_ok=True)

    def read_back(self, segments: Segments) -> bytes:
        return self.fs.cat_file(self.key(segments))

    def exists(self, segments: Segments) -> bool:
        return self.fs.exists(self.key(segments))

    def test_upload_in_progress_lies_under_a_hidden_name(self) -> None:
        writer = self.upload(("f",), [b"x"])
        (temp,) = self.fs.ls(self.root, detail=False)
        self.assertRegex(temp.rsplit("/", 1)[1], r"^\.f\.[a-z0-9]{8}\.part$")
        self.successResultOf(writer.commit())
        self.assertEqual(self.names(), ["f"])

    def test_a_rename_whose_copy_fails_keeps_the_source(self) -> None:
        self.create_file(("a",), b"data")

        def broken_copy(source: str, destination: str) -> None:
            raise ConnectionResetError("the store hung up")

        self.patch(self.fs, "cp_file", broken_copy)
        failure = self.failureResultOf(self.shell().rename(("a",), ("b",)),
                                       errors.StoreUnreachable)
        self.assertEqual(failure.value.reply().code, 451)
        self.assertEqual(self.read_back(("a",)), b"data")
        self.assertFalse(self.exists(("b",)))

    def test_directory_identities_are_stable_across_processes(self) -> None:
        self.create_dir(("d",))
        (info,) = self.successResultOf(self.shell().list_dir(()))
        import zlib

        self.assertEqual(info.unique, f"d{zlib.crc32(self.key(('d',)).encode()):08x}")

    def test_object_stores_are_recognised_by_protocol(self) -> None:
        self.assertFalse(self.shell().markers)
        s3 = type("S3", (), {"protocol": ("s3", "s3a"), "_strip_protocol": staticmethod(str)})
        self.assertTrue(ObjectShell(s3(), "bucket/p", "elr", run=_run).markers)


class ReadFileTests(MemoryStoreMixin, SynchronousTestCase):
    def test_download_reads_one_chunk_at_a_time_and_none_while_paused(self) -> None:
        data = bytes(range(256)) * (2 * READ_CHUNK // 256) + b"tail"
        self.fs.pipe_file(self.key(("f",)), data)
        reads: list[Deferred] = []

        def run(f, *args):  # type: ignore[no-untyped-def]
            if getattr(f, "__name__", "") != "read":
                return maybeDeferred(f, *args)
            d: Deferred = Deferred()
            reads.append(d)
            d.addCallback(lambda _: f(*args))  # the read happens when released
            return d

        shell = ObjectShell(self.fs, self.root, "elr", run=run)
        reader = self.successResultOf(shell.open_for_reading(("f",)))
        transport = StringTransport()
        done = reader.send(transport)
        self.assertIs(transport.producer, reader)
        self.assertEqual(len(reads), 1)  # one read in flight, not more
        reader.pauseProducing()
        reads[0].callback(None)
        self.assertEqual(len(transport.value()), READ_CHUNK)
        self.assertEqual(len(reads), 1)  # paused: the next read waits
        reader.resumeProducing()
        while not done.called:
            self.assertFalse(reads[-1].called)
            reads[-1].callback(None)
        self.assertEqual(self.successResultOf(done), len(data))
        self.assertEqual(transport.value(), data)
        self.assertIsNone(transport.producer)

    def test_stop_during_download_fails_with_transfer_aborted(self) -> None:
        self.fs.pipe_file(self.key(("f",)), b"x" * (2 * READ_CHUNK))
        shell = ObjectShell(self.fs, self.root, "elr", run=_run)
        reader = self.successResultOf(shell.open_for_reading(("f",)))
        transport = StringTransport()
        reader.pauseProducing()
        d = reader.send(transport)
        reader.stopProducing()
        self.failureResultOf(d, errors.TransferAborted)


class StoreErrorTests(SynchronousTestCase):
    """What the store answered becomes a reply the client can act on."""

    def reply(self, error: BaseException) -> tuple[int, str]:
        reply = store_error(error, "/f", "stat", "bucket/home/f").reply()
        return reply.code, reply.text

    def test_mapping(self) -> None:
        self.assertEqual(self.reply(FileNotFoundError("/f")), (550, "/f: No such file or "
                                                                  "directory."))
        self.assertEqual(self.reply(FileNotFoundError(2, "The specified bucket does not "
                                                         "exist")),
                         (550, "/f: the storage bucket does not exist."))
        self.assertEqual(self.reply(PermissionError("Access Denied")),
                         (550, "/f: the storage refused access."))
        self.assertEqual(self.reply(OSError(16, "Please reduce your request rate.")),
                         (451, "/f: the storage is busy (throttled); try again later."))
        self.assertEqual(self.reply(ConnectionRefusedError(111, "refused")),
                         (451, "/f: the storage cannot be reached; try again later."))
        self.assertEqual(self.reply(TimeoutError("timed out")),
                         (451, "/f: the storage cannot be reached; try again later."))
        self.assertEqual(self.reply(RuntimeError("?"))[0], 451)

    def test_the_operator_log_says_what_the_store_answered(self) -> None:
        from twisted.logger import globalLogPublisher

        seen: list[dict] = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        store_error(PermissionError("Access Denied"), "/f", "stat", "bucket/home/f")
        (event,) = [e for e in seen if e.get("operation") == "stat"]
        self.assertEqual(event["key"], "bucket/home/f")
        self.assertIn("Access Denied", repr(event["error"]))
