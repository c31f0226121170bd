# -*- test-case-name: tests.test_fs_memory -*-
"""Proves the in-memory shell meets the same contract as the disk one, without ever blocking."""

from __future__ import annotations

import stat

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.helpers import PausingConsumer, aborted_send
from tests.shell_conformance import ShellConformanceMixin
from twisted_ftpd.fs import memory
from twisted_ftpd.fs.files import CHUNK_SIZE
from twisted_ftpd.fs.memory import MemoryFilesystem, MemoryReadFile, MemoryShell
from twisted_ftpd.interfaces import IReadFile, IWriteFile
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import Segments


class Clock:
    """A clock that ticks one second per reading, so every stamp is distinct."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 1
        return self.now


class MemoryShellTestCase(SynchronousTestCase):
    """Gives each test a tree whose home is /srv/home, with a sibling /srv/outside."""

    HOME = ("srv", "home")

    def setUp(self) -> None:
        self.clock = Clock()
        self.fs = MemoryFilesystem(clock=self.clock)
        self.fs.makedirs("srv/home")
        self.fs.put("srv/outside/secret", b"secret")

    def make_shell(self, permissions: str) -> MemoryShell:
        return MemoryShell(self.fs, permissions, home=self.HOME, clock=self.clock)

    def shell(self) -> MemoryShell:
        return self.make_shell("elradfmwMT")

    def fs_path(self, segments: Segments) -> str:
        return "/".join(self.HOME + segments)

    def commit(self, writer: IWriteFile, *chunks: bytes) -> None:
        for chunk in chunks:
            self.successResultOf(writer.write(chunk))
        self.successResultOf(writer.commit())


class TestConformance(ShellConformanceMixin, MemoryShellTestCase):
    make_shell = MemoryShellTestCase.make_shell
    shell = MemoryShellTestCase.shell

    def create_file(self, segments: Segments, data: bytes) -> None:
        self.fs.put(self.fs_path(segments), data)

    def create_dir(self, segments: Segments) -> None:
        self.fs.makedirs(self.fs_path(segments))

    def read_back(self, segments: Segments) -> bytes:
        return self.fs.read(self.fs_path(segments))

    def exists(self, segments: Segments) -> bool:
        return self.fs.exists(self.fs_path(segments))


class TestFilesystemHelpers(SynchronousTestCase):
    def test_put_read_exists_makedirs(self) -> None:
        fs = MemoryFilesystem()
        fs.put("/a/b/c.txt", b"data")
        self.assertEqual(fs.read("a/b/c.txt"), b"data")
        self.assertIsInstance(fs.read("a/b/c.txt"), bytes)
        self.assertTrue(fs.exists("a/b") and fs.exists("/a/b/c.txt") and fs.exists("/"))
        self.assertFalse(fs.exists("a/x") or fs.exists("a/b/c.txt/d"))
        fs.put("a/b/c.txt", b"new")
        self.assertEqual(fs.read("a/b/c.txt"), b"new")
        fs.makedirs("a/b")  # already there: fine
        fs.makedirs("x/y/z/")
        self.assertTrue(fs.exists("x/y/z"))

    def test_helper_errors(self) -> None:
        fs = MemoryFilesystem()
        fs.put("f", b"")
        fs.makedirs("d")
        self.assertRaises(errors.FileNotFound, fs.read, "missing")
        self.assertRaises(errors.IsADirectory, fs.read, "d")
        self.assertRaises(errors.IsADirectory, fs.put, "d", b"")
        self.assertRaises(errors.NotADirectory, fs.makedirs, "f")
        self.assertRaises(errors.NotADirectory, fs.makedirs, "f/g")
        self.assertRaises(errors.NotADirectory, fs.put, "f/g", b"")


class TestSharedTree(MemoryShellTestCase):
    def test_two_homes_on_one_tree(self) -> None:
        self.fs.makedirs("home/alice")
        self.fs.makedirs("home/bob")
        alice = MemoryShell(self.fs, "elradfmw", home=("home", "alice"))
        bob = MemoryShell(self.fs, "elr", home=("home", "bob"))
        root = MemoryShell(self.fs, "elradfmw")
        self.commit(self.successResultOf(alice.open_for_writing(("f",))), b"alice's")
        self.commit(self.successResultOf(bob.open_for_writing(("f",))), b"bob's")
        self.assertEqual(self.fs.read("home/alice/f"), b"alice's")
        self.assertEqual(self.fs.read("home/bob/f"), b"bob's")
        self.successResultOf(alice.remove_file(("f",)))
        self.failureResultOf(alice.stat(("f",)), errors.FileNotFound)
        self.assertEqual(self.successResultOf(bob.stat(("f",))).size, 5)
        self.assertEqual([e.name for e in self.successResultOf(alice.list_dir(()))], [])
        names = [e.name for e in self.successResultOf(root.list_dir(("home",)))]
        self.assertEqual(names, ["alice", "bob"])
        self.successResultOf(root.rename(("home", "bob", "f"), ("home", "alice", "g")))
        self.assertEqual(self.successResultOf(alice.stat(("g",))).size, 5)
        self.assertEqual(self.successResultOf(bob.list_dir(())), [])

    def test_nothing_outside_the_home_is_reachable(self) -> None:
        s = self.shell()
        self.assertEqual([e.name for e in self.successResultOf(s.list_dir(()))], [])
        for bad in ("..", "."):
            self.failureResultOf(s.stat((bad, "outside", "secret")), errors.InvalidPath)
            self.failureResultOf(s.open_for_writing((bad, "x")), errors.InvalidPath)
        self.failureResultOf(s.stat(("outside",)), errors.FileNotFound)
        self.assertEqual(self.fs.read("srv/outside/secret"), b"secret")

    def test_missing_home(self) -> None:
        s = MemoryShell(self.fs, "elr", home=("nobody",))
        self.failureResultOf(s.stat(()), errors.FileNotFound)
        self.failureResultOf(s.list_dir(()), errors.FileNotFound)


class TestFiredDeferreds(MemoryShellTestCase):
    def test_every_method_returns_a_fired_deferred(self) -> None:
        self.fs.put("srv/home/f", b"data")
        self.fs.makedirs("srv/home/d")
        s = self.shell()
        calls = [
            lambda: s.stat(("f",)), lambda: s.stat(("missing",)),
            lambda: s.list_dir(("d",)), lambda: s.list_dir(("f",)),
            lambda: s.make_dir(("new",)), lambda: s.make_dir(("d",)),
            lambda: s.remove_dir(("new",)), lambda: s.remove_dir(()),
            lambda: s.rename(("f",), ("g",)), lambda: s.rename(("f",), ("h",)),
            lambda: s.open_for_reading(("g",)), lambda: s.open_for_reading(("d",)),
            lambda: s.open_for_writing(("w",)), lambda: s.open_for_writing(("d",)),
            lambda: s.open_for_appending(("a",)), lambda: s.open_unique((), "u"),
            lambda: s.open_unique(("nope",), "u"),
            lambda: s.set_mtime(("g",), 5.0), lambda: s.chmod(("g",), 0o600),
            lambda: s.chmod(("nope",), 0o600), lambda: s.remove_file(("g",)),
        ]
        for call in calls:
            d = call()
            self.assertIsInstance(d, defer.Deferred)
            self.assertTrue(d.called)
            d.addErrback(lambda f: f.trap(errors.FTPError))
        writer = self.successResultOf(s.open_for_writing(("w",)))
        for d in (writer.write(b"x"), writer.commit(), writer.abort()):
            self.assertTrue(d.called)


class TestFileInfo(MemoryShellTestCase):
    def test_defaults(self) -> None:
        self.fs.put("srv/home/f", b"12345")
        self.fs.makedirs("srv/home/d/sub1")
        self.fs.makedirs("srv/home/d/sub2")
        s = self.shell()
        f = self.successResultOf(s.stat(("f",)))
        self.assertEqual((f.mode, f.size, f.nlink, f.owner, f.group, f.link_target),
                         (stat.S_IFREG | 0o644, 5, 1, "ftp", "ftp", None))
        d = self.successResultOf(s.stat(("d",)))
        self.assertEqual((d.mode, d.nlink), (stat.S_IFDIR | 0o755, 4))
        self.assertTrue(f.unique.startswith("mem"))
        self.assertNotEqual(f.unique, d.unique)
        self.assertEqual(self.successResultOf(s.stat(("f",))).unique, f.unique)
        self.successResultOf(s.rename(("f",), ("g",)))
        self.assertEqual(self.successResultOf(s.stat(("g",))).unique, f.unique)

    def test_mtime_comes_from_the_clock(self) -> None:
        s = self.shell()
        writer = self.successResultOf(s.open_for_writing(("f",)))
        self.successResultOf(writer.write(b"x"))
        before_commit = self.clock.now
        self.successResultOf(writer.commit())
        info = self.successResultOf(s.stat(("f",)))
        self.assertGreater(info.mtime, before_commit)
        self.assertEqual(self.successResultOf(s.stat(())).mtime, info.mtime)  # dir stamped
        writer = self.successResultOf(s.open_for_appending(("f",)))
        self.successResultOf(writer.write(b"y"))
        self.assertEqual(self.successResultOf(s.stat(("f",))).mtime, self.clock.now)
        self.successResultOf(s.set_mtime(("f",), 42.0))
        self.assertEqual(self.successResultOf(s.stat(("f",))).mtime, 42.0)

    def test_replace_is_a_new_file_with_the_old_mode(self) -> None:
        self.fs.put("srv/home/f", b"old")
        s = self.shell()
        self.successResultOf(s.chmod(("f",), 0o600))
        old = self.successResultOf(s.stat(("f",)))
        self.commit(self.successResultOf(s.open_for_writing(("f",))), b"new")
        new = self.successResultOf(s.stat(("f",)))
        self.assertEqual(new.mode, stat.S_IFREG | 0o600)
        self.assertNotEqual(new.unique, old.unique)  # like a rename over it on disk


class TestUploads(MemoryShellTestCase):
    def test_writers_provide_the_interface(self) -> None:
        s = self.shell()
        for d in (s.open_for_writing(("a",)), s.open_for_writing(("b",), 0),
                  s.open_for_appending(("c",))):
            self.assertTrue(verifyObject(IWriteFile, self.successResultOf(d)))

    def test_abort_of_a_new_upload_never_clobbers_what_appeared_since(self) -> None:
        s = self.shell()
        writer = self.successResultOf(s.open_for_writing(("f",)))
        self.successResultOf(writer.write(b"partial"))
        self.fs.put("srv/home/f", b"someone else's")
        self.successResultOf(writer.abort())
        self.assertEqual(self.fs.read("srv/home/f"), b"someone else's")

    def test_abort_after_the_directory_went_away(self) -> None:
        self.fs.makedirs("srv/home/d")
        s = self.shell()
        writer = self.successResultOf(s.open_for_writing(("d", "f")))
        self.successResultOf(s.remove_dir(("d",)))
        self.assertIsNone(self.successResultOf(writer.abort()))

    def test_commit_failures(self) -> None:
        self.fs.makedirs("srv/home/d")
        s = self.shell()
        gone = self.successResultOf(s.open_for_writing(("d", "f")))
        now_a_dir = self.successResultOf(s.open_for_writing(("x",)))
        self.successResultOf(s.remove_dir(("d",)))
        self.successResultOf(s.make_dir(("x",)))
        self.failureResultOf(gone.commit(), errors.FileNotFound)
        self.failureResultOf(now_a_dir.commit(), errors.IsADirectory)
        self.assertRaises(RuntimeError, gone.commit)
        self.successResultOf(gone.abort())
        self.assertTrue(self.successResultOf(s.stat(("x",))).is_dir)

    def test_in_place_write_is_visible_at_once(self) -> None:
        self.fs.put("srv/home/f", b"hello world")
        writer = self.successResultOf(self.shell().open_for_writing(("f",), 6))
        self.assertEqual(self.fs.read("srv/home/f"), b"hello ")  # truncated when opened
        self.successResultOf(writer.write(b"there"))
        self.assertEqual(self.fs.read("srv/home/f"), b"hello there")
        self.successResultOf(writer.commit())

    def test_append_follows_other_writers(self) -> None:
        self.fs.put("srv/home/log", b"a")
        s = self.shell()
        first = self.successResultOf(s.open_for_appending(("log",)))
        second = self.successResultOf(s.open_for_appending(("log",)))
        for writer, data in ((first, b"b"), (second, b"c"), (first, b"d")):
            self.successResultOf(writer.write(data))
        self.successResultOf(first.commit())
        self.successResultOf(second.write(b"e"))
        self.successResultOf(second.abort())
        self.assertEqual(self.fs.read("srv/home/log"), b"abcde")

    def test_open_unique_skips_taken_names(self) -> None:
        self.fs.put("srv/home/up.aaaaaa", b"taken")
        picks = iter(["aaaaaa", "aaaaaa", "b1c2d3"])
        self.patch(memory.random, "choices", lambda population, k: list(next(picks)))
        name, writer = self.successResultOf(self.shell().open_unique((), "up."))
        self.assertEqual(name, "up.b1c2d3")
        self.commit(writer, b"mine")
        self.assertEqual(self.fs.read("srv/home/up.aaaaaa"), b"taken")
        self.assertEqual(self.fs.read("srv/home/up.b1c2d3"), b"mine")

    def test_open_unique_names_are_lowercase_letters_and_digits(self) -> None:
        s = self.shell()
        for _ in range(20):
            name, _writer = self.successResultOf(s.open_unique((), "p"))
            self.assertRegex(name, r"\Ap[a-z0-9]{6}\Z")


class TestReading(MemoryShellTestCase):
    def open_reader(self, data: bytes) -> MemoryReadFile:
        """A reader of /srv/home/f, holding ``data``."""
        self.fs.put("srv/home/f", data)
        return self.successResultOf(self.shell().open_for_reading(("f",)))

    def test_one_chunk_per_resume(self) -> None:
        data = bytes(range(256)) * (CHUNK_SIZE // 128) + b"tail"  # two chunks and a bit
        reader = self.open_reader(data)
        self.assertIsInstance(reader, MemoryReadFile)
        self.assertTrue(verifyObject(IReadFile, reader))
        self.assertTrue(IPushProducer.providedBy(reader))
        consumer = PausingConsumer()
        d = reader.send(consumer)
        self.assertIs(consumer.producer, reader)
        self.assertTrue(consumer.streaming)
        for expected in (1, 2, 3):
            self.assertEqual(len(consumer.writes), expected)
            self.assertNoResult(d)
            reader.resumeProducing()
        self.assertEqual(self.successResultOf(d), len(data))
        self.assertEqual([len(w) for w in consumer.writes], [CHUNK_SIZE, CHUNK_SIZE, 4])
        self.assertTrue(all(type(w) is bytes for w in consumer.writes))
        self.assertEqual(b"".join(consumer.writes), data)
        self.assertTrue(consumer.unregistered)
        reader.resumeProducing()  # late resume is harmless
        self.assertEqual(len(consumer.writes), 3)

    def test_stop_producing_aborts(self) -> None:
        reader = self.open_reader(b"x" * (CHUNK_SIZE * 2))
        consumer = aborted_send(self, reader, reader.stopProducing, unregistered=False)
        reader.resumeProducing()
        self.assertEqual(len(consumer.writes), 1)

    def test_close_during_send_aborts_and_unregisters(self) -> None:
        reader = self.open_reader(b"x" * (CHUNK_SIZE * 2))
        aborted_send(self, reader, reader.close, unregistered=True)
        self.assertRaises(RuntimeError, reader.send, PausingConsumer())

    def test_download_is_a_snapshot(self) -> None:
        self.fs.put("srv/home/f", b"a" * (CHUNK_SIZE + 1))
        s = self.shell()
        reader = self.successResultOf(s.open_for_reading(("f",)))
        consumer = PausingConsumer()
        d = reader.send(consumer)
        self.commit(self.successResultOf(s.open_for_writing(("f",))), b"replaced")
        in_place = self.successResultOf(s.open_for_writing(("f",), 0))
        self.successResultOf(in_place.write(b"b" * (CHUNK_SIZE * 2)))  # no BufferError
        reader.resumeProducing()  # the last byte
        reader.resumeProducing()  # the end
        self.assertEqual(self.successResultOf(d), CHUNK_SIZE + 1)
        self.assertEqual(b"".join(consumer.writes), b"a" * (CHUNK_SIZE + 1))

    def test_reading_a_file_mid_write(self) -> None:
        s = self.shell()
        writer = self.successResultOf(s.open_for_appending(("f",)))
        self.successResultOf(writer.write(b"so far"))
        reader = self.successResultOf(s.open_for_reading(("f",), 3))
        self.successResultOf(writer.write(b", more"))
        transport = StringTransport()
        self.assertEqual(self.successResultOf(reader.send(transport)), 3)
        self.assertEqual(transport.value(), b"far")
        self.assertIsNone(transport.producer)
