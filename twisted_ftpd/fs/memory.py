# -*- test-case-name: tests.test_fs_memory -*-
"""Serves homes from a shared in-memory tree, so tests and embedders need no disk or threads."""

from __future__ import annotations

import functools
import itertools
import os
import random
import stat as statmod
import string
import time
from collections.abc import Callable
from typing import BinaryIO, ParamSpec, TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from twisted_ftpd.fs.files import ReadFile
from twisted_ftpd.interfaces import IFTPShell, IStagedWriteFile, IUsageShell, IWriteFile
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.values import FileInfo, Segments, Staged

_P = ParamSpec("_P")
_T = TypeVar("_T")

FILE_MODE = statmod.S_IFREG | 0o644
DIR_MODE = statmod.S_IFDIR | 0o755
NAME_MAX = 255  # bytes, as on common disk filesystems
_UNIQUE_CHARS = string.ascii_lowercase + string.digits
_ids = itertools.count(1)

Clock = Callable[[], float]


class _Node:
    """A file (``children`` None) or a directory; ``data`` is a bytearray only mid-write."""

    __slots__ = ("mode", "mtime", "data", "children", "unique")

    def __init__(self, mode: int, mtime: float, data: bytes = b"") -> None:
        self.mode = mode
        self.mtime = mtime
        self.data: bytes | bytearray = data
        self.children: dict[str, _Node] | None = {} if statmod.S_ISDIR(mode) else None
        self.unique = f"mem{next(_ids)}"

    def info(self, name: str) -> FileInfo:
        if self.children is None:
            size, nlink = len(self.data), 1
        else:
            size = 0
            nlink = 2 + sum(child.children is not None for child in self.children.values())
        return FileInfo(name=name, mode=self.mode, size=size, mtime=self.mtime,
                        nlink=nlink, unique=self.unique)


def _split(path: str) -> Segments:
    return tuple(part for part in path.split("/") if part)


class MemoryFilesystem:
    """A tree of directories and byte-string files that several MemoryShells can share."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self.root = _Node(DIR_MODE, clock())

    def walk(self, segments: Segments, shown: str) -> _Node:
        """The node at ``segments`` from the root; FTPErrors name ``shown``."""
        node = self.root
        for name in segments:
            if node.children is None:
                raise errors.NotADirectory(shown)
            child = node.children.get(name)
            if child is None:
                raise errors.FileNotFound(shown)
            node = child
        return node

    def directory(self, segments: Segments, shown: str) -> dict[str, _Node]:
        """The entries of the directory at ``segments``, for adding or removing one."""
        children = self.walk(segments, shown).children
        if children is None:
            raise errors.NotADirectory(shown)
        return children

    def touch(self, segments: Segments, when: float) -> None:
        """Stamp a directory whose entries changed, as a disk would."""
        self.walk(segments, "").mtime = when

    # Conveniences for tests, with "/"-separated paths from the root.

    def makedirs(self, path: str) -> None:
        node = self.root
        for name in _split(path):
            assert node.children is not None
            if name not in node.children:
                node.children[name] = _Node(DIR_MODE, self.clock())
            node = node.children[name]
            if node.children is None:
                raise errors.NotADirectory(path)

    def put(self, path: str, data: bytes) -> None:
        segments = _split(path)
        self.makedirs("/".join(segments[:-1]))
        children = self.directory(segments[:-1], path)
        if (old := children.get(segments[-1])) is not None and old.children is not None:
            raise errors.IsADirectory(path)
        children[segments[-1]] = _Node(FILE_MODE, self.clock(), bytes(data))

    def read(self, path: str) -> bytes:
        node = self.walk(_split(path), path)
        if node.children is not None:
            raise errors.IsADirectory(path)
        return bytes(node.data)

    def exists(self, path: str) -> bool:
        try:
            self.walk(_split(path), path)
        except errors.FTPError:
            return False
        return True


class _ViewReader:
    """The read/close half of a binary file, over a memoryview, for ReadFile."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._position = 0

    def read(self, size: int) -> bytes:
        chunk = bytes(self._view[self._position:self._position + size])
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        self._view.release()


class MemoryReadFile(ReadFile):
    """ReadFile's push producer (CHUNK_SIZE chunks, pause/resume) over a snapshot of bytes."""

    def __init__(self, data: bytes, offset: int = 0, display_path: str = "") -> None:
        super().__init__(cast(BinaryIO, _ViewReader(memoryview(data)[offset:])), display_path)


