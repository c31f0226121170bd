"""The seams between the FTP protocol and storage: shell, readable and writable files.

This module holds only the zope Interfaces. The values that cross them are
plain types in ``twisted_ftpd.protocol.values`` (imported here, so the
contracts below can name them): paths are ``Segments``, tuples of names
relative to the user's home (``()`` is the home itself), already normalised by
``twisted_ftpd.protocol.paths``: no ``.``/``..``/empty segments, no NUL, no
``/``; entries are ``FileInfo``. Every operation that may touch a disk returns
a Deferred so a backend can run it off the reactor thread. Failures are
``twisted_ftpd.protocol.errors.FTPError`` subclasses, which already know their
FTP reply.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

from twisted_ftpd.protocol.values import FileInfo, Segments, Staged

__all__ = ["FileInfo", "IFTPShell", "IFileDescriptorReadFile", "IReadFile", "IStagedWriteFile",
           "IUsageShell", "IWriteFile", "Segments", "Staged"]


class IReadFile(Interface):
    """An open file being downloaded."""

    def send(consumer):  # noqa: N805 - zope interface methods omit self
        """Stream the file from its open offset into ``consumer`` (an ``IConsumer``).

        Registers itself as a streaming (push) producer on the consumer, reads in
        large chunks and honours pause/resume, so memory stays flat.

        @return: Deferred firing with the number of bytes sent once the last chunk
            has been written to the consumer; failing with
            L{twisted_ftpd.protocol.errors.TransferAborted} if the consumer stops it, or an
            FTPError on a read error. The file is closed either way.
        """

    def close():
        """Release the file without sending (idempotent)."""


class IFileDescriptorReadFile(IReadFile):
    """A download read from a real file, which the server may send from the kernel's
    page cache straight to the socket (``os.sendfile``) instead of through ``send``.

    Optional: a backend without real files provides plain ``IReadFile``.
    """

    def file_descriptor():
        """The open file's OS descriptor and the offset the download starts at.

        @return: tuple[int, int]. The server reads the descriptor with explicit
            offsets (its position is left alone, so ``send`` still works after a
            refusal) and calls ``close()`` when done, as after ``send``.
        """


class IWriteFile(Interface):
    """A file being uploaded; data becomes visible under its name only on commit."""

    def write(data):  # noqa: N805
        """Append ``data`` (bytes).

        @return: Deferred firing when the bytes are written; the caller sends no
            further write until it fires (the data connection is paused meanwhile).
        """

    def commit():
        """Flush, close and move the upload into place.

        @return: Deferred firing when the file is complete under its final name.
        """

    def abort():
        """Give up on an upload that broke off.

        An upload that would have replaced an existing file is discarded, so the
        old file survives intact; an upload to a new name is kept as a partial
        file so the client can resume it.

        @return: Deferred firing when done (never fails).
        """


class IStagedWriteFile(IWriteFile):
    """An upload that can be looked at, and thrown away, before it lands
    (``--upload-check``). The disk and memory backends provide it."""

    def staged():
        """Flush what was written, so another process can read all of it.

        @return: Deferred[Staged]: where the complete upload lies now (the temporary
            file, or the file itself when written in place), its size, and where it
            lands on commit; a backend without real files gives the bytes instead.
        """

    def discard():
        """Give up on the upload and keep nothing of it: a temporary file is removed
        (never kept as a partial), a file this upload created in place is removed,
        an existing file written in place is left as it now is. Later ``abort`` and
        ``discard`` calls do nothing.

        @return: Deferred firing when done (never fails).
        """


class IFTPShell(Interface):
    """One user's view of a file tree, confined to its home."""

    permissions = Attribute("str of pyftpdlib permission letters granted (elradfmwMT)")

    def stat(path):  # noqa: N805
        """Information about ``path``, following symbolic links (inside the root).

        @return: Deferred[FileInfo]; fails with FileNotFound, PermissionDenied...
        """

    def lstat(path):  # noqa: N805
        """Information about the entry ``path`` itself: a symbolic link as the last
        segment is described, not followed (the directories above it are, and must
        lie inside the root), so a link can be renamed wherever it points.

        @return: Deferred[FileInfo]; fails with FileNotFound, PermissionDenied...
        """

    def list_dir(path):  # noqa: N805
        """The entries of directory ``path``, sorted by name, links not followed.

        @return: Deferred[list[FileInfo]]; fails with NotADirectory, FileNotFound...
        """

    def make_dir(path):  # noqa: N805
        """Create directory ``path``. @return: Deferred[None]."""

    def remove_dir(path):  # noqa: N805
        """Remove the empty directory ``path``. @return: Deferred[None]."""

    def remove_file(path):  # noqa: N805
        """Remove the file ``path`` (not a directory); a symbolic link is removed as a
        link, never followed. @return: Deferred[None]."""

    def rename(source, destination):  # noqa: N805
        """Rename ``source`` to ``destination``; a symbolic link ``source`` is moved as
        a link, never followed. @return: Deferred[None]."""

    def open_for_reading(path, offset=0):  # noqa: N805
        """Open regular file ``path`` positioned at ``offset``.

        @return: Deferred[IReadFile]; fails with IsADirectory, FileNotFound...
        """

    def open_for_writing(path, offset=None):  # noqa: N805
        """Start an upload to ``path``.

        ``offset`` None replaces the file on commit (written aside, then renamed);
        an integer writes into the existing file from that position (REST+STOR).

        @return: Deferred[IWriteFile]; fails with IsADirectory, FileNotFound (no
            parent directory), PermissionDenied...
        """

    def open_for_appending(path):  # noqa: N805
        """Start an upload that adds to the end of ``path`` (created if missing, APPE).

        @return: Deferred[IWriteFile]; commit and abort both just close the file.
        """

    def open_unique(directory, prefix):  # noqa: N805
        """Start an upload to a new file in ``directory`` whose name no file has (STOU).

        @return: Deferred[tuple[str, IWriteFile]] with the chosen name.
        """

    def set_mtime(path, mtime):  # noqa: N805
        """Set the modification time of ``path`` (seconds since the epoch, UTC).

        @return: Deferred[None].
        """

    def chmod(path, mode):  # noqa: N805
        """Set the permission bits (0-0o777) of ``path``; the home itself (``()``) is
        refused with PermissionDenied. @return: Deferred[None]."""


class IUsageShell(IFTPShell):
    """A shell that can measure its home, for per-user quotas."""

    usage_key = Attribute(
        "Hashable, equal for every shell on the same home tree, so that all the "
        "sessions in one home share one usage count")

    def disk_usage():
        """The total size and the number of regular files below the home; symbolic
        links are neither followed nor counted, unreadable directories are skipped.

        @return: Deferred[tuple[int, int]] (bytes, files), computed off the reactor.
        """
