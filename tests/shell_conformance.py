# -*- test-case-name: tests.test_fs_shell -*-
"""The IFTPShell contract as tests, so every storage backend behaves the same to clients.

Mix into a ``twisted.trial.unittest.SynchronousTestCase`` and implement the
hooks. Backends must fire Deferreds synchronously under test (e.g. a shell
given a synchronous ``run``). No symlinks here: not every backend has them.
"""

from __future__ import annotations

import stat

from twisted.internet.testing import StringTransport
from zope.interface.verify import verifyObject

from twisted_ftpd.interfaces import (
    IFTPShell,
    IReadFile,
    IStagedWriteFile,
    IUsageShell,
    IWriteFile,
)
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import FileInfo, Segments, Staged

BIG = bytes(range(256)) * 2500  # 640,000 bytes: several read chunks for any sane backend


class ShellConformanceMixin:
    """Backend-neutral tests of IFTPShell; subclasses provide the hooks below."""

    # Whether an upload's file is there before the upload completes (a disk file is,
    # and keeps what was written when the upload breaks off; an object appears only
    # once complete, and an aborted upload leaves the old object as it was).
    uploads_visible_early = True

    def make_shell(self, permissions: str) -> IFTPShell:
        raise NotImplementedError

    def create_file(self, segments: Segments, data: bytes) -> None:
        raise NotImplementedError

    def create_dir(self, segments: Segments) -> None:
        raise NotImplementedError

    def read_back(self, segments: Segments) -> bytes:
        raise NotImplementedError

    def exists(self, segments: Segments) -> bool:
        raise NotImplementedError

    def shell(self) -> IFTPShell:
        return self.make_shell("elradfmwMT")

    def download(self, path: Segments, offset: int = 0) -> tuple[bytes, int]:
        reader = self.successResultOf(self.shell().open_for_reading(path, offset))
        transport = StringTransport()
        sent = self.successResultOf(reader.send(transport))
        self.assertIsNone(transport.producer)  # unregistered at the end
        return transport.value(), sent

    def upload(self, path: Segments, chunks: list[bytes], offset: int | None = None) -> IWriteFile:
        writer = self.successResultOf(self.shell().open_for_writing(path, offset))
        for chunk in chunks:
            self.assertIsNone(self.successResultOf(writer.write(chunk)))
        return writer

    def abort(self, writer: IWriteFile) -> None:
        """Abort an upload, which never fails."""
        self.assertIsNone(self.successResultOf(writer.abort()))

    # interface and permissions

    def test_provides_interface(self) -> None:
        shell = self.make_shell("elr")
        self.assertTrue(verifyObject(IFTPShell, shell))
        self.assertEqual(shell.permissions, "elr")

    # stat

    def test_stat_file(self) -> None:
        self.create_dir(("d",))
        self.create_file(("d", "f.txt"), b"12345")
        info = self.successResultOf(self.shell().stat(("d", "f.txt")))
        self.assertIsInstance(info, FileInfo)
        self.assertEqual(
            (info.name, info.size, info.is_file, info.is_dir), ("f.txt", 5, True, False)
        )
        self.assertGreater(info.mtime, 0)

    def test_stat_dir_and_home(self) -> None:
        self.create_dir(("d",))
        self.assertTrue(self.successResultOf(self.shell().stat(("d",))).is_dir)
        home = self.successResultOf(self.shell().stat(()))
        self.assertEqual((home.name, home.is_dir), ("/", True))

    def test_stat_missing(self) -> None:
        self.failureResultOf(self.shell().stat(("nope",)), errors.FileNotFound)

    def test_stat_below_a_file(self) -> None:
        self.create_file(("f",), b"")
        self.failureResultOf(
            self.shell().stat(("f", "x")), errors.NotADirectory, errors.FileNotFound
        )

    # lstat: the entry itself (the same as stat for anything but a symbolic link)

    def test_lstat_file_dir_and_home(self) -> None:
        self.create_dir(("d",))
        self.create_file(("d", "f.txt"), b"12345")
        shell = self.shell()
        info = self.successResultOf(shell.lstat(("d", "f.txt")))
        self.assertIsInstance(info, FileInfo)
        self.assertEqual((info.name, info.size, info.is_file, info.is_link),
                         ("f.txt", 5, True, False))
        self.assertTrue(self.successResultOf(shell.lstat(("d",))).is_dir)
        home = self.successResultOf(shell.lstat(()))
        self.assertEqual((home.name, home.is_dir), ("/", True))

    def test_lstat_missing(self) -> None:
        self.create_file(("f",), b"")
        shell = self.shell()
        self.failureResultOf(shell.lstat(("nope",)), errors.FileNotFound)
        self.failureResultOf(shell.lstat(("nope", "x")), errors.FileNotFound)
        self.failureResultOf(shell.lstat(("f", "x")), errors.NotADirectory, errors.FileNotFound)

    # list_dir

    def test_list_dir_sorted_with_types_and_sizes(self) -> None:
        self.create_dir(("d",))
        for name in ("b", "a", "C"):
            self.create_file(("d", name), name.encode() * 3)
        self.create_dir(("d", "sub"))
        entries = self.successResultOf(self.shell().list_dir(("d",)))
        self.assertEqual([e.name for e in entries], ["C", "a", "b", "sub"])
        self.assertEqual([e.size for e in entries[:3]], [3, 3, 3])
        self.assertEqual([e.is_dir for e in entries], [False, False, False, True])

    def test_list_home_and_empty_dir(self) -> None:
        self.create_dir(("empty",))
        self.assertEqual(self.successResultOf(self.shell().list_dir(("empty",))), [])
        names = [e.name for e in self.successResultOf(self.shell().list_dir(()))]
        self.assertEqual(names, ["empty"])

    def test_list_dir_errors(self) -> None:
        self.create_file(("f",), b"x")
        self.failureResultOf(self.shell().list_dir(("f",)), errors.NotADirectory)
        self.failureResultOf(self.shell().list_dir(("missing",)), errors.FileNotFound)

    # make_dir / remove_dir

    def test_make_dir(self) -> None:
        self.assertIsNone(self.successResultOf(self.shell().make_dir(("new",))))
        self.assertTrue(self.successResultOf(self.shell().stat(("new",))).is_dir)

    def test_make_dir_errors(self) -> None:
        self.create_dir(("d",))
        self.failureResultOf(self.shell().make_dir(("d",)), errors.FileExists)
        self.failureResultOf(self.shell().make_dir(("no", "parent")), errors.FileNotFound)

    def test_remove_dir(self) -> None:
        self.create_dir(("d",))
        self.assertIsNone(self.successResultOf(self.shell().remove_dir(("d",))))
        self.assertFalse(self.exists(("d",)))

    def test_remove_dir_errors(self) -> None:
        self.create_dir(("full",))
        self.create_file(("full", "f"), b"x")
        shell = self.shell()
        self.failureResultOf(shell.remove_dir(("full",)), errors.DirectoryNotEmpty)
        self.failureResultOf(shell.remove_dir(("full", "f")), errors.NotADirectory)
        self.failureResultOf(shell.remove_dir(("missing",)), errors.FileNotFound)
        self.failureResultOf(shell.remove_dir(()), errors.PermissionDenied)
        self.assertTrue(self.exists(("full", "f")))

    def test_home_itself_cannot_be_created_or_removed(self) -> None:
        shell = self.shell()
        self.failureResultOf(shell.make_dir(()), errors.PermissionDenied)
        self.failureResultOf(shell.remove_file(()), errors.PermissionDenied)

    def test_make_dir_below_a_file(self) -> None:
        self.create_file(("f",), b"")
        self.failureResultOf(self.shell().make_dir(("f", "d")), errors.NotADirectory)

    def test_impossible_names(self) -> None:
        shell = self.shell()
        for bad in ("..", ".", "", "a/b", "nul\0", "x" * 300):
            self.failureResultOf(shell.stat((bad,)), errors.InvalidPath)
            self.failureResultOf(shell.make_dir((bad,)), errors.InvalidPath)

    # remove_file

    def test_remove_file(self) -> None:
        self.create_file(("f",), b"x")
        self.assertIsNone(self.successResultOf(self.shell().remove_file(("f",))))
        self.assertFalse(self.exists(("f",)))

    def test_remove_file_errors(self) -> None:
        self.create_dir(("d",))
        self.failureResultOf(self.shell().remove_file(("d",)), errors.IsADirectory)
        self.failureResultOf(self.shell().remove_file(("missing",)), errors.FileNotFound)
        self.assertTrue(self.exists(("d",)))

    # rename

    def test_rename_file(self) -> None:
        self.create_file(("a",), b"data")
        self.create_dir(("d",))
        self.assertIsNone(self.successResultOf(self.shell().rename(("a",), ("d", "b"))))
        self.assertFalse(self.exists(("a",)))
        self.assertEqual(self.read_back(("d", "b")), b"data")

    def test_rename_dir_with_contents(self) -> None:
        self.create_dir(("d",))
        self.create_file(("d", "f"), b"inner")
        self.successResultOf(self.shell().rename(("d",), ("e",)))
        self.assertEqual(self.read_back(("e", "f")), b"inner")
        self.assertFalse(self.exists(("d",)))

    def test_rename_over_existing_file_replaces_it(self) -> None:
        self.create_file(("a",), b"new")
        self.create_file(("b",), b"old")
        self.successResultOf(self.shell().rename(("a",), ("b",)))
        self.assertEqual(self.read_back(("b",)), b"new")
        self.assertFalse(self.exists(("a",)))

    def test_rename_onto_itself_changes_nothing(self) -> None:
        self.create_file(("a",), b"x")
        self.create_dir(("d",))
        self.successResultOf(self.shell().rename(("a",), ("a",)))
        self.successResultOf(self.shell().rename(("d",), ("d",)))
        self.assertEqual(self.read_back(("a",)), b"x")
        self.assertTrue(self.successResultOf(self.shell().stat(("d",))).is_dir)

    def test_rename_dir_over_empty_dir(self) -> None:
        self.create_dir(("d",))
        self.create_file(("d", "f"), b"inner")
        self.create_dir(("empty",))
        self.successResultOf(self.shell().rename(("d",), ("empty",)))
        self.assertEqual(self.read_back(("empty", "f")), b"inner")
        self.assertFalse(self.exists(("d",)))

    def test_rename_type_and_nesting_errors(self) -> None:
        self.create_file(("f",), b"x")
        self.create_dir(("d",))
        self.create_dir(("d", "sub"))
        self.create_dir(("full",))
        self.create_file(("full", "g"), b"y")
        shell = self.shell()
        self.failureResultOf(shell.rename(("f",), ("d",)), errors.IsADirectory)
        self.failureResultOf(shell.rename(("d",), ("f",)), errors.NotADirectory)
        self.failureResultOf(shell.rename(("d",), ("full",)), errors.DirectoryNotEmpty)
        self.failureResultOf(shell.rename(("d",), ("d", "sub", "x")), errors.InvalidPath)
        self.failureResultOf(shell.rename(("d", "sub"), ("d",)), errors.DirectoryNotEmpty)
        self.failureResultOf(shell.rename(("f",), ("f", "x")), errors.NotADirectory)
        self.assertEqual(self.read_back(("f",)), b"x")
        self.assertEqual(self.read_back(("full", "g")), b"y")
        self.assertTrue(self.exists(("d", "sub")))

    def test_rename_errors(self) -> None:
        self.create_file(("a",), b"x")
        shell = self.shell()
        self.failureResultOf(shell.rename(("missing",), ("b",)), errors.FileNotFound)
        self.failureResultOf(shell.rename(("a",), ("no", "b")), errors.FileNotFound)
        self.failureResultOf(shell.rename((), ("b",)), errors.PermissionDenied)
        self.failureResultOf(shell.rename(("a",), ()), errors.PermissionDenied)
        self.assertEqual(self.read_back(("a",)), b"x")

    # open_for_reading

    def test_read_whole_file(self) -> None:
        self.create_file(("big",), BIG)
        data, sent = self.download(("big",))
        self.assertEqual((data, sent), (BIG, len(BIG)))

    def test_read_from_offset(self) -> None:
        self.create_file(("f",), b"0123456789")
        self.assertEqual(self.download(("f",), 3), (b"3456789", 7))
        self.assertEqual(self.download(("f",), 10), (b"", 0))

    def test_read_provides_interface_and_close(self) -> None:
        self.create_file(("f",), b"x")
        reader = self.successResultOf(self.shell().open_for_reading(("f",)))
        self.assertTrue(verifyObject(IReadFile, reader))
        reader.close()
        reader.close()  # idempotent

    def test_read_errors(self) -> None:
        self.create_dir(("d",))
        self.failureResultOf(self.shell().open_for_reading(("d",)), errors.IsADirectory)
        self.failureResultOf(self.shell().open_for_reading(()), errors.IsADirectory)
        self.failureResultOf(self.shell().open_for_reading(("missing",)), errors.FileNotFound)

    # open_for_writing

    def test_write_new_file_visible_only_on_commit(self) -> None:
        writer = self.upload(("new",), [b"hello ", b"world"])
        self.assertTrue(verifyObject(IWriteFile, writer))
        self.assertFalse(self.exists(("new",)))
        self.assertIsNone(self.successResultOf(writer.commit()))
        self.assertEqual(self.read_back(("new",)), b"hello world")

    def test_write_replaces_on_commit_only(self) -> None:
        self.create_file(("f",), b"old contents")
        writer = self.upload(("f",), [b"new"])
        self.assertEqual(self.read_back(("f",)), b"old contents")
        self.successResultOf(writer.commit())
        self.assertEqual(self.read_back(("f",)), b"new")

    def test_abort_keeps_the_old_file(self) -> None:
        self.create_file(("f",), b"old contents")
        self.abort(self.upload(("f",), [b"partial"]))
        self.assertEqual(self.read_back(("f",)), b"old contents")
        self.assertEqual([e.name for e in self.successResultOf(self.shell().list_dir(()))], ["f"])

    def test_abort_keeps_a_partial_new_file(self) -> None:
        writer = self.upload(("new",), [b"part", b"ial"])
        self.successResultOf(writer.abort())
        self.assertEqual(self.read_back(("new",)), b"partial")

    def test_abort_of_an_empty_new_upload_leaves_nothing(self) -> None:
        # A transfer that failed before any data (425, ABOR, refused TLS) must not
        # leave a 0-byte file under the name.
        writer = self.upload(("new",), [])
        self.successResultOf(writer.abort())
        self.assertFalse(self.exists(("new",)))
        self.assertEqual(self.successResultOf(self.shell().list_dir(())), [])

    def test_write_at_offset(self) -> None:
        self.create_file(("f",), b"hello world!")
        writer = self.upload(("f",), [b"THERE"], offset=6)
        self.successResultOf(writer.commit())
        self.assertEqual(self.read_back(("f",)), b"hello THERE")

    def test_write_at_offset_abort_keeps_written_data(self) -> None:
        self.create_file(("f",), b"abcdef")
        writer = self.upload(("f",), [b"X"], offset=2)
        self.successResultOf(writer.abort())
        # An object stays as it was: REST+STOR writes a new one, which is abandoned.
        self.assertEqual(self.read_back(("f",)), b"abX" if self.uploads_visible_early
                         else b"abcdef")

    def test_write_at_offset_zero_creates(self) -> None:
        writer = self.upload(("new",), [b"data"], offset=0)
        self.successResultOf(writer.commit())
        self.assertEqual(self.read_back(("new",)), b"data")

    def test_write_errors(self) -> None:
        self.create_dir(("d",))
        shell = self.shell()
        self.failureResultOf(shell.open_for_writing(("d",)), errors.IsADirectory)
        self.failureResultOf(shell.open_for_writing(("d",), 0), errors.IsADirectory)
        self.failureResultOf(shell.open_for_writing(()), errors.IsADirectory)
        self.failureResultOf(shell.open_for_writing(("no", "f")), errors.FileNotFound)
        self.failureResultOf(shell.open_for_writing(("missing",), 5), errors.FileNotFound)
        self.assertFalse(self.exists(("missing",)))

    def test_write_after_finish_is_a_programming_error(self) -> None:
        writer = self.upload(("f",), [b"x"])
        self.successResultOf(writer.commit())
        self.assertRaises(RuntimeError, writer.write, b"more")
        self.abort(writer)
        self.assertEqual(self.read_back(("f",)), b"x")
        aborted = self.upload(("g",), [b"y"])
        self.successResultOf(aborted.abort())
        self.assertRaises(RuntimeError, aborted.write, b"more")
        self.successResultOf(aborted.abort())

    def test_write_at_offset_past_the_end_fills_with_zeros(self) -> None:
        self.create_file(("f",), b"abc")
        self.successResultOf(self.upload(("f",), [b"X"], offset=5).commit())
        self.assertEqual(self.read_back(("f",)), b"abc\0\0X")

    def test_replace_keeps_the_permission_bits(self) -> None:
        self.create_file(("f",), b"old")
        self.successResultOf(self.shell().chmod(("f",), 0o640))
        self.successResultOf(self.upload(("f",), [b"new"]).commit())
        info = self.successResultOf(self.shell().stat(("f",)))
        self.assertEqual((stat.S_IMODE(info.mode), info.is_file), (0o640, True))

    # open_for_appending

    def append(self, path: Segments, chunks: list[bytes]) -> IWriteFile:
        writer = self.successResultOf(self.shell().open_for_appending(path))
        for chunk in chunks:
            self.assertIsNone(self.successResultOf(writer.write(chunk)))
        return writer

    def test_append_to_existing_file(self) -> None:
        self.create_file(("f",), b"abc")
        writer = self.append(("f",), [b"de", b"f"])
        self.assertTrue(verifyObject(IWriteFile, writer))
        self.assertIsNone(self.successResultOf(writer.commit()))
        self.assertEqual(self.read_back(("f",)), b"abcdef")

    def test_append_creates_a_missing_file_at_once(self) -> None:
        writer = self.append(("new",), [])
        self.assertEqual(self.exists(("new",)), self.uploads_visible_early)
        self.successResultOf(writer.write(b"data"))
        self.successResultOf(writer.commit())
        self.assertEqual(self.read_back(("new",)), b"data")

    def test_append_abort_keeps_written_data(self) -> None:
        self.create_file(("f",), b"abc")
        writer = self.append(("f",), [b"X"])
        self.abort(writer)
        self.assertEqual(self.read_back(("f",)), b"abcX" if self.uploads_visible_early else b"abc")
        self.abort(writer)
        self.assertRaises(RuntimeError, writer.write, b"more")

    def test_append_errors(self) -> None:
        self.create_dir(("d",))
        shell = self.shell()
        self.failureResultOf(shell.open_for_appending(("d",)), errors.IsADirectory)
        self.failureResultOf(shell.open_for_appending(()), errors.IsADirectory)
        self.failureResultOf(shell.open_for_appending(("no", "f")), errors.FileNotFound)

    # open_unique

    def test_open_unique_creates_a_new_name(self) -> None:
        self.create_dir(("d",))
        self.create_file(("d", "up"), b"taken")
        shell = self.shell()
        name, writer = self.successResultOf(shell.open_unique(("d",), "up"))
        self.assertTrue(verifyObject(IWriteFile, writer))
        self.assertTrue(name.startswith("up"))
        self.assertGreater(len(name), len("up"))
        self.assertEqual(self.exists(("d", name)), self.uploads_visible_early)
        other, second = self.successResultOf(shell.open_unique(("d",), "up"))
        self.assertNotIn(other, (name, "up"))
        self.successResultOf(writer.write(b"first"))
        self.assertIsNone(self.successResultOf(writer.commit()))
        self.successResultOf(second.abort())
        self.assertEqual(self.read_back(("d", name)), b"first")
        if self.uploads_visible_early:  # the aborted one keeps what it had: nothing
            self.assertEqual(self.read_back(("d", other)), b"")
        else:
            self.assertFalse(self.exists(("d", other)))
        self.assertEqual(self.read_back(("d", "up")), b"taken")

    def test_open_unique_in_home(self) -> None:
        name, writer = self.successResultOf(self.shell().open_unique((), "x."))
        self.successResultOf(writer.commit())
        names = [e.name for e in self.successResultOf(self.shell().list_dir(()))]
        self.assertEqual(names, [name])

    def test_open_unique_errors(self) -> None:
        self.create_file(("f",), b"")
        shell = self.shell()
        self.failureResultOf(shell.open_unique(("missing",), "p"), errors.FileNotFound)
        self.failureResultOf(shell.open_unique(("f",), "p"), errors.NotADirectory)

    # set_mtime and chmod

    def test_set_mtime(self) -> None:
        self.create_file(("f",), b"x")
        self.create_dir(("d",))
        shell = self.shell()
        for path in (("f",), ("d",)):
            self.assertIsNone(self.successResultOf(shell.set_mtime(path, 1_000_000_000.0)))
            self.assertEqual(self.successResultOf(shell.stat(path)).mtime, 1_000_000_000.0)
        self.assertEqual(self.read_back(("f",)), b"x")
        self.failureResultOf(shell.set_mtime(("missing",), 0.0), errors.FileNotFound)

    def test_chmod_sets_permission_bits_only(self) -> None:
        self.create_file(("f",), b"x")
        self.create_dir(("d",))
        shell = self.shell()
        self.assertIsNone(self.successResultOf(shell.chmod(("f",), 0o600)))
        info = self.successResultOf(shell.stat(("f",)))
        self.assertEqual((stat.S_IMODE(info.mode), info.is_file), (0o600, True))
        self.successResultOf(shell.chmod(("f",), 0o4755))  # no setuid from a client
        self.assertEqual(stat.S_IMODE(self.successResultOf(shell.stat(("f",))).mode), 0o755)
        self.successResultOf(shell.chmod(("d",), 0o700))
        info = self.successResultOf(shell.stat(("d",)))
        self.assertEqual((stat.S_IMODE(info.mode), info.is_dir), (0o700, True))
        self.failureResultOf(shell.chmod(("missing",), 0o644), errors.FileNotFound)

    def test_chmod_of_the_home_itself_is_refused(self) -> None:
        shell = self.shell()
        before = self.successResultOf(shell.stat(())).mode
        self.failureResultOf(shell.chmod((), 0o777), errors.PermissionDenied)
        self.failureResultOf(shell.chmod((), 0o000), errors.PermissionDenied)
        self.assertEqual(self.successResultOf(shell.stat(())).mode, before)

    # IStagedWriteFile: looking at an upload before it lands (--upload-check)

    def staged_bytes(self, staged: Staged) -> bytes:
        if staged.file is None:
            assert staged.data is not None
            return staged.data
        with open(staged.file, "rb") as f:
            return f.read()

    def test_staged_shows_the_whole_upload_before_commit(self) -> None:
        self.create_file(("f",), b"old")
        writer = self.upload(("f",), [b"new ", b"data"])
        self.assertTrue(verifyObject(IStagedWriteFile, writer))
        staged = self.successResultOf(writer.staged())
        self.assertEqual((self.staged_bytes(staged), staged.size), (b"new data", 8))
        self.assertEqual(self.read_back(("f",)), b"old")
        self.successResultOf(writer.commit())
        self.assertEqual(self.read_back(("f",)), b"new data")

    def test_discard_keeps_nothing_and_the_old_file(self) -> None:
        self.create_file(("f",), b"old")
        self.assertIsNone(self.successResultOf(self.upload(("f",), [b"new"]).discard()))
        writer = self.upload(("new",), [b"partial"])
        self.successResultOf(writer.discard())
        self.successResultOf(writer.abort())  # settled already: no partial appears now
        self.assertEqual(self.read_back(("f",)), b"old")
        self.assertEqual([e.name for e in self.successResultOf(self.shell().list_dir(()))], ["f"])

    def test_discard_removes_a_file_made_in_place_only(self) -> None:
        self.create_file(("log",), b"kept ")
        appended = self.append(("log",), [b"more"])
        self.successResultOf(appended.discard())
        self.assertEqual(self.read_back(("log",)), b"kept more")  # existing: left as it is
        self.successResultOf(self.append(("new",), [b"x"]).discard())
        name, unique = self.successResultOf(self.shell().open_unique((), "u."))
        self.successResultOf(unique.write(b"y"))
        self.successResultOf(unique.discard())
        self.assertFalse(self.exists(("new",)))
        self.assertFalse(self.exists((name,)))

    # IUsageShell: measuring the home (quotas)

    def test_disk_usage_counts_regular_files_below_the_home(self) -> None:
        shell = self.shell()
        self.assertTrue(verifyObject(IUsageShell, shell))
        self.assertEqual(self.successResultOf(shell.disk_usage()), (0, 0))
        self.create_file(("a",), b"12345")
        self.create_dir(("d",))
        self.create_dir(("d", "e"))
        self.create_file(("d", "e", "b"), b"678")
        self.create_file(("d", "empty"), b"")
        self.assertEqual(self.successResultOf(shell.disk_usage()), (8, 3))

    def test_usage_key_is_the_same_for_every_shell_on_one_home(self) -> None:
        self.assertEqual(self.shell().usage_key, self.make_shell("elr").usage_key)
        hash(self.shell().usage_key)