@implementer(IWriteFile, IStagedWriteFile)
class MemoryWriteFile:
    """Writes into ``node`` from ``position`` (or at its end when appending).

    With a ``landing`` (filesystem, target segments, shown path, replacing) the
    node is detached until commit puts it under the target name; an abort lands
    it only if nothing was there to replace and nothing has appeared since.
    """

    def __init__(self, node: _Node, clock: Clock, position: int = 0, *, append: bool = False,
                 landing: tuple[MemoryFilesystem, Segments, str, bool] | None = None) -> None:
        self._node, self._clock, self._position, self._append = node, clock, position, append
        self._landing = landing
        self._finished = False
        # Set by the shell when this upload made the node in place: (its directory, name).
        self.created_in: tuple[dict[str, _Node], str] | None = None

    def write(self, data: bytes) -> Deferred[None]:
        if self._finished:
            raise RuntimeError("MemoryWriteFile.write after commit or abort")
        node = self._node
        if not isinstance(node.data, bytearray):
            node.data = bytearray(node.data)  # readers were handed bytes, never this
        if self._append:
            self._position = len(node.data)
        node.data.extend(bytes(max(0, self._position - len(node.data))))
        node.data[self._position:self._position + len(data)] = data
        self._position += len(data)
        node.mtime = self._clock()
        return succeed(None)

    def commit(self) -> Deferred[None]:
        if self._finished:
            raise RuntimeError("MemoryWriteFile.commit after commit or abort")
        return _fired(self._settle)(True)

    def abort(self) -> Deferred[None]:
        if not self._finished:
            try:
                self._settle(False)
            except errors.FTPError:
                pass  # the upload's directory went away: nothing to keep
        return succeed(None)

    def staged(self) -> Deferred[Staged]:
        if self._finished:
            raise RuntimeError("MemoryWriteFile.staged after commit or abort")
        data = bytes(self._node.data)
        return succeed(Staged(None, len(data), data=data))

    def discard(self) -> Deferred[None]:
        if not self._finished:
            self._finished = True
            node = self._node
            if isinstance(node.data, bytearray):
                node.data = bytes(node.data)
            if self._landing is None and self.created_in is not None:
                entries, name = self.created_in
                if entries.get(name) is node:  # a detached node simply never lands
                    del entries[name]
        return succeed(None)

    def _settle(self, commit: bool) -> None:
        self._finished = True
        node = self._node
        if isinstance(node.data, bytearray):
            node.data = bytes(node.data)
        if self._landing is None:
            return
        fs, target, shown, replacing = self._landing
        entries = fs.directory(target[:-1], shown)
        old = entries.get(target[-1])
        if not commit and (replacing or old is not None or not node.data):
            return  # the old file survives intact; an empty partial is not kept
        if old is not None and old.children is not None:
            raise errors.IsADirectory(shown)
        node.mtime = self._clock()
        entries[target[-1]] = node
        fs.touch(target[:-1], node.mtime)


def _fired(f: Callable[_P, _T]) -> Callable[_P, Deferred[_T]]:
    """Run ``f`` at once; its result or FTPError comes back as an already-fired Deferred."""

    @functools.wraps(f)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        try:
            return succeed(f(*args, **kwargs))
        except errors.FTPError as e:
            return fail(e)

    return run


