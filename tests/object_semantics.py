"""The shell conformance suite as object storage answers it (twisted_ftpd.fs.objects).

Mixed into the S3 tests (a real SeaweedFS) and the fast ones (fsspec's memory
filesystem). Every conformance case runs; those whose disk answer objects cannot
give (partial uploads kept, directories with contents renamed, chmod, set times,
staged uploads for --upload-check) are replaced by the object answer, which the
README's "Object storage" section documents. The hooks are the conformance ones,
plus ``pending_uploads`` for stores with multipart uploads.
"""

from __future__ import annotations

from tests.shell_conformance import BIG, ShellConformanceMixin
from twisted_ftpd.fs.objects import PART_SIZE
from twisted_ftpd.interfaces import IStagedWriteFile
from twisted_ftpd.protocol import errors


class ObjectSemanticsMixin(ShellConformanceMixin):
    uploads_visible_early = False  # APPE's object appears on completion, not at APPE
    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        return []

    def names(self, path: tuple[str, ...] = ()) -> list[str]:
        return [e.name for e in self.successResultOf(self.shell().list_dir(path))]

    # Uploads: complete or nothing

    def test_abort_keeps_a_partial_new_file(self) -> None:
        # Replaced: no partial object is kept; an aborted upload leaves nothing behind.
        self.abort(self.upload(("new",), [b"part", b"ial"]))
        self.assertFalse(self.exists(("new",)))
        self.assertEqual(self.names(), [])

    def test_abort_after_several_parts_leaves_no_multipart_upload(self) -> None:
        part = b"p" * PART_SIZE
        writer = self.upload(("big",), [part, part, b"tail"])
        self.abort(writer)
        self.assertFalse(self.exists(("big",)))
        self.assertEqual(self.pending_uploads(), [])

    def test_upload_of_several_parts_commits_whole(self) -> None:
        part = bytes(range(256)) * (PART_SIZE // 256)
        writer = self.upload(("big",), [part, part, BIG])
        self.assertFalse(self.exists(("big",)))
        self.successResultOf(writer.commit())
        self.assertEqual(self.read_back(("big",)), part + part + BIG)
        self.assertEqual(self.pending_uploads(), [])

    # Directories: prefixes with markers

    def test_empty_directory_exists_lists_and_survives_its_last_file(self) -> None:
        shell = self.shell()
        self.successResultOf(shell.make_dir(("d",)))
        self.assertEqual(self.names(), ["d"])
        self.assertEqual(self.names(("d",)), [])
        self.create_file(("d", "f"), b"x")
        self.successResultOf(shell.remove_file(("d", "f")))
        self.assertTrue(self.successResultOf(shell.stat(("d",))).is_dir)
        self.successResultOf(shell.remove_dir(("d",)))
        self.failureResultOf(shell.stat(("d",)), errors.FileNotFound)

    def test_rename_dir_with_contents(self) -> None:
        # Replaced: refused with a reason; nothing moves.
        self.create_dir(("d",))
        self.create_file(("d", "f"), b"inner")
        failure = self.failureResultOf(self.shell().rename(("d",), ("e",)), errors.StoreCannot)
        self.assertIn("not empty", failure.value.reply().text)
        self.assertEqual(self.read_back(("d", "f")), b"inner")
        self.assertFalse(self.exists(("e",)))

    def test_rename_dir_over_empty_dir(self) -> None:
        # Replaced: an empty directory moves (over an empty one too).
        self.create_dir(("d",))
        self.create_dir(("empty",))
        self.successResultOf(self.shell().rename(("d",), ("empty",)))
        self.successResultOf(self.shell().rename(("empty",), ("new",)))
        self.assertEqual(self.names(), ["new"])
        self.assertTrue(self.successResultOf(self.shell().stat(("new",))).is_dir)

    def test_rename_file_out_of_a_directory_keeps_the_directory(self) -> None:
        self.create_dir(("d",))
        self.create_file(("d", "f"), b"data")
        self.successResultOf(self.shell().rename(("d", "f"), ("g",)))
        self.assertEqual(self.names(), ["d", "g"])
        self.assertEqual(self.read_back(("g",)), b"data")

    # What objects cannot do

    def test_set_mtime(self) -> None:
        # Replaced: MFMT is refused (550) with the reason; FEAT leaves MFMT out.
        self.create_file(("f",), b"x")
        shell = self.shell()
        failure = self.failureResultOf(shell.set_mtime(("f",), 1e9), errors.StoreCannot)
        self.assertEqual(failure.value.reply().code, 550)
        self.assertIn("object storage", failure.value.reply().text)
        self.failureResultOf(shell.set_mtime(("missing",), 0.0), errors.FileNotFound)
        self.assertIn("MFMT", shell.unsupported_features)

    def test_chmod_sets_permission_bits_only(self) -> None:
        # Replaced: SITE CHMOD is refused (550): objects have no permission bits.
        self.create_file(("f",), b"x")
        failure = self.failureResultOf(self.shell().chmod(("f",), 0o600), errors.StoreCannot)
        self.assertIn("permission bits", failure.value.reply().text)

    def test_replace_keeps_the_permission_bits(self) -> None:
        # Replaced: there are no bits to keep; a replaced object is a plain file again.
        self.create_file(("f",), b"old")
        self.successResultOf(self.upload(("f",), [b"new"]).commit())
        info = self.successResultOf(self.shell().stat(("f",)))
        self.assertEqual((info.is_file, info.size), (True, 3))

    def test_staged_shows_the_whole_upload_before_commit(self) -> None:
        # Replaced: an object upload cannot be shown to --upload-check, which then
        # refuses it (fail closed: twisted_ftpd.hooks).
        writer = self.upload(("f",), [b"x"])
        self.assertFalse(IStagedWriteFile.providedBy(writer))
        self.abort(writer)

    def test_discard_keeps_nothing_and_the_old_file(self) -> None:
        # Replaced: abort already keeps nothing (see test_abort_keeps_a_partial_new_file).
        self.create_file(("f",), b"old")
        self.abort(self.upload(("f",), [b"new"]))
        self.assertEqual(self.read_back(("f",)), b"old")

    def test_discard_removes_a_file_made_in_place_only(self) -> None:
        # Replaced: nothing is ever made in place.
        self.abort(self.append(("new",), [b"x"]))
        self.assertFalse(self.exists(("new",)))

    # Confinement: the home is a prefix, and no name leaves it

    def test_names_that_could_leave_the_prefix_are_refused(self) -> None:
        shell = self.shell()
        for bad in ("..", ".", "", "a/b", "a\\b", "..\\..", "nul\0"):
            self.failureResultOf(shell.stat((bad,)), errors.InvalidPath)
            self.failureResultOf(shell.open_for_writing((bad,)), errors.InvalidPath)
            self.failureResultOf(shell.rename(("x",), (bad,)), errors.InvalidPath)

    def test_encoded_names_are_names(self) -> None:
        # %2e%2e and friends are plain characters in a key, never decoded.
        # So are glob characters: nothing expands them.
        names = ["%2e%2e", "%2F", "..%2f..", "....", "x[1]*?.txt", "x1.txt"]
        for name in names:
            self.successResultOf(self.upload((name,), [name.encode()]).commit())
            self.assertEqual(self.read_back((name,)), name.encode())
        self.assertEqual(self.names(), sorted(names))
        self.successResultOf(self.shell().rename(("x[1]*?.txt",), ("y[2]",)))
        self.assertEqual(self.read_back(("x1.txt",)), b"x1.txt")
        self.assertEqual(self.read_back(("y[2]",)), b"x[1]*?.txt")
