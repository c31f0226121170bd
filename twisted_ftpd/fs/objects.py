# -*- test-case-name: tests.test_fs_objects,tests.integration.test_s3_shell -*-
"""Serves one user's tree from any fsspec filesystem: S3 and friends, or memory/local.

A user's home is a key prefix; every FTP path becomes ``prefix/seg/seg`` after the
segments were checked (no ``..``, ``/``, ``\\``, NUL), so no request reaches a key
outside it. Every store call runs through ``run`` (a bounded pool of its own, in
production): the store's client blocks (s3fs runs its asyncio loop in a thread of
its own), so nothing here ever runs on the reactor thread.

Object stores (``markers`` true) have no directories: a directory is a prefix, and
an empty one exists through a zero-byte marker object ``name/``. Their uploads are
multipart uploads that appear whole on completion or not at all. Other fsspec
filesystems have real directories; there an upload is written to a hidden
temporary name and moved into place on commit.
"""

from __future__ import annotations

import os
import random
import stat as statmod
import string
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from twisted_ftpd.fs.files import Runner
from twisted_ftpd.interfaces import IFTPShell, IUsageShell
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.values import FileInfo, Segments

from .object_files import PART_SIZE, READ_BLOCK, ObjectReadFile, ObjectWriteFile, store_error

log = Logger()

FILE_MODE = statmod.S_IFREG | 0o644
DIR_MODE = statmod.S_IFDIR | 0o755
NAME_MAX = 255  # bytes per name, as on disk: keeps keys well under S3's 1024
_BAD_NAMES = frozenset({"", ".", ".."})
_UNIQUE_CHARS = string.ascii_lowercase + string.digits

#: Protocols whose stores have no directories (markers stand in for them).
OBJECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})


