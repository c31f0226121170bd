# -*- test-case-name: tests.test_fs_shell -*-
"""Serves one user's home from local disk without blocking the reactor or leaving the home.

Each operation does all of its disk work (confinement checks included) inside a
single ``run`` call, a thread by default, and reports failures as FTPErrors.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat as statmod
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_ftpd.fs.confine import Confinement
from twisted_ftpd.fs.files import DEFAULT_MODE, DiskReadFile, InlineWrites, Runner, WriteFile
from twisted_ftpd.interfaces import IFTPShell, IUsageShell
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.values import FileInfo, Segments

_T = TypeVar("_T")

_OWNERS: dict[int, str] = {}
_GROUPS: dict[int, str] = {}


def default_run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
    """Run ``f`` in the reactor's thread pool (imported late: no reactor at import)."""
    from twisted.internet.threads import deferToThread

    return deferToThread(f, *args, **kwargs)


def _name_of(cache: dict[int, str], lookup: Callable[[int], Any], number: int) -> str:
    name = cache.get(number)
    if name is None:
        try:
            name = lookup(number)[0]
        except KeyError:
            name = str(number)
        cache[number] = name
    return name


def owner_name(uid: int) -> str:
    return _name_of(_OWNERS, pwd.getpwuid, uid)


def group_name(gid: int) -> str:
    return _name_of(_GROUPS, grp.getgrgid, gid)


def file_info(name: str, st: os.stat_result, link_target: str | None = None) -> FileInfo:
    return FileInfo(
        name=name,
        mode=st.st_mode,
        size=st.st_size,
        mtime=st.st_mtime,
        nlink=st.st_nlink,
        owner=owner_name(st.st_uid),
        group=group_name(st.st_gid),
        link_target=link_target,
        unique=f"{st.st_dev:x}g{st.st_ino:x}",
    )


def _guarded(shown: str, f: Callable[..., _T], *args: Any) -> _T:
    try:
        return f(*args)
    except OSError as e:
        raise errors.from_oserror(e, shown) from e


