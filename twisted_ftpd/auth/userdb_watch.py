# -*- test-case-name: tests.test_auth_userdb_watch -*-
"""Logins that need no thread: users.db read from memory while the kernel says the
file has not changed.

Reading users.db means a ``stat`` at least, which is disk work and belongs in a
thread; but most logins find the file as it was a moment ago, and the trip to a
thread and back was a quarter of an anonymous login's cost. ``UserDBWatch`` asks
inotify (Twisted's, Linux only) to report every change in the file's directory.
A lookup on the reactor first drains what inotify has queued, a non-blocking read
that never touches the disk, so an edit made before the client sent its command
is seen by that command, as it was when every lookup read the file. Where inotify
cannot see every change (a file shared over NFS, a chain of symbolic links, an
overflowing queue) an answer is trusted for ``max_age`` seconds at most; where
inotify is missing, every lookup goes to the thread as before.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from twisted_ftpd.auth.userdb import UserDB, UserRecord

log = Logger()

try:
    from twisted.internet import inotify
except ImportError:  # not Linux: no change notifications, every lookup reads the file
    inotify = None  # type: ignore[assignment]

MAX_AGE = 1.0  # seconds an answer read from the file is trusted without a fresh read

# The changes that can alter what users.db says, and those that end the watch itself.
_CHANGES = 0
_WATCH_ENDED = 0
if inotify is not None:
    _CHANGES = (inotify.IN_MODIFY | inotify.IN_ATTRIB | inotify.IN_CLOSE_WRITE
                | inotify.IN_MOVED_FROM | inotify.IN_MOVED_TO | inotify.IN_CREATE
                | inotify.IN_DELETE | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF)
    _WATCH_ENDED = (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_UNMOUNT
                    | inotify.IN_IGNORED)


def _queued(fd: int) -> int:
    """How many bytes of events wait on the inotify descriptor (FIONREAD)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class NotAtHand(Exception):
    """The answer needs the disk: ask again in a thread."""


class HomeNotAtHand(NotAtHand):
    """The user's home needs checking: a read of users.db under way will not help."""