def _mtime(info: dict[str, Any], default: float) -> float:
    for field in ("LastModified", "mtime", "last_modified", "created", "updated"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return default


@implementer(IFTPShell, IUsageShell)
class ObjectShell:
    """A user's tree below ``root`` (``bucket/prefix`` for S3) of the fsspec ``fs``."""

    #: FEAT lines this backend cannot honour: object times are the store's own.
    unsupported_features = frozenset({"MFMT"})
    #: Entries per listing page (S3 gives at most 1000).
    PAGE_SIZE = 1000

    def __init__(self, fs: Any, root: str, permissions: str, *, run: Runner,
                 markers: bool | None = None, clock: Callable[[], float] = time.time) -> None:
        self.fs = fs
        self.root = fs._strip_protocol(root).rstrip("/")  # the store's own spelling
        self.permissions = permissions
        self._run = run
        self.markers = (any(p in OBJECT_PROTOCOLS for p in _protocols(fs))
                        if markers is None else markers)
        self._clock = clock

    # Paths

    def key(self, path: Segments) -> str:
        """The store key of ``path``; InvalidPath for any name that could step outside."""
        for name in path:
            if (not isinstance(name, str) or name in _BAD_NAMES or "/" in name or "\\" in name
                    or "\0" in name or len(os.fsencode(name)) > NAME_MAX):
                raise errors.InvalidPath(display(tuple(map(str, path))))
        return "/".join((self.root, *path))

    def _call(self, path: Segments, operation: str, f: Callable[..., Any], *args: Any,
              ) -> Deferred:
        shown = display(tuple(map(str, path)))

        def guarded() -> Any:
            key = self.key(path)
            try:
                return f(key, *args)
            except Exception as e:
                raise store_error(e, shown, operation, key) from e

        return self._run(guarded)

    # IFTPShell

    def stat(self, path: Segments) -> Deferred[FileInfo]:
        return self._call(path, "stat", self._stat, path)

    lstat = stat  # there are no links

    def list_dir(self, path: Segments) -> Deferred[list[FileInfo]]:
        return self._call(path, "list", self._list_dir, path)

    def list_page(self, path: Segments, token: str | None = None,
                  ) -> Deferred[tuple[list[FileInfo], str | None]]:
        """One page of ``path``'s entries (sorted within the page; pages follow the
        store's key order) and the token of the next page, None after the last. An S3
        store is asked for one page per call; other stores give everything at once."""
        return self._call(path, "list", self._list_page, path, token)

    def make_dir(self, path: Segments) -> Deferred[None]:
        return self._call(path, "mkdir", self._make_dir, path)

    def remove_dir(self, path: Segments) -> Deferred[None]:
        return self._call(path, "rmdir", self._remove_dir, path)

    def remove_file(self, path: Segments) -> Deferred[None]:
        return self._call(path, "delete", self._remove_file, path)

    def rename(self, source: Segments, destination: Segments) -> Deferred[None]:
        return self._call(destination, "rename", self._rename, source, destination)

    def open_for_reading(self, path: Segments, offset: int = 0) -> Deferred[ObjectReadFile]:
        return self._call(path, "open", self._open_for_reading, path, offset)

    def open_for_writing(self, path: Segments, offset: int | None = None,
                         ) -> Deferred[ObjectWriteFile]:
        return self._call(path, "upload", self._open_for_writing, path, offset, False)

    def open_for_appending(self, path: Segments) -> Deferred[ObjectWriteFile]:
        return self._call(path, "append", self._open_for_writing, path, None, True)

    def open_unique(self, directory: Segments, prefix: str,
                    ) -> Deferred[tuple[str, ObjectWriteFile]]:
        return self._call(directory, "upload", self._open_unique, directory, prefix)

    def set_mtime(self, path: Segments, mtime: float) -> Deferred[None]:
        return self._call(path, "set time", self._refuse, path,
                          "objects keep the time the store gave them")

    def chmod(self, path: Segments, mode: int) -> Deferred[None]:
        return self._call(path, "chmod", self._refuse, path, "objects have no permission bits")

    # IUsageShell

    @property
    def usage_key(self) -> tuple[str, str, str]:
        return ("objects", str(self.fs.protocol), self.root)

    def disk_usage(self) -> Deferred[tuple[int, int]]:
        return self._call((), "usage", self._disk_usage)

    # Blocking halves: ``key`` is the checked key of the path they were called for.

    def _info(self, key: str) -> dict[str, Any]:
        return self.fs.info(key)

    def _exists(self, key: str) -> bool:
        try:
            self._info(key)
        except FileNotFoundError:
            return False
        return True

    def _file_info(self, name: str, info: dict[str, Any]) -> FileInfo:
        now = self._clock()
        if info.get("type") == "directory":
            return FileInfo(name=name, mode=DIR_MODE, size=0, mtime=_mtime(info, now), nlink=2,
                            unique=f"d{zlib.crc32(info['name'].rstrip('/').encode()):08x}")
        etag = str(info.get("ETag", "")).strip('"')
        return FileInfo(name=name, mode=FILE_MODE, size=int(info.get("size") or 0),
                        mtime=_mtime(info, now), unique=etag[:16] or name)

    def _stat(self, key: str, path: Segments) -> FileInfo:
        if not path:  # the home is the prefix itself: a directory whether or not marked
            return FileInfo(name="/", mode=DIR_MODE, size=0, mtime=self._clock(), nlink=2)
        return self._file_info(path[-1], self._info(key))

    def _require_dir(self, key: str, path: Segments) -> None:
        if path and self._info(key).get("type") != "directory":
            raise errors.NotADirectory(display(path))

    def _list_dir(self, key: str, path: Segments) -> list[FileInfo]:
        self._require_dir(key, path)
        try:
            found = self.fs.ls(key, detail=True)
        except FileNotFoundError as e:
            if path or "bucket" in str(e).lower():
                raise
            found = []  # an empty home that has no marker yet
        infos: dict[str, FileInfo] = {}
        for entry in found:
            name = entry["name"].rstrip("/")
            if name == key or not name.startswith(key + "/"):
                continue  # the directory's own marker
            leaf = name[len(key) + 1:]
            if "/" in leaf or leaf in _BAD_NAMES:
                continue
            infos[leaf] = self._file_info(leaf, entry)
        return [infos[name] for name in sorted(infos)]

    def _list_page(self, key: str, path: Segments, token: str | None,
                   ) -> tuple[list[FileInfo], str | None]:
        if not hasattr(self.fs, "call_s3"):
            return self._list_dir(key, path), None
        bucket, _, prefix = key.partition("/")
        prefix = prefix + "/" if prefix else ""
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/",
                                   "MaxKeys": self.PAGE_SIZE}
        if token is not None:
            request["ContinuationToken"] = token
        page = self.fs.call_s3("list_objects_v2", **request)
        infos = [self._file_info(found["Prefix"][len(prefix):-1], {"type": "directory",
                                                                     "name": found["Prefix"]})
                 for found in page.get("CommonPrefixes", [])]
        infos += [self._file_info(found["Key"][len(prefix):], {**found, "type": "file",
                                                               "size": found["Size"]})
                  for found in page.get("Contents", []) if found["Key"] != prefix]
        infos = [info for info in infos if info.name and info.name not in _BAD_NAMES]
        infos.sort(key=lambda info: info.name)
        following = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return infos, following

    def _parent_dir(self, key: str, path: Segments) -> None:
        """The directory that will hold ``path`` must exist (FileNotFound, NotADirectory)."""
        if not path:
            raise errors.PermissionDenied("/")
        if len(path) > 1:
            parent = self._info(key.rsplit("/", 1)[0])
            if parent.get("type") != "directory":
                raise errors.NotADirectory(display(path[:-1]))

    def _make_dir(self, key: str, path: Segments) -> None:
        self._parent_dir(key, path)
        if self._exists(key):
            raise errors.FileExists(display(path))
        self._mark(key)

    def _mark(self, key: str) -> None:
        if self.markers:
            self.fs.pipe_file(key + "/", b"")
        else:
            self.fs.makedirs(key, exist_ok=True)

    def _keep_parent(self, key: str, path: Segments) -> None:
        """Give the parent a marker, so removing its last entry leaves it standing."""
        if self.markers and len(path) > 1:
            self._mark(key.rsplit("/", 1)[0])

    def _remove_dir(self, key: str, path: Segments) -> None:
        if not path:
            raise errors.PermissionDenied("/")
        if self._info(key).get("type") != "directory":
            raise errors.NotADirectory(display(path))
        if self._list_dir(key, path):
            raise errors.DirectoryNotEmpty(display(path))
        self._keep_parent(key, path)
        if self.markers:
            self.fs.rm_file(key + "/")
        else:
            self.fs.rmdir(key)

    def _remove_file(self, key: str, path: Segments) -> None:
        if not path:
            raise errors.PermissionDenied("/")
        if self._info(key).get("type") == "directory":
            raise errors.IsADirectory(display(path))
        self._keep_parent(key, path)
        self.fs.rm_file(key)

    def _rename(self, new: str, source: Segments, destination: Segments) -> None:
        if not source or not destination:
            raise errors.PermissionDenied("/")
        old, shown = self.key(source), display(destination)
        try:
            moving = self._info(old)
        except FileNotFoundError:
            raise errors.FileNotFound(display(source)) from None
        if old == new:
            return
        is_dir = moving.get("type") == "directory"
        if new.startswith(old + "/"):  # a directory into itself; below a file
            raise (errors.InvalidPath if is_dir else errors.NotADirectory)(shown)
        if old.startswith(new + "/"):
            raise errors.DirectoryNotEmpty(shown)  # over its own ancestor
        self._parent_dir(new, destination)
        try:
            victim: dict[str, Any] | None = self._info(new)
        except FileNotFoundError:
            victim = None
        if victim is not None:
            if not is_dir and victim.get("type") == "directory":
                raise errors.IsADirectory(shown)
            if is_dir and victim.get("type") != "directory":
                raise errors.NotADirectory(shown)
            if is_dir and self._list_dir(new, destination):
                raise errors.DirectoryNotEmpty(shown)
        if is_dir:
            if self._list_dir(old, source):
                raise errors.StoreCannot(display(source), "renaming a directory that is not "
                                         "empty would copy every object below it; move its "
                                         "files one by one")
            if victim is None:
                self._mark(new)
            self._remove_dir(old, source)
            return
        # Copy first, delete after: a copy that fails leaves the source as it was.
        self.fs.cp_file(old, new)
        self._keep_parent(old, source)
        self.fs.rm_file(old)

    def _open_for_reading(self, key: str, path: Segments, offset: int) -> ObjectReadFile:
        shown = display(path)
        info = self._info(key) if path else {"type": "directory"}
        if info.get("type") == "directory":
            raise errors.IsADirectory(shown)
        if offset < 0:
            raise errors.InvalidPath(shown)
        # The size is known already: without it the store is asked for it again.
        handle = self.fs.open(key, "rb", block_size=READ_BLOCK, cache_type="readahead",
                              size=info.get("size"))
        try:
            handle.seek(offset)
        except BaseException:
            handle.close()
            raise
        return ObjectReadFile(handle, self._run, shown)

    def _open_for_writing(self, key: str, path: Segments, offset: int | None,
                          append: bool) -> ObjectWriteFile:
        shown = display(path)
        if not path:
            raise errors.IsADirectory(shown)
        self._parent_dir(key, path)
        try:
            existing: dict[str, Any] | None = self._info(key)
        except FileNotFoundError:
            existing = None
        if existing is not None and existing.get("type") == "directory":
            raise errors.IsADirectory(shown)
        size = int(existing.get("size") or 0) if existing is not None else 0
        if append:
            offset = size
        if existing is None and offset:
            raise errors.FileNotFound(shown)
        upload = self._start_upload(key, shown)
        if offset:  # REST+STOR or APPE: the new object starts with the old one's bytes
            try:
                upload.carry_over(offset, size)
            except BaseException:
                upload.discard_blocking()
                raise
        return upload

    def _start_upload(self, key: str, shown: str) -> ObjectWriteFile:
        if self.markers:  # a multipart upload: visible whole on completion, or never
            handle = self.fs.open(key, "wb", block_size=PART_SIZE, autocommit=False)
            return ObjectWriteFile(handle, self.fs, key, None, self._run, shown)
        directory, name = key.rsplit("/", 1)
        temp = f"{directory}/.{name}.{_suffix()}.part"
        return ObjectWriteFile(self.fs.open(temp, "wb"), self.fs, key, temp, self._run, shown)

    def _open_unique(self, key: str, directory: Segments, prefix: str,
                     ) -> tuple[str, ObjectWriteFile]:
        self._require_dir(key, directory)
        while True:
            name = prefix + _suffix()
            path = (*directory, name)
            target = self.key(path)
            if not self._exists(target):
                return name, self._start_upload(target, display(path))

    def _refuse(self, key: str, path: Segments, reason: str) -> None:
        if not path:  # the home is the administrator's, as on disk
            raise errors.PermissionDenied("/")
        self._info(key)  # a missing path is still "no such file"
        raise errors.StoreCannot(display(path), reason)

    def _disk_usage(self, key: str) -> tuple[int, int]:
        total = files = 0
        try:
            found = self.fs.find(key, detail=True)
        except FileNotFoundError:
            return 0, 0
        for name, info in found.items():
            if info.get("type") == "file" and not name.endswith("/"):
                total, files = total + int(info.get("size") or 0), files + 1
        return total, files


def _protocols(fs: Any) -> tuple[str, ...]:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def _suffix() -> str:
    return "".join(random.choices(_UNIQUE_CHARS, k=8))
