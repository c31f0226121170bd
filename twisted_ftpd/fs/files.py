# -*- test-case-name: tests.test_fs_files -*-
"""Streams downloads in flat memory and lands uploads so a broken one never harms a file.

A replacing upload is written aside and renamed over the target on commit; an
upload to a new name is kept as a partial on abort so the client can resume.
"""

from __future__ import annotations

import os
import stat as statmod
import tempfile
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from twisted_ftpd.interfaces import IFileDescriptorReadFile, IReadFile, IStagedWriteFile, IWriteFile
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import Staged

CHUNK_SIZE = 256 * 1024

_log = Logger()

Runner = Callable[..., Deferred]


def _read_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0)  # racy with other threads, hence done once at import
    os.umask(old)
    return old


UMASK = _read_umask()
DEFAULT_MODE = 0o666 & ~UMASK


@implementer(IReadFile, IPushProducer)
class ReadFile:
    """An open file sent to a consumer as a push producer, one chunk per write."""

    def __init__(self, fileobj: BinaryIO, display_path: str = "") -> None:
        self._file = fileobj
        self._display = display_path
        self._consumer: IConsumer | None = None
        self._deferred: Deferred[int] | None = None
        self._sent = 0
        self._paused = False
        self._producing = False
        self._done = False

    def send(self, consumer: IConsumer) -> Deferred[int]:
        if self._done or self._deferred is not None:
            raise RuntimeError("ReadFile.send called twice or after close")
        self._consumer = consumer
        self._deferred = d = Deferred()
        consumer.registerProducer(self, True)
        # The consumer may already have paused or stopped us while registering.
        if not self._done and not self._paused:
            self._produce()
        return d

    def close(self) -> None:
        if self._done:
            return
        if self._deferred is None:
            self._done = True
            self._close_file()
        else:
            self._finish(errors.TransferAborted(), unregister=True)

    # IPushProducer

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted interface name
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        if self._done:
            return
        self._paused = False
        self._produce()

    def stopProducing(self) -> None:  # noqa: N802
        if not self._done:
            self._finish(errors.TransferAborted(), unregister=False)

    def _produce(self) -> None:
        if self._producing:  # resumed from inside consumer.write: outer loop goes on
            return
        self._producing = True
        try:
            while not self._paused and not self._done:
                try:
                    chunk = self._file.read(CHUNK_SIZE)
                except OSError:
                    _log.failure("Read error on {path}", path=self._display)
                    self._finish(errors.LocalError(self._display), unregister=True)
                    return
                if not self._deliver(chunk):
                    return
        finally:
            self._producing = False

    def _deliver(self, chunk: bytes) -> bool:
        """Hand ``chunk`` to the consumer (which may pause us); an empty one is the end
        of the file. False once the download is over."""
        if not chunk:
            self._finish(None, unregister=True)
            return False
        self._sent += len(chunk)
        assert self._consumer is not None
        self._consumer.write(chunk)
        return True

    def _finish(self, error: errors.FTPError | None, *, unregister: bool) -> None:
        self._done = True
        consumer, self._consumer = self._consumer, None
        try:
            if unregister and consumer is not None:
                consumer.unregisterProducer()
        finally:
            self._close_file()
            d, self._deferred = self._deferred, None
            if d is not None:
                if error is None:
                    d.callback(self._sent)
                else:
                    d.errback(error)

    def _close_file(self) -> None:
        try:
            self._file.close()
        except OSError:
            _log.failure("Error closing {path}", path=self._display)