@implementer(IFTPShell, IUsageShell)
class MemoryShell:
    """One user's view of a MemoryFilesystem below ``home``, raising as FilesystemShell does.

    Every method returns an already-fired Deferred: nothing here blocks.
    """

    def __init__(self, fs: MemoryFilesystem, permissions: str, *, home: Segments = (),
                 clock: Clock = time.time) -> None:
        self.fs = fs
        self.permissions = permissions
        self.home = tuple(home)
        self._clock = clock

    # IFTPShell

    @_fired
    def stat(self, path: Segments) -> FileInfo:
        return self._node(path).info(path[-1] if path else "/")

    @_fired
    def lstat(self, path: Segments) -> FileInfo:
        return self._node(path).info(path[-1] if path else "/")  # there are no links

    @_fired
    def list_dir(self, path: Segments) -> list[FileInfo]:
        children = self._node(path).children
        if children is None:
            raise errors.NotADirectory(display(path))
        return [children[name].info(name) for name in sorted(children)]

    @_fired
    def make_dir(self, path: Segments) -> None:
        entries = self._entries(path)
        if path[-1] in entries:
            raise errors.FileExists(display(path))
        entries[path[-1]] = _Node(DIR_MODE, self._clock())
        self._touch(path[:-1])

    @_fired
    def remove_dir(self, path: Segments) -> None:
        self._remove(path, directory=True)

    @_fired
    def remove_file(self, path: Segments) -> None:
        self._remove(path, directory=False)

    @_fired
    def rename(self, source: Segments, destination: Segments) -> None:
        old_entries = self._entries(source)
        node = old_entries.get(source[-1])
        if node is None:
            raise errors.FileNotFound(display(source))
        new_entries, shown = self._entries(destination), display(destination)
        old, new = self._absolute(source), self._absolute(destination)
        if old == new:
            return
        if new[:len(old)] == old:
            raise errors.InvalidPath(shown)  # a directory into itself (EINVAL)
        if old[:len(new)] == new:
            raise errors.DirectoryNotEmpty(shown)  # over its own ancestor (ENOTEMPTY)
        victim = new_entries.get(destination[-1])
        if victim is not None:
            if node.children is None and victim.children is not None:
                raise errors.IsADirectory(shown)
            if node.children is not None and victim.children is None:
                raise errors.NotADirectory(shown)
            if victim.children:
                raise errors.DirectoryNotEmpty(shown)
        new_entries[destination[-1]] = old_entries.pop(source[-1])
        self._touch(source[:-1])
        self._touch(destination[:-1])

    @_fired
    def open_for_reading(self, path: Segments, offset: int = 0) -> MemoryReadFile:
        node, shown = self._node(path), display(path)
        if node.children is not None:
            raise errors.IsADirectory(shown)
        if offset < 0:
            raise errors.InvalidPath(shown)
        return MemoryReadFile(bytes(node.data), offset, shown)  # no copy unless mid-write

    @_fired
    def open_for_writing(self, path: Segments, offset: int | None = None) -> MemoryWriteFile:
        return self._open(path, offset, append=False)

    @_fired
    def open_for_appending(self, path: Segments) -> MemoryWriteFile:
        return self._open(path, None, append=True)

    @_fired
    def open_unique(self, directory: Segments, prefix: str) -> tuple[str, MemoryWriteFile]:
        entries = self.fs.directory(self._absolute(directory), display(directory))
        while (name := prefix + "".join(random.choices(_UNIQUE_CHARS, k=6))) in entries:
            pass
        self._absolute((name,))  # a prefix with "/" or NUL cannot make a name
        entries[name] = node = _Node(FILE_MODE, self._clock())
        self._touch(directory)
        upload = MemoryWriteFile(node, self._clock)
        upload.created_in = (entries, name)
        return name, upload

    @_fired
    def set_mtime(self, path: Segments, mtime: float) -> None:
        self._node(path).mtime = mtime

    @_fired
    def chmod(self, path: Segments, mode: int) -> None:
        if not path:  # the home's own mode is not the user's to change
            raise errors.PermissionDenied("/")
        node = self._node(path)
        node.mode = statmod.S_IFMT(node.mode) | (mode & 0o777)  # no setuid/setgid/sticky

    # IUsageShell

    @property
    def usage_key(self) -> tuple[object, Segments]:
        return (self.fs, self.home)

    @_fired
    def disk_usage(self) -> tuple[int, int]:
        total = files = 0
        stack = [self.fs.walk(self.home, "/")]
        while stack:
            node = stack.pop()
            if node.children is None:
                total, files = total + len(node.data), files + 1
            else:
                stack.extend(node.children.values())
        return total, files

    # Helpers, raising FTPErrors where FilesystemShell's disk calls would.

    def _absolute(self, path: Segments) -> Segments:
        for name in path:
            if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name
                    or "\0" in name or len(os.fsencode(name)) > NAME_MAX):
                raise errors.InvalidPath(display(tuple(map(str, path))))
        return self.home + tuple(path)

    def _node(self, path: Segments) -> _Node:
        return self.fs.walk(self._absolute(path), display(path))

    def _entries(self, path: Segments) -> dict[str, _Node]:
        """The directory holding ``path``, which cannot be the home itself."""
        absolute = self._absolute(path)
        if not path:
            raise errors.PermissionDenied("/")
        return self.fs.directory(absolute[:-1], display(path))

    def _touch(self, directory: Segments) -> None:
        self.fs.touch(self.home + directory, self._clock())

    def _remove(self, path: Segments, *, directory: bool) -> None:
        entries, shown = self._entries(path), display(path)
        node = entries.get(path[-1])
        if node is None:
            raise errors.FileNotFound(shown)
        if directory and node.children is None:
            raise errors.NotADirectory(shown)
        if not directory and node.children is not None:
            raise errors.IsADirectory(shown)
        if node.children:
            raise errors.DirectoryNotEmpty(shown)
        del entries[path[-1]]
        self._touch(path[:-1])

    def _open(self, path: Segments, offset: int | None, *, append: bool) -> MemoryWriteFile:
        shown = display(path)
        if not path:
            raise errors.IsADirectory(shown)
        entries = self._entries(path)
        node = entries.get(path[-1])
        if node is not None and node.children is not None:
            raise errors.IsADirectory(shown)
        if offset is None and not append:  # replace on commit: write into a detached node
            mode = node.mode if node is not None else FILE_MODE
            landing = (self.fs, self._absolute(path), shown, node is not None)
            return MemoryWriteFile(_Node(mode, self._clock()), self._clock, landing=landing)
        position = offset or 0
        if node is None and position != 0:
            raise errors.FileNotFound(shown)
        if position < 0:
            raise errors.InvalidPath(shown)
        created = node is None
        if node is None:
            node = entries[path[-1]] = _Node(FILE_MODE, self._clock())
            self._touch(path[:-1])
        elif not append:  # truncated (or extended) at the offset when opened, as on disk
            node.data = bytes(node.data[:position]) + bytes(max(0, position - len(node.data)))
            node.mtime = self._clock()
        upload = MemoryWriteFile(node, self._clock, position, append=append)
        if created:
            upload.created_in = (entries, path[-1])
        return upload