class UserDBWatch:
    """The records of ``userdb`` that the reactor may use without reading the file."""

    def __init__(self, userdb: UserDB, reactor: Any, seconds: Callable[[], float],
                 max_age: float = MAX_AGE) -> None:
        self.userdb = userdb
        self._reactor = reactor
        self._seconds = seconds
        self._max_age = max_age
        self._notifier: Any = None
        self._names: set[bytes] = set()
        self._any_name_in: bytes | None = None  # a directory where every change counts
        self._changes = 0  # changes reported so far
        self._fresh_since: float | None = None  # when the table last matched the file
        self._reading = 0  # reads sent to a thread and not back yet
        self._after_read: list[Deferred[None]] = []  # lookups waiting for one to end

    def start(self) -> bool:
        """Watch the file's directory (and, for a link, its target's); False where
        inotify is not available, and every lookup then reads the file."""
        if inotify is None:
            return False
        link = os.path.abspath(self.userdb.path)
        target = os.path.realpath(link)
        notifier = None
        try:
            notifier = inotify.INotify(self._reactor)
            for directory in {os.path.dirname(link), os.path.dirname(target)}:
                notifier.watch(FilePath(directory), mask=_CHANGES | _WATCH_ENDED,
                               callbacks=[self._changed])
        except (OSError, inotify.INotifyError) as e:
            if notifier is not None:
                notifier.loseConnection()
            log.info("Not watching {path} for changes ({error}): each login reads it",
                     path=link, error=e)
            return False
        notifier.startReading()
        self._notifier = notifier
        self._names = {os.fsencode(os.path.basename(p)) for p in (link, target)}
        # Through a link, any change beside it may be the one that matters (a
        # Kubernetes ConfigMap swaps a "..data" link two levels up): count them all.
        self._any_name_in = (os.fsencode(os.path.dirname(link)) if link != target else None)
        return True

    def stop(self) -> None:
        notifier, self._notifier = self._notifier, None
        self._fresh_since = None
        if notifier is not None:
            notifier.loseConnection()

    def record_now(self, name: str) -> UserRecord | None:
        """``name``'s record from memory, or NotAtHand when only the file can say."""
        if not self._unchanged():
            raise NotAtHand()
        return self.userdb.cached(name)

    def lookup(self, name: str, run: Callable[..., Deferred[Any]]) -> Deferred[Any]:
        """``name``'s record, from memory when it is at hand, else read in ``run``'s
        thread (after which memory is at hand again, unless the file changed since)."""
        return self.answer(lambda: self.record_now(name), run, self.userdb.lookup, name)

    def answer(self, now: Callable[[], Any], run: Callable[..., Deferred[Any]],
               in_thread: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``now()``, worked out from memory on the reactor, or else ``in_thread(*args)``
        (which reads users.db) in ``run``'s thread. ``now`` raises NotAtHand when memory
        cannot answer; an answer that arrives while a read is under way waits for it
        and asks again, unless it is HomeNotAtHand (that read would not help)."""
        try:
            return succeed(now())
        except HomeNotAtHand:
            pass
        except NotAtHand:
            waiting = self.after_read()
            if waiting is not None:
                return waiting.addCallback(lambda _: self.answer(now, run, in_thread, *args))
        except Exception:
            return fail()
        return self.read(run, in_thread, *args)

    def after_read(self) -> Deferred[None] | None:
        """Fires once the read now in a thread is back (None: no read is), so that
        200 logins arriving together make one read, not 200: each then asks again,
        and reads for itself only if memory is still not at hand (the file changed
        while that read ran)."""
        if not self._reading:
            return None
        waiting: Deferred[None] = Deferred()
        self._after_read.append(waiting)
        return waiting

    def read(self, run: Callable[..., Deferred[Any]], f: Callable[..., Any],
             *args: Any) -> Deferred[Any]:
        """``run(f, *args)``: ``f`` reads the file in a thread. Once it has, memory
        matches the file as it was when the read began, if nothing changed meanwhile
        (the count of changes is taken before the read is sent off)."""
        if self._notifier is None:
            return run(f, *args)
        self._drain()
        changes, began = self._changes, self._seconds()
        ran = []  # set in the thread once the read has begun

        def reading(*args: Any) -> Any:
            ran.append(True)
            return f(*args)

        def done(result: object) -> object:
            self._drain()
            # A failure may be the login's answer (a wrong password): the table was
            # read all the same, if the read began at all.
            if ran and self._changes == changes and self._notifier is not None:
                self._fresh_since = began
            self._reading -= 1
            waiting, self._after_read = self._after_read, []
            for waiter in waiting:
                waiter.callback(None)
            return result

        self._reading += 1
        return maybeDeferred(run, reading, *args).addBoth(done)

    def _unchanged(self) -> bool:
        if self._fresh_since is None or self._notifier is None:
            return False
        self._drain()
        fresh_since = self._fresh_since  # None again if the drain saw a change
        return fresh_since is not None and self._seconds() - fresh_since < self._max_age

    def _drain(self) -> None:
        """Take in all that inotify has queued: non-blocking reads, no disk."""
        notifier = self._notifier
        while notifier is not None and _queued(notifier.fileno()):
            notifier.doRead()  # a read takes at most 8 KiB of events
            if self._notifier is not notifier:  # the watch ended (and said so)
                return
            if not notifier.connected:  # the directory itself went away
                self._changed(None, None, _WATCH_ENDED)
                return

    def _changed(self, ignored: object, path: FilePath[bytes] | None, mask: int) -> None:
        if mask & _WATCH_ENDED:
            log.warn("Stopped watching {path} for changes: each login reads it",
                     path=self.userdb.path)
            notifier, self._notifier = self._notifier, None
            if notifier is not None:
                notifier.loseConnection()
        elif path is not None and path.basename() not in self._names and (
                path.dirname() != self._any_name_in):
            return  # another file in the same directory
        self._changes += 1
        self._fresh_since = None