class InlineWrites:
    """Whether uploads write their blocks on the reactor thread, shared by a server.

    Writing a block into the page cache is a memory copy, cheaper than handing it
    to a pool thread and back (two thread switches and a reactor wake-up per
    block, most of an upload's CPU beyond the copies). But a write can wait for
    the disk, when the kernel throttles a writer with too many dirty pages: after
    ``strikes`` writes in a row that each took longer than ``slow`` seconds,
    every upload's writes go to the thread pool for ``cool_down`` seconds, then
    inline writes are tried again. A throttled disk makes every write slow,
    while one slow write alone is usually the thread being preempted on a busy
    machine, hence the strikes. So the reactor waits for a slow disk at most
    ``strikes`` times per ``cool_down``, for one block each time.
    """

    def __init__(self, slow: float = 0.01, cool_down: float = 10.0, strikes: int = 2,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._slow = slow
        self._cool_down = cool_down
        self._strikes = strikes
        self._timer = timer
        self._slow_in_a_row = 0
        self._until = 0.0

    @property
    def allowed(self) -> bool:
        return self._timer() >= self._until

    def run(self, f: Callable[..., Any], *args: Any) -> None:
        started = self._timer()
        try:
            f(*args)
        finally:
            now = self._timer()
            self._slow_in_a_row = self._slow_in_a_row + 1 if now - started > self._slow else 0
            if self._slow_in_a_row >= self._strikes:
                _log.info("Disk writes took over {ms:.0f} ms; uploads write from threads for "
                          "{s:.0f} s", ms=self._slow * 1000, s=self._cool_down)
                self._slow_in_a_row = 0
                self._until = now + self._cool_down


@implementer(IFileDescriptorReadFile)
class DiskReadFile(ReadFile):
    """A ReadFile over a real open file, which may also be sent by ``os.sendfile``
    (a ReadFile over anything else, as the memory shell's, is not)."""

    def __init__(self, fileobj: BinaryIO, display_path: str = "",
                 offset: int | None = None) -> None:
        """``offset``: where ``fileobj`` stands, when known (else it is asked)."""
        super().__init__(fileobj, display_path)
        self._offset = fileobj.tell() if offset is None else offset

    def file_descriptor(self) -> tuple[int, int]:
        if self._done or self._deferred is not None:
            raise RuntimeError("DiskReadFile.file_descriptor while sending or after close")
        return self._file.fileno(), self._offset


def _land_partial(temp: str, path: str) -> None:
    """Keep an interrupted new upload under its name, so the client can resume it,
    but never over a file that appeared meanwhile (a hard link cannot clobber)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    except OSError:  # no hard links here: a checked rename instead
        if not os.path.lexists(path):
            os.replace(temp, path)
            return
    _unlink_if_present(temp)


def _unlink_if_present(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _new_file(directory: str, prefix: str, mode: int, suffix: str = "") -> tuple[BinaryIO, str]:
    """A new file with a name of its own in ``directory``, open for writing, with
    ``mode``; nothing is left behind if that fails. Blocking."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, mode)
        return os.fdopen(fd, "wb"), path
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise


def _temp_prefix(name: str) -> str:
    """A hidden prefix for the temporary upload, short enough for NAME_MAX."""
    encoded = os.fsencode(name)
    if len(encoded) > 180:
        name = encoded[:180].decode("utf-8", "ignore")
    return "." + name + "."


@implementer(IWriteFile, IStagedWriteFile)
class WriteFile:
    """An upload: written aside and renamed on commit, or written in place at an offset.

    Every blocking step goes through ``run``; a lock serialises them, so an
    abort arriving while a write is still running waits for it. With ``inline``,
    writes run on the calling thread while it allows (and none is queued).
    """

    created = False  # the upload made this file, in place (APPE of a new name, STOU)

    def __init__(
        self,
        fileobj: BinaryIO,
        path: str,
        *,
        run: Runner,
        display_path: str = "",
        temp_path: str | None = None,
        replacing: bool = False,
        inline: InlineWrites | None = None,
    ) -> None:
        self._file = fileobj
        self._inline = inline
        self._path = path
        self._run = run
        self._display = display_path
        self._temp = temp_path
        self._replacing = replacing
        self._lock = DeferredLock()
        self._finished = False

    @classmethod
    def open(
        cls, path: str, offset: int | None = None, *, run: Runner, display_path: str = "",
        append: bool = False, mode: int = DEFAULT_MODE, inline: InlineWrites | None = None,
    ) -> WriteFile:
        """Start an upload to the OS path ``path`` (blocking: call through ``run``).

        ``append`` adds to the end of the file (created if missing), whatever
        ``offset`` says; a new file gets ``mode``. Raises FTPErrors for directories
        and special files, OSError otherwise.
        """
        try:
            existing: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if statmod.S_ISDIR(existing.st_mode):
                raise errors.IsADirectory(display_path)
            if not statmod.S_ISREG(existing.st_mode):
                raise errors.NotAPlainFile(display_path)
        if append:
            offset = existing.st_size if existing is not None else 0
        elif offset is None:
            return cls._open_aside(path, existing, run, display_path, mode, inline)
        if existing is None and offset != 0:
            raise errors.FileNotFound(display_path)
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        flags |= os.O_CREAT if offset == 0 else 0
        flags |= os.O_APPEND if append else 0
        fd = os.open(path, flags, 0o666)
        try:
            if not statmod.S_ISREG(os.fstat(fd).st_mode):
                raise errors.NotAPlainFile(display_path)
            if existing is None:
                os.fchmod(fd, mode)
            os.set_blocking(fd, True)
            if not append:
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            fileobj = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        upload = cls(fileobj, path, run=run, display_path=display_path, inline=inline)
        upload.created = existing is None
        return upload

    @classmethod
    def create_unique(cls, directory: str, prefix: str, *, run: Runner, display_dir: str = "",
                      mode: int = DEFAULT_MODE, inline: InlineWrites | None = None,
                      ) -> tuple[str, WriteFile]:
        """Create a new file with a name no other file has (STOU); blocking."""
        fileobj, path = _new_file(directory, prefix, mode)
        name = os.path.basename(path)
        shown = display_dir.rstrip("/") + "/" + name
        upload = cls(fileobj, path, run=run, display_path=shown, inline=inline)
        upload.created = True
        return name, upload

    @classmethod
    def _open_aside(
        cls, path: str, existing: os.stat_result | None, run: Runner, display_path: str,
        new_mode: int, inline: InlineWrites | None,
    ) -> WriteFile:
        directory, name = os.path.split(path)
        # Set the final mode now: the partial may end up under the real name.
        mode = statmod.S_IMODE(existing.st_mode) & 0o777 if existing else new_mode
        fileobj, temp = _new_file(directory, _temp_prefix(name), mode, ".part")
        return cls(
            fileobj,
            path,
            run=run,
            display_path=display_path,
            temp_path=temp,
            replacing=existing is not None,
            inline=inline,
        )

    def write(self, data: bytes) -> Deferred[None]:
        if self._finished:
            raise RuntimeError("WriteFile.write after commit or abort")
        inline = self._inline
        if inline is not None and inline.allowed and not self._lock.locked:
            try:
                inline.run(self._guarded, self._file.write, data)
            except Exception:
                return fail()
            return succeed(None)
        return self._lock.run(self._run, self._guarded, self._file.write, data)

    def commit(self) -> Deferred[None]:
        if self._finished:
            raise RuntimeError("WriteFile.commit after commit or abort")
        self._finished = True
        return self._lock.run(self._run, self._guarded, self._commit_blocking)

    def abort(self) -> Deferred[None]:
        return self._give_up(self._abort_blocking)

    def staged(self) -> Deferred[Staged]:
        if self._finished:
            raise RuntimeError("WriteFile.staged after commit or abort")
        return self._lock.run(self._run, self._staged_blocking)

    def discard(self) -> Deferred[None]:
        return self._give_up(self._discard_blocking)

    def _give_up(self, blocking: Callable[[], None]) -> Deferred[None]:
        """Abort or discard (once; later calls do nothing): failures are logged, since
        the client has its reply already."""
        if self._finished:
            return succeed(None)
        self._finished = True
        d = self._lock.run(self._run, blocking)
        d.addErrback(self._log_abort_failure)
        return d

    def _staged_blocking(self) -> Staged:
        try:
            self._file.flush()
            size = os.fstat(self._file.fileno()).st_size
        except OSError as e:
            raise errors.from_oserror(e, self._display) from e
        return Staged(self._temp or self._path, size, self._path)

    def _discard_blocking(self) -> None:
        """Close, then remove whatever this upload made (never land it as a partial)."""
        try:
            self._file.close()
        finally:
            if self._temp is not None:
                _unlink_if_present(self._temp)
            elif self.created:
                _unlink_if_present(self._path)

    def _guarded(self, f: Callable[..., Any], *args: Any) -> None:
        try:
            f(*args)
        except OSError as e:
            raise errors.from_oserror(e, self._display) from e

    def _commit_blocking(self) -> None:
        try:
            # No fsync, like vsftpd and pyftpdlib: it would stall every 226 for the
            # disk's sake; the rename still makes a finished upload appear at once.
            self._file.flush()
            self._file.close()
            if self._temp is not None:
                os.replace(self._temp, self._path)
        except BaseException:
            try:
                self._abort_blocking()
            except OSError:
                pass  # the commit error is the one to report
            raise

    def _abort_blocking(self) -> None:
        """Close and settle the temporary file; raises the first error after trying all."""
        first: OSError | None = None
        try:
            self._file.close()
        except OSError as e:
            first = e
        if self._temp is not None:
            try:
                if self._replacing or os.path.getsize(self._temp) == 0:
                    _unlink_if_present(self._temp)  # nothing worth resuming
                else:
                    _land_partial(self._temp, self._path)
            except OSError as e:
                first = first or e
        if first is not None:
            raise first

    def _log_abort_failure(self, failure: Any) -> None:
        _log.failure("Could not clean up aborted upload to {path}", failure, path=self._path)
