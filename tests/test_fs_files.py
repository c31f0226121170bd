# -*- test-case-name: tests.test_fs_files -*-
"""Proves downloads honour back-pressure and uploads never damage the file they replace."""

from __future__ import annotations

import io
import os
import stat

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import SynchronousTestCase

from tests.harness import ManualRunner
from tests.helpers import PausingConsumer, aborted_send, sync_run, temp_dir
from twisted_ftpd.fs.files import CHUNK_SIZE, DEFAULT_MODE, InlineWrites, ReadFile, WriteFile
from twisted_ftpd.protocol import errors


class BrokenFile(io.BytesIO):
    def read(self, size: int = -1) -> bytes:
        raise OSError(5, "I/O error")


class TestReadFile(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = temp_dir(self)

    def open(self, data: bytes) -> tuple[ReadFile, io.BufferedReader]:
        path = self.tmp / "f"
        path.write_bytes(data)
        fileobj = open(path, "rb")  # noqa: SIM115 - ReadFile owns it
        self.addCleanup(fileobj.close)
        return ReadFile(fileobj, "/f"), fileobj

    def test_one_chunk_per_resume(self) -> None:
        data = os.urandom(CHUNK_SIZE * 3 + 123)
        reader, fileobj = self.open(data)
        self.assertTrue(IPushProducer.providedBy(reader))
        consumer = PausingConsumer()
        d = reader.send(consumer)
        self.assertIs(consumer.producer, reader)
        self.assertTrue(consumer.streaming)
        self.assertEqual(len(consumer.writes), 1)
        for expected in (2, 3, 4):
            self.assertNoResult(d)
            reader.resumeProducing()
            self.assertEqual(len(consumer.writes), expected)
        self.assertTrue(all(len(w) <= CHUNK_SIZE for w in consumer.writes))
        self.assertFalse(fileobj.closed)
        reader.resumeProducing()  # reads EOF
        self.assertEqual(self.successResultOf(d), len(data))
        self.assertEqual(b"".join(consumer.writes), data)
        self.assertTrue(consumer.unregistered)
        self.assertTrue(fileobj.closed)
        reader.resumeProducing()  # late resume is harmless
        self.assertEqual(len(consumer.writes), 4)

    def test_stop_producing_aborts(self) -> None:
        reader, fileobj = self.open(b"x" * (CHUNK_SIZE * 2))
        consumer = aborted_send(self, reader, reader.stopProducing, unregistered=False)
        self.assertTrue(fileobj.closed)
        reader.resumeProducing()
        self.assertEqual(len(consumer.writes), 1)

    def test_close_during_send_aborts_and_unregisters(self) -> None:
        reader, fileobj = self.open(b"x" * (CHUNK_SIZE * 2))
        aborted_send(self, reader, reader.close, unregistered=True)
        self.assertTrue(fileobj.closed)

    def test_close_without_sending(self) -> None:
        reader, fileobj = self.open(b"abc")
        reader.close()
        reader.close()
        self.assertTrue(fileobj.closed)
        self.assertRaises(RuntimeError, reader.send, PausingConsumer())

    def test_read_error_is_a_local_error(self) -> None:
        broken = BrokenFile(b"data")
        consumer = PausingConsumer()
        d = ReadFile(broken, "/f").send(consumer)
        self.failureResultOf(d, errors.LocalError)
        self.assertTrue(broken.closed)
        self.assertTrue(consumer.unregistered)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_empty_file(self) -> None:
        reader, fileobj = self.open(b"")
        consumer = PausingConsumer()
        self.assertEqual(self.successResultOf(reader.send(consumer)), 0)
        self.assertEqual(consumer.writes, [])
        self.assertTrue(fileobj.closed)


class TestWriteFile(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = temp_dir(self)

    def start(self, name: str, offset: int | None = None) -> WriteFile:
        return WriteFile.open(str(self.tmp / name), offset, run=sync_run, display_path="/" + name)

    def test_replace_keeps_old_file_until_commit_and_its_mode(self) -> None:
        target = self.tmp / "f"
        target.write_bytes(b"old")
        os.chmod(target, 0o604)
        writer = self.start("f")
        self.successResultOf(writer.write(b"new "))
        self.successResultOf(writer.write(b"data"))
        self.assertEqual(target.read_bytes(), b"old")
        self.successResultOf(writer.commit())
        self.assertEqual(target.read_bytes(), b"new data")
        self.assertEqual(stat.S_IMODE(target.stat().st_mode), 0o604)
        self.assertEqual(os.listdir(self.tmp), ["f"])

    def test_abort_of_replacement_discards_it(self) -> None:
        target = self.tmp / "f"
        target.write_bytes(b"precious")
        writer = self.start("f")
        self.successResultOf(writer.write(b"garbage"))
        self.assertIsNone(self.successResultOf(writer.abort()))
        self.assertEqual(target.read_bytes(), b"precious")
        self.assertEqual(os.listdir(self.tmp), ["f"])

    def test_abort_of_new_file_keeps_partial(self) -> None:
        writer = self.start("new")
        self.successResultOf(writer.write(b"part"))
        self.successResultOf(writer.abort())
        self.assertEqual((self.tmp / "new").read_bytes(), b"part")
        self.assertEqual(stat.S_IMODE((self.tmp / "new").stat().st_mode), DEFAULT_MODE)
        self.assertEqual(os.listdir(self.tmp), ["new"])

    def test_abort_of_new_file_never_clobbers_a_file_created_meanwhile(self) -> None:
        writer = self.start("new")
        self.successResultOf(writer.write(b"part"))
        (self.tmp / "new").write_bytes(b"someone else")
        self.successResultOf(writer.abort())
        self.assertEqual((self.tmp / "new").read_bytes(), b"someone else")
        self.assertEqual(os.listdir(self.tmp), ["new"])

    def test_abort_never_fails(self) -> None:
        writer = self.start("new")
        os.rename(self.tmp, self.tmp.parent / (self.tmp.name + "-moved"))
        self.addCleanup(os.rename, self.tmp.parent / (self.tmp.name + "-moved"), self.tmp)
        self.assertIsNone(self.successResultOf(writer.abort()))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_offset_mode_writes_in_place(self) -> None:
        target = self.tmp / "f"
        target.write_bytes(b"0123456789")
        writer = self.start("f", 4)
        self.assertEqual(target.read_bytes(), b"0123")  # truncated at the offset
        self.successResultOf(writer.write(b"abc"))
        self.successResultOf(writer.commit())
        self.assertEqual(target.read_bytes(), b"0123abc")
        self.assertEqual(os.listdir(self.tmp), ["f"])

    def test_offset_mode_abort_just_closes(self) -> None:
        target = self.tmp / "f"
        target.write_bytes(b"0123456789")
        writer = self.start("f", 2)
        self.successResultOf(writer.write(b"xy"))
        self.successResultOf(writer.abort())
        self.assertEqual(target.read_bytes(), b"01xy")

    def test_offset_mode_creation_rules(self) -> None:
        self.successResultOf(self.start("zero", 0).commit())
        self.assertEqual((self.tmp / "zero").read_bytes(), b"")
        self.assertRaises(errors.FileNotFound, self.start, "missing", 3)
        self.assertFalse((self.tmp / "missing").exists())

    def test_directories_and_special_files_are_refused(self) -> None:
        (self.tmp / "d").mkdir()
        os.mkfifo(self.tmp / "p")
        for offset in (None, 0):
            self.assertRaises(errors.IsADirectory, self.start, "d", offset)
            self.assertRaises(errors.NotAPlainFile, self.start, "p", offset)

    def test_finished_writer_refuses_more(self) -> None:
        writer = self.start("f")
        self.successResultOf(writer.commit())
        self.assertRaises(RuntimeError, writer.write, b"x")
        self.assertRaises(RuntimeError, writer.commit)
        self.successResultOf(writer.abort())

    def test_blocking_work_waits_for_run(self) -> None:
        pending: list[tuple] = []

        def deferred_run(f, *args, **kwargs) -> defer.Deferred:
            d: defer.Deferred = defer.Deferred()
            pending.append((d, f, args, kwargs))
            return d

        writer = WriteFile.open(str(self.tmp / "f"), None, run=deferred_run)
        written = writer.write(b"data")
        self.assertNoResult(written)
        self.assertEqual(len(pending), 1)
        aborted = writer.abort()  # queued behind the write, not run concurrently
        self.assertEqual(len(pending), 1)
        self.assertNoResult(aborted)
        self.assertFalse((self.tmp / "f").exists())
        while pending:
            d, f, args, kwargs = pending.pop(0)
            d.callback(f(*args, **kwargs))
        self.successResultOf(written)
        self.successResultOf(aborted)
        self.assertEqual((self.tmp / "f").read_bytes(), b"data")


class FakeTimer:
    """A monotonic clock the test moves; ``during_call`` is added while a write runs."""

    def __init__(self) -> None:
        self.now = 100.0
        self.during_call = 0.0

    def __call__(self) -> float:
        return self.now

    def slow_write(self, write):  # type: ignore[no-untyped-def]
        def wrapped(data: bytes) -> int:
            self.now += self.during_call
            return write(data)
        return wrapped


class TestInlineWrites(SynchronousTestCase):
    """Upload blocks written on the calling thread while the disk keeps up."""

    def setUp(self) -> None:
        self.tmp = temp_dir(self)
        self.runner = ManualRunner()
        self.timer = FakeTimer()
        self.inline = InlineWrites(slow=0.01, cool_down=10.0, strikes=3, timer=self.timer)

    def start(self, name: str = "f") -> WriteFile:
        writer = WriteFile.open(str(self.tmp / name), 0, run=self.runner,
                                inline=self.inline)
        writer._file.write = self.timer.slow_write(writer._file.write)
        return writer

    def test_fast_writes_skip_the_runner(self) -> None:
        writer = self.start()
        self.successResultOf(writer.write(b"a" * 100_000))
        self.successResultOf(writer.write(b"b"))
        self.assertEqual(self.runner.calls, [])
        committed = writer.commit()  # everything else still goes through run
        self.assertEqual(len(self.runner.calls), 1)
        self.runner.flush()
        self.successResultOf(committed)
        self.assertEqual((self.tmp / "f").read_bytes(), b"a" * 100_000 + b"b")

    def test_one_slow_write_alone_changes_nothing(self) -> None:
        writer = self.start()
        for during in (0.05, 0.0, 0.05, 0.0):  # preempted now and then, not throttled
            self.timer.during_call = during
            self.successResultOf(writer.write(b"x"))
        self.assertTrue(self.inline.allowed)
        self.assertEqual(self.runner.calls, [])

    def test_slow_writes_send_writes_to_the_runner_for_a_while(self) -> None:
        writer, other = self.start("f"), self.start("g")
        self.timer.during_call = 0.05  # these writes waited for the disk
        self.successResultOf(writer.write(b"sl"))
        self.assertTrue(self.inline.allowed)
        self.successResultOf(other.write(b""))
        self.successResultOf(writer.write(b"ow"))
        self.timer.during_call = 0.0
        self.assertFalse(self.inline.allowed)
        queued = [writer.write(b" then"), other.write(b"other")]  # every upload of the server
        self.assertEqual(len(self.runner.calls), 2)
        self.runner.flush()
        for d in queued:
            self.successResultOf(d)
        self.timer.now += 10.0
        self.assertTrue(self.inline.allowed)
        self.successResultOf(writer.write(b" fast"))
        self.assertEqual(self.runner.calls, [])
        writer.commit()
        self.runner.flush()
        self.assertEqual((self.tmp / "f").read_bytes(), b"slow then fast")

    def test_a_queued_operation_keeps_the_order(self) -> None:
        writer = self.start()
        staged = writer.staged()  # waiting for the runner, holding the lock
        written = writer.write(b"after")
        self.assertNoResult(written)
        self.runner.flush()
        self.assertEqual(self.successResultOf(staged).size, 0)
        self.successResultOf(written)

    def test_an_inline_write_error_is_an_ftp_error(self) -> None:
        writer = WriteFile(open("/dev/full", "wb"), "/dev/full",  # noqa: SIM115
                           run=self.runner, display_path="/full", inline=self.inline)
        failure = self.failureResultOf(writer.write(b"x" * (1 << 20)))
        self.assertIsInstance(failure.value, errors.FTPError)
        self.assertEqual(self.runner.calls, [])
        writer.abort()
        self.runner.flush()
