# -*- test-case-name: tests.test_fs_shell -*-
"""Proves the disk shell meets the shell contract and that no link or name escapes the home."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import unittest
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import sync_run, temp_dir
from tests.shell_conformance import ShellConformanceMixin
from twisted_ftpd.fs import files, shell
from twisted_ftpd.fs.shell import FilesystemShell
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import Segments


class FilesystemShellTestCase(SynchronousTestCase):
    """Gives each test an empty home (``self.home``) and a sibling ``self.outside``."""

    def setUp(self) -> None:
        tmp_path = temp_dir(self)
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.outside = tmp_path / "outside"
        self.outside.mkdir()

    def make_shell(self, permissions: str) -> FilesystemShell:
        return FilesystemShell(str(self.home), permissions, run=sync_run)

    def shell(self) -> FilesystemShell:
        return self.make_shell("elradfmwMT")


class TestConformance(ShellConformanceMixin, FilesystemShellTestCase):
    make_shell = FilesystemShellTestCase.make_shell
    shell = FilesystemShellTestCase.shell

    def path(self, segments: Segments) -> Path:
        return self.home.joinpath(*segments)

    def create_file(self, segments: Segments, data: bytes) -> None:
        self.path(segments).write_bytes(data)

    def create_dir(self, segments: Segments) -> None:
        self.path(segments).mkdir()

    def read_back(self, segments: Segments) -> bytes:
        return self.path(segments).read_bytes()

    def exists(self, segments: Segments) -> bool:
        return os.path.lexists(self.path(segments))


class TestConfinementThroughShell(FilesystemShellTestCase):
    def setUp(self) -> None:
        super().setUp()
        (self.outside / "secret").write_bytes(b"secret")
        (self.home / "inside.txt").write_bytes(b"inside")
        os.symlink(self.outside / "secret", self.home / "file_out")
        os.symlink(self.outside, self.home / "dir_out")
        os.symlink(self.outside / "missing", self.home / "dangling_out")
        (self.home / "sub").mkdir()
        os.symlink(self.outside, self.home / "sub" / "deeper")

    def denied(self, d: defer.Deferred) -> None:
        self.failureResultOf(d, errors.PermissionDenied)

    def test_link_to_outside_file(self) -> None:
        s = self.shell()
        self.denied(s.stat(("file_out",)))
        self.denied(s.open_for_reading(("file_out",)))
        self.denied(s.open_for_writing(("file_out",)))
        self.denied(s.open_for_writing(("file_out",), 0))
        self.denied(s.rename(("inside.txt",), ("file_out",)))  # would replace the link
        self.denied(s.set_mtime(("file_out",), 0))
        self.denied(s.chmod(("file_out",), 0o777))
        self.assertEqual((self.outside / "secret").read_bytes(), b"secret")
        self.assertEqual(stat.S_IMODE(os.stat(self.outside / "secret").st_mode),
                         stat.S_IMODE(os.stat(self.home / "inside.txt").st_mode))
        self.assertEqual((self.home / "inside.txt").read_bytes(), b"inside")

    def test_link_to_outside_directory_and_parent_position(self) -> None:
        s = self.shell()
        for link in (("dir_out",), ("sub", "deeper")):
            self.denied(s.stat(link))
            self.denied(s.list_dir(link))
            self.denied(s.stat((*link, "secret")))
            self.denied(s.open_for_reading((*link, "secret")))
            self.denied(s.make_dir((*link, "new")))
            self.denied(s.open_for_writing((*link, "new")))
            self.denied(s.rename(("inside.txt",), (*link, "moved")))
            self.denied(s.remove_file((*link, "secret")))
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])

    def test_dangling_link_to_outside(self) -> None:
        s = self.shell()
        self.denied(s.stat(("dangling_out",)))
        self.denied(s.open_for_writing(("dangling_out",)))
        self.denied(s.open_for_writing(("dangling_out",), 0))
        self.denied(s.make_dir(("dangling_out",)))
        self.assertFalse((self.outside / "missing").exists())

    def test_a_link_out_is_removed_as_a_link(self) -> None:
        s = self.shell()
        for link in (("file_out",), ("dir_out",), ("dangling_out",), ("sub", "deeper")):
            self.successResultOf(s.remove_file(link))
            self.assertFalse(os.path.lexists(self.home.joinpath(*link)))
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])
        self.assertEqual((self.outside / "secret").read_bytes(), b"secret")

    def test_a_link_out_is_renamed_as_a_link(self) -> None:
        s = self.shell()
        self.successResultOf(s.rename(("dir_out",), ("sub", "renamed")))
        moved = self.home / "sub" / "renamed"
        self.assertEqual(os.readlink(moved), str(self.outside))
        self.assertFalse(os.path.lexists(self.home / "dir_out"))
        self.denied(s.list_dir(("sub", "renamed")))  # still not followed
        self.successResultOf(s.rename(("file_out",), ("file_renamed",)))
        self.assertEqual(os.readlink(self.home / "file_renamed"), str(self.outside / "secret"))
        self.denied(s.open_for_reading(("file_renamed",)))
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])
        self.assertEqual((self.outside / "secret").read_bytes(), b"secret")

    def test_a_link_out_cannot_be_renamed_out_or_over_another_link_out(self) -> None:
        s = self.shell()
        self.denied(s.rename(("file_out",), ("dir_out", "moved")))  # into the outside
        self.denied(s.rename(("file_out",), ("dangling_out",)))  # over a link out
        self.denied(s.rename(("sub", "deeper", "secret"), ("got",)))  # a file reached through
        self.assertEqual(os.readlink(self.home / "file_out"), str(self.outside / "secret"))
        self.assertEqual(sorted(os.listdir(self.outside)), ["secret"])

    def test_lstat_describes_the_link_itself(self) -> None:
        s = self.shell()
        info = self.successResultOf(s.lstat(("dir_out",)))
        self.assertTrue(info.is_link)
        self.assertEqual((info.name, info.link_target), ("dir_out", str(self.outside)))
        self.assertTrue(self.successResultOf(s.lstat(("dangling_out",))).is_link)
        self.assertFalse(self.successResultOf(s.lstat(("inside.txt",))).is_link)
        self.denied(s.lstat(("dir_out", "secret")))

    def test_directories_are_not_removed_through_a_link_out(self) -> None:
        s = self.shell()
        (self.outside / "empty").mkdir()
        os.symlink(self.outside / "empty", self.home / "empty_out")
        self.denied(s.remove_dir(("empty_out",)))
        self.assertTrue((self.outside / "empty").is_dir())

    def test_listing_shows_links_without_following(self) -> None:
        entries = {e.name: e for e in self.successResultOf(self.shell().list_dir(()))}
        self.assertTrue(entries["dir_out"].is_link)
        self.assertEqual(entries["dir_out"].link_target, str(self.outside))
        self.assertFalse(entries["inside.txt"].is_link)
        self.assertIsNone(entries["inside.txt"].link_target)

    def test_link_inside_the_home_works(self) -> None:
        os.symlink("inside.txt", self.home / "alias")
        os.symlink("sub", self.home / "subalias")
        s = self.shell()
        info = self.successResultOf(s.stat(("alias",)))
        self.assertEqual((info.name, info.is_file, info.size), ("alias", True, 6))
        reader = self.successResultOf(s.open_for_reading(("alias",)))
        from twisted.internet.testing import StringTransport

        transport = StringTransport()
        self.assertEqual(self.successResultOf(reader.send(transport)), 6)
        self.assertEqual(transport.value(), b"inside")
        self.assertEqual(
            [e.name for e in self.successResultOf(s.list_dir(("subalias",)))], ["deeper"]
        )
        writer = self.successResultOf(s.open_for_writing(("alias",)))
        self.successResultOf(writer.write(b"through"))
        self.successResultOf(writer.commit())
        self.assertTrue((self.home / "alias").is_symlink())  # wrote through the link
        self.assertEqual((self.home / "inside.txt").read_bytes(), b"through")
        self.successResultOf(s.remove_file(("alias",)))  # removes the link only
        self.assertTrue((self.home / "inside.txt").exists())

    def test_no_escape_without_dotdot(self) -> None:
        sibling = self.home.parent / "home2"  # shares the home's name as a prefix
        sibling.mkdir()
        (sibling / "f").write_bytes(b"x")
        os.symlink(sibling, self.home / "prefix_trick")
        s = self.shell()
        self.denied(s.stat(("prefix_trick", "f")))
        for bad in ("..", ".", "", "a/b", "nul\0"):
            self.failureResultOf(s.stat((bad,)), errors.InvalidPath)
            self.failureResultOf(s.make_dir((bad,)), errors.InvalidPath)

    def test_home_reached_through_a_symlink(self) -> None:
        link = self.home.parent / "home_link"
        os.symlink(self.home, link)
        s = FilesystemShell(str(link), "elr", run=sync_run)
        self.assertEqual(self.successResultOf(s.stat(("inside.txt",))).size, 6)
        self.denied(s.stat(("file_out",)))


class TestFilesystemOnly(FilesystemShellTestCase):
    def test_fifo_is_refused_without_hanging(self) -> None:
        os.mkfifo(self.home / "fifo")
        s = self.shell()
        self.failureResultOf(s.open_for_reading(("fifo",)), errors.NotAPlainFile)
        self.failureResultOf(s.open_for_writing(("fifo",)), errors.NotAPlainFile)
        self.failureResultOf(s.open_for_writing(("fifo",), 0), errors.NotAPlainFile)
        self.assertTrue(stat.S_ISFIFO(os.lstat(self.home / "fifo").st_mode))

    def test_awkward_names(self) -> None:
        s = self.shell()
        names = ["with space", "-dash", "héllo wörld ✓", " leading"]
        for name in names:
            writer = self.successResultOf(s.open_for_writing((name,)))
            self.successResultOf(writer.write(name.encode()))
            self.successResultOf(writer.commit())
        listed = [e.name for e in self.successResultOf(s.list_dir(()))]
        self.assertEqual(listed, sorted(names))
        for name in names:
            self.assertEqual((self.home / name).read_bytes(), name.encode())
            self.assertEqual(self.successResultOf(s.stat((name,))).size, len(name.encode()))

    def test_owner_group_and_unique(self) -> None:
        (self.home / "f").write_bytes(b"")
        info = self.successResultOf(self.shell().stat(("f",)))
        st = os.stat(self.home / "f")
        self.assertEqual(info.owner, shell.owner_name(st.st_uid))
        self.assertEqual(info.group, shell.group_name(st.st_gid))
        self.assertEqual(info.unique, f"{st.st_dev:x}g{st.st_ino:x}")
        self.assertEqual(shell.owner_name(2**31 - 7), str(2**31 - 7))  # unknown: numeric

    def test_replace_preserves_mode_and_new_file_gets_umask_mode(self) -> None:
        target = self.home / "f"
        target.write_bytes(b"old")
        os.chmod(target, 0o640)
        s = self.shell()
        writer = self.successResultOf(s.open_for_writing(("f",)))
        parts = [n for n in os.listdir(self.home) if n.startswith(".f.")]
        self.assertEqual(len(parts), 1)
        self.assertTrue(parts[0].endswith(".part"))
        self.successResultOf(writer.commit())
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o640)
        writer = self.successResultOf(s.open_for_writing(("g",)))
        self.successResultOf(writer.commit())
        self.assertEqual(stat.S_IMODE(os.stat(self.home / "g").st_mode), files.DEFAULT_MODE)
        self.assertEqual(sorted(os.listdir(self.home)), ["f", "g"])

    @unittest.skipIf(os.geteuid() == 0, "root ignores permission bits")
    def test_oserrors_become_ftp_errors(self) -> None:
        locked = self.home / "locked"
        locked.mkdir()
        os.chmod(locked, 0)
        try:
            s = self.shell()
            self.failureResultOf(s.list_dir(("locked",)), errors.PermissionDenied)
            self.failureResultOf(s.make_dir(("locked", "x")), errors.PermissionDenied)
        finally:
            os.chmod(locked, 0o700)

    def test_unexpected_oserrors_become_local_errors(self) -> None:
        (self.home / "d").mkdir()

        def failing_scandir(path: str) -> None:
            raise OSError(errno.EIO, "I/O error", path)

        self.patch(os, "scandir", failing_scandir)
        self.failureResultOf(self.shell().list_dir(("d",)), errors.LocalError)
        self.failureResultOf(self.shell().stat(("x" * 300,)), errors.InvalidPath)


class TestRunner(FilesystemShellTestCase):
    def test_every_disk_operation_goes_through_run(self) -> None:
        (self.home / "f").write_bytes(b"data")
        (self.home / "d").mkdir()
        calls: list[tuple] = []

        def recording_run(f, *args, **kwargs) -> defer.Deferred:
            calls.append((f, args, kwargs))
            return defer.Deferred()

        s = FilesystemShell(str(self.home), "elr", run=recording_run)
        operations = [
            lambda: s.stat(("f",)),
            lambda: s.list_dir(("d",)),
            lambda: s.make_dir(("new",)),
            lambda: s.remove_dir(("d",)),
            lambda: s.remove_file(("f",)),
            lambda: s.rename(("f",), ("g",)),
            lambda: s.open_for_reading(("f",)),
            lambda: s.open_for_writing(("f",)),
        ]
        for count, operation in enumerate(operations, 1):
            self.assertNoResult(operation())
            self.assertEqual(len(calls), count)
        self.assertEqual(sorted(os.listdir(self.home)), ["d", "f"])  # nothing happened yet
        f, args, kwargs = calls[2]  # make_dir: running the recorded call does the work
        self.successResultOf(sync_run(f, *args, **kwargs))
        self.assertTrue((self.home / "new").is_dir())

    def test_default_runner_is_a_thread(self) -> None:
        s = FilesystemShell(str(self.home), "elr")
        self.assertIs(s._run, shell.default_run)

    def test_import_does_not_install_a_reactor(self) -> None:
        code = (
            "import sys, twisted_ftpd.fs.shell, twisted_ftpd.listing.ls; "
            "sys.exit('twisted.internet.reactor' in sys.modules)"
        )
        result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
        self.assertEqual(result.returncode, 0)
