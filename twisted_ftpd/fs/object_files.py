# -*- test-case-name: tests.test_fs_objects,tests.integration.test_s3_shell -*-
"""The open files of object storage (``fs.objects``), and what a store's errors mean
to an FTP client.

A download reads ranged blocks through the store's pool, paused while the client
is not reading; an upload is a multipart upload (or, on filesystems with real
directories, a hidden temporary file) that appears whole on commit or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.logger import Logger
from zope.interface import implementer

from twisted_ftpd.fs.files import ReadFile, Runner
from twisted_ftpd.interfaces import IWriteFile
from twisted_ftpd.protocol import errors

log = Logger()

#: Bytes per read of a download (each one a call in the pool).
READ_CHUNK = 1024 * 1024
#: Bytes fetched per ranged GET of a download (the read-ahead buffer).
READ_BLOCK = 4 * 1024 * 1024
#: Size of one multipart upload part; S3 wants at least 5 MiB (but the last).
PART_SIZE = 8 * 1024 * 1024
#: Bytes copied per step when APPE or REST+STOR carry over an existing object.
COPY_CHUNK = PART_SIZE


def store_error(error: BaseException, shown: str, operation: str, key: str) -> errors.FTPError:
    """The FTP error for what the store answered; the operator log gets the answer itself."""
    if isinstance(error, errors.FTPError):
        return error
    if isinstance(error, FileNotFoundError):
        if "bucket" in str(error).lower():
            log.error("Storage: {operation} {key}: {error}", operation=operation, key=key,
                      error=error)
            return errors.StoreNoBucket(shown)
        return errors.FileNotFound(shown)
    if isinstance(error, NotADirectoryError):
        return errors.NotADirectory(shown)
    if isinstance(error, IsADirectoryError):
        return errors.IsADirectory(shown)
    if isinstance(error, FileExistsError):
        return errors.FileExists(shown)
    log.error("Storage: {operation} {key} failed: {error!r}", operation=operation, key=key,
              error=error)
    if isinstance(error, PermissionError):
        return errors.StoreDenied(shown)
    if isinstance(error, OSError) and error.errno in (16, 11):  # EBUSY (SlowDown), EAGAIN
        return errors.StoreBusy(shown)
    module = type(error).__module__
    if isinstance(error, (ConnectionError, TimeoutError)) or module.startswith(
            ("botocore", "aiohttp", "aiobotocore")) or isinstance(error, OSError):
        return errors.StoreUnreachable(shown)
    return errors.LocalError(shown)



class ObjectReadFile(ReadFile):
    """ReadFile's push producer (pause, resume, stop, close), with every read of the
    object done in the pool: one read in flight at a time, none while the consumer
    is paused, so a download holds about one read-ahead block and one chunk."""

    def __init__(self, handle: Any, run: Runner, display_path: str) -> None:
        super().__init__(handle, display_path)
        self._run = run
        self._reading = False

    def _produce(self) -> None:
        if self._paused or self._reading or self._done:
            return
        self._reading = True
        d = self._run(self._file.read, READ_CHUNK)
        d.addCallbacks(self._got, self._failed)

    def _got(self, chunk: bytes) -> None:
        self._reading = False
        if self._done:
            return
        if self._deliver(chunk):  # may pause us
            self._produce()

    def _failed(self, failure: Any) -> None:
        self._reading = False
        if not self._done:
            error = store_error(failure.value, self._display, "download", self._display)
            self._finish(error, unregister=True)

    def _close_file(self) -> None:
        d = self._run(self._file.close)
        d.addErrback(lambda f: log.failure("Closing {path}", f, path=self._display))


@implementer(IWriteFile)
class ObjectWriteFile:
    """An upload to ``key``: a multipart upload (``temp`` None) or a temporary object.

    The handle buffers up to one part and sends it from inside ``write``, in the
    pool; a lock keeps one store call in flight, so memory stays near one part.
    Abort and commit agree on one rule: nothing appears under ``key`` but a
    complete upload (an aborted multipart upload is aborted at the store too).
    """

    def __init__(self, handle: Any, fs: Any, key: str, temp: str | None, run: Runner,
                 display_path: str) -> None:
        self._handle, self._fs, self._key, self._temp = handle, fs, key, temp
        self._run = run
        self._display = display_path
        self._lock = DeferredLock()
        self._finished = False

    def carry_over(self, offset: int, size: int) -> None:
        """Start with the first ``offset`` bytes of the object being replaced (blocking;
        ``size`` is its size), zeros past its end, as a REST+STOR on disk would."""
        with self._fs.open(self._key, "rb", block_size=COPY_CHUNK, cache_type="none",
                           size=size) as old:
            left = min(offset, size)
            while left:
                chunk = old.read(min(COPY_CHUNK, left))
                if not chunk:
                    break
                self._handle.write(chunk)
                left -= len(chunk)
        if offset > size:
            self._handle.write(bytes(offset - size))

    def write(self, data: bytes) -> Deferred[None]:
        if self._finished:
            raise RuntimeError("ObjectWriteFile.write after commit or abort")
        return self._locked("upload", self._handle.write, data)

    def commit(self) -> Deferred[None]:
        if self._finished:
            raise RuntimeError("ObjectWriteFile.commit after commit or abort")
        self._finished = True
        return self._locked("complete upload", self._commit_blocking)

    def abort(self) -> Deferred[None]:
        if self._finished:
            return succeed(None)
        self._finished = True
        d = self._lock.run(self._run, self.discard_blocking)
        d.addErrback(lambda f: log.failure("Could not abort the upload to {key}", f,
                                           key=self._key))
        return d

    def _locked(self, operation: str, f: Callable[..., Any], *args: Any) -> Deferred[None]:
        def guarded() -> None:
            try:
                f(*args)
            except Exception as e:
                raise store_error(e, self._display, operation, self._key) from e

        return self._lock.run(self._run, guarded)

    def _commit_blocking(self) -> None:
        try:
            self._handle.close()
            if self._temp is None:
                self._handle.commit()
            else:
                # Never fsspec's generic mv: it expands globs, and "x[1]" is a name here.
                self._fs.cp_file(self._temp, self._key)
                self._fs.rm_file(self._temp)
        except BaseException:
            self.discard_blocking()
            raise

    def discard_blocking(self) -> None:
        """Throw the upload away, at the store too (an aborted multipart upload)."""
        if self._temp is None:
            self._handle.discard()
            # Closed for good: a later close (its __del__) would begin a new upload.
            self._handle.closed = True
            return
        try:
            self._handle.close()
        finally:
            try:
                self._fs.rm_file(self._temp)
            except FileNotFoundError:
                pass