@implementer(IFTPShell, IUsageShell)
class FilesystemShell:
    """A user's home directory on the local filesystem."""

    def __init__(self, root: str, permissions: str, *, run: Runner | None = None,
                 umask: int | None = None, inline_writes: InlineWrites | None = None,
                 resolved: bool = False) -> None:
        """``umask`` sets the modes of new files and directories (``--umask``); without
        it they follow the process umask. ``inline_writes`` lets uploads write their
        blocks on the calling thread instead of through ``run`` (see InlineWrites).
        ``resolved``: ``root`` is its own realpath already (the realm resolves homes in
        its thread), so building a shell on the reactor touches no disk."""
        self.root = root
        self.permissions = permissions
        self._run: Runner = run if run is not None else default_run
        self._confine = Confinement(root, resolved)
        self._umask = umask
        self._file_mode = DEFAULT_MODE if umask is None else 0o666 & ~umask
        self._inline = inline_writes

    def _call(self, path: Segments, f: Callable[..., Any], *args: Any) -> Deferred:
        return self._run(_guarded, display(path), f, *args)

    # IFTPShell

    def stat(self, path: Segments) -> Deferred[FileInfo]:
        return self._call(path, self._stat, path)

    def lstat(self, path: Segments) -> Deferred[FileInfo]:
        return self._call(path, self._lstat, path)

    def list_dir(self, path: Segments) -> Deferred[list[FileInfo]]:
        return self._call(path, self._list_dir, path)

    def make_dir(self, path: Segments) -> Deferred[None]:
        return self._call(path, self._make_dir, path)

    def remove_dir(self, path: Segments) -> Deferred[None]:
        return self._call(path, self._remove_dir, path)

    def remove_file(self, path: Segments) -> Deferred[None]:
        return self._call(path, self._remove_file, path)

    def rename(self, source: Segments, destination: Segments) -> Deferred[None]:
        return self._call(destination, self._rename, source, destination)

    def open_for_reading(self, path: Segments, offset: int = 0) -> Deferred[DiskReadFile]:
        return self._call(path, self._open_for_reading, path, offset)

    def open_for_writing(self, path: Segments, offset: int | None = None) -> Deferred[WriteFile]:
        return self._call(path, self._open_for_writing, path, offset)

    def open_for_appending(self, path: Segments) -> Deferred[WriteFile]:
        return self._call(path, self._open_for_writing, path, None, True)

    def open_unique(self, directory: Segments, prefix: str) -> Deferred[tuple[str, WriteFile]]:
        return self._call(directory, self._open_unique, directory, prefix)

    def set_mtime(self, path: Segments, mtime: float) -> Deferred[None]:
        return self._call(path, self._set_mtime, path, mtime)

    def chmod(self, path: Segments, mode: int) -> Deferred[None]:
        return self._call(path, self._chmod, path, mode)

    # IUsageShell

    @property
    def usage_key(self) -> tuple[str, str]:
        return ("disk", self._confine.real_root)

    def disk_usage(self) -> Deferred[tuple[int, int]]:
        return self._run(tree_usage, self._confine.real_root)

    # Blocking halves, run through self._run.

    def _stat(self, path: Segments) -> FileInfo:
        st = os.stat(self._confine.resolve(path))
        return file_info(path[-1] if path else "/", st)

    def _lstat(self, path: Segments) -> FileInfo:
        if not path:
            return self._stat(path)
        entry = self._confine.resolve_entry(path)
        st = os.lstat(entry)
        target = os.readlink(entry) if statmod.S_ISLNK(st.st_mode) else None
        return file_info(path[-1], st, target)

    def _list_dir(self, path: Segments) -> list[FileInfo]:
        real = self._confine.resolve(path)
        if not statmod.S_ISDIR(os.stat(real).st_mode):
            raise errors.NotADirectory(display(path))
        infos = []
        with os.scandir(real) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    target = os.readlink(entry.path) if statmod.S_ISLNK(st.st_mode) else None
                except FileNotFoundError:  # removed while we were listing
                    continue
                infos.append(file_info(entry.name, st, target))
        infos.sort(key=lambda info: info.name)
        return infos

    def _make_dir(self, path: Segments) -> None:
        real = self._confine.resolve_parent(path)
        os.mkdir(real)
        if self._umask is not None:
            # Set exactly, not through the process umask (twistd's daemon mode makes it 077).
            fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, 0o777 & ~self._umask)
            finally:
                os.close(fd)

    def _remove_dir(self, path: Segments) -> None:
        try:
            os.rmdir(self._confine.resolve_parent(path))
        except FileExistsError as e:  # some systems say EEXIST for "not empty"
            raise errors.DirectoryNotEmpty(display(path)) from e

    def _remove_file(self, path: Segments) -> None:
        # A link is removed as a link, even one pointing out of the home.
        target = self._confine.resolve_entry(path)
        if statmod.S_ISDIR(os.lstat(target).st_mode):
            raise errors.IsADirectory(display(path))
        os.unlink(target)

    def _rename(self, source: Segments, destination: Segments) -> None:
        # The source is moved as it is (a link out of the home stays a link out,
        # still refused wherever it is followed); the destination must be inside.
        old = _guarded(display(source), self._confine.resolve_entry, source)
        _guarded(display(source), os.lstat, old)
        new = self._confine.resolve_parent(destination)
        os.replace(old, new)

    def _open_for_reading(self, path: Segments, offset: int) -> DiskReadFile:
        shown = display(path)
        real = self._confine.resolve(path)
        _require_plain_file(os.stat(real).st_mode, shown)
        # Checked before opening, and O_NONBLOCK keeps a swapped-in fifo from hanging.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(real, flags)
        try:
            _require_plain_file(os.fstat(fd).st_mode, shown)
            # Local files ignore O_NONBLOCK, but a FUSE file system in direct I/O
            # mode may not, and an unbuffered read would take its EAGAIN for the end.
            os.set_blocking(fd, True)
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            # Unbuffered: reads are of CHUNK_SIZE already, and a buffered reader would
            # cost two more system calls to set up (an isatty ioctl and an lseek).
            fileobj = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        return DiskReadFile(fileobj, shown, offset)

    def _open_for_writing(self, path: Segments, offset: int | None,
                          append: bool = False) -> WriteFile:
        shown = display(path)
        if not path:
            raise errors.IsADirectory(shown)
        target = self._confine.resolve_parent(path)
        if os.path.islink(target):  # confined by resolve_parent; write through it
            target = os.path.realpath(target)
        return WriteFile.open(target, offset, run=self._run, display_path=shown, append=append,
                              mode=self._file_mode, inline=self._inline)

    def _open_unique(self, directory: Segments, prefix: str) -> tuple[str, WriteFile]:
        real = self._confine.resolve(directory)
        if not statmod.S_ISDIR(os.stat(real).st_mode):
            raise errors.NotADirectory(display(directory))
        return WriteFile.create_unique(real, prefix, run=self._run,
                                       display_dir=display(directory), mode=self._file_mode,
                                       inline=self._inline)

    def _set_mtime(self, path: Segments, mtime: float) -> None:
        real = self._confine.resolve(path)
        os.utime(real, (os.stat(real).st_atime, mtime))

    def _chmod(self, path: Segments, mode: int) -> None:
        if not path:  # the home's own mode is the administrator's, not the user's
            raise errors.PermissionDenied("/")
        # Permission bits only: no setuid, setgid or sticky bits from FTP clients.
        os.chmod(self._confine.resolve(path), mode & 0o777)


def tree_usage(root: str) -> tuple[int, int]:
    """Bytes and regular files below ``root``, links not followed (blocking)."""
    total = files = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                found = list(entries)
        except OSError:  # unreadable or gone meanwhile: what cannot be read is not counted
            continue
        for entry in found:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                    files += 1
            except OSError:
                continue
    return total, files


def _require_plain_file(mode: int, shown: str) -> None:
    if statmod.S_ISDIR(mode):
        raise errors.IsADirectory(shown)
    if not statmod.S_ISREG(mode):
        raise errors.NotAPlainFile(shown)
