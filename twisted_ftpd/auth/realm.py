# -*- test-case-name: tests.test_auth_realm -*-
"""Turns an authenticated name into a shell jailed at that user's home, or refuses login."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from twisted.cred.portal import IRealm
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from twisted_ftpd.auth.sessions import OPTION as MAX_SESSIONS
from twisted_ftpd.auth.sessions import UserSessions, parse_max_sessions
from twisted_ftpd.auth.userdb import UserDB, UserRecord
from twisted_ftpd.auth.userdb_watch import MAX_AGE, HomeNotAtHand
from twisted_ftpd.fs.storage import ObjectHome, StorageError, Stores, is_disk
from twisted_ftpd.interfaces import IFTPShell
from twisted_ftpd.protocol.errors import HomeUnavailable

ShellFactory = Callable[[str, str], object]


class LoginMind:
    """The cred *mind* a session passes to ``Portal.login``: the realm tells it the
    users.db record the login was made with, so the session takes the user's options
    (rates) from the lookup the check already made instead of reading users.db again.
    A realm that knows no records (the in-memory test server's) leaves it None."""

    __slots__ = ("record",)

    def __init__(self) -> None:
        self.record: UserRecord | None = None


@implementer(IRealm)
class FTPRealm:
    """Builds an IFTPShell for a users.db user via ``shell_factory(home, perms)``."""

    log = Logger()

    def __init__(self, userdb: UserDB, default_root: str, shell_factory: ShellFactory,
                 run: Callable[..., defer.Deferred] | None = None, *,
                 stores: Stores | None = None, storage: str | None = None,
                 seconds: Callable[[], float] = time.monotonic) -> None:
        """``stores`` serves homes from object storage: every home when ``storage``
        (``--storage``) names a store, else those of users with a ``storage=`` option.
        ``seconds`` (a monotonic clock) dates the checks ``home_now`` may reuse."""
        self._userdb = userdb
        self._stores = stores
        self._storage = storage
        self.default_root = os.path.abspath(default_root)
        self._shell_factory = shell_factory
        # Reading users.db and checking the home touch the disk: off the reactor.
        self._run = run or (lambda f, *a: defer.maybeDeferred(f, *a))
        self.sessions = UserSessions()  # for users.db's max_sessions=N
        self._seconds = seconds
        # Disk homes found to be directories, by path: (realpath, when). Written in the
        # threads that check homes, read on the reactor (one dict operation each).
        self._checked: dict[str, tuple[str, float]] = {}

    def resolve_home(self, record: UserRecord) -> str:
        """The absolute home of ``record``: empty or relative homes hang off the default root."""
        return os.path.abspath(os.path.join(self.default_root, record.home))

    def requestAvatar(
        self,
        avatarId: bytes | str,
        mind: object,
        *interfaces: Any,
    ) -> defer.Deferred[tuple[Any, object, Callable[[], None]]]:
        if IFTPShell not in interfaces:
            raise NotImplementedError("FTPRealm only provides IFTPShell avatars")
        # A plain str: the session count keeps it, not the AvatarId's record.
        user = (avatarId.decode("utf-8", "surrogateescape") if isinstance(avatarId, bytes)
                else str(avatarId))
        record, home = getattr(avatarId, "record", None), getattr(avatarId, "home", None)
        if record is not None and home is not None:  # the checker ran check_home already
            return self._enter((home, record), user, mind)
        # The checker's AvatarId carries the record it read: no second lookup.
        d = self._run(self._locate, user, record)
        d.addCallback(self._enter, user, mind)
        return d

    def _enter(self, found: tuple[str | ObjectHome, UserRecord], user: str, mind: object,
               ) -> defer.Deferred[tuple[Any, object, Callable[[], None]]]:
        """The avatar, counted as one of the user's sessions (TooManySessions past its
        max_sessions); its logout ends the session. Runs on the reactor thread, so the
        count needs no lock."""
        home, record = found
        shell = (home.shell(record.perms) if isinstance(home, ObjectHome)
                 else self._shell_factory(home, record.perms))
        limit = record.options.get(MAX_SESSIONS)
        max_sessions = parse_max_sessions(limit) if limit is not None else None
        # A Deferred when the count is shared by several nodes (--shared-state).
        opened = defer.maybeDeferred(self.sessions.open, user, max_sessions)
        if isinstance(mind, LoginMind):
            mind.record = record
        return opened.addCallback(lambda logout: (IFTPShell, shell, logout))

    def _locate(self, user: str, record: UserRecord | None,
                ) -> tuple[str | ObjectHome, UserRecord]:
        """(home, record) of ``user``, reading the record unless given; blocking."""
        if record is None:
            record = self._userdb.lookup(user)
        if record is None:
            self.log.warn("User {user!r} vanished from the user database", user=user)
            raise HomeUnavailable()
        return self.check_home(record), record

    def check_home(self, record: UserRecord) -> str | ObjectHome:
        """The home of ``record``: its prefix in object storage (``storage=`` or
        ``--storage``), or a directory, which must exist (HomeUnavailable if not);
        blocking. The checker calls it in the thread where it decided the login, so
        that a login costs one trip to a thread, not two."""
        url = record.options.get("storage", self._storage)
        if not is_disk(url):
            return self._object_home(record.name, record, url)
        home = self.resolve_home(record)
        checked_at = self._seconds()
        if not os.path.isdir(home):
            self._checked.pop(home, None)
            self.log.warn("Home {home} of user {user!r} is not a directory", home=home,
                          user=record.name)
            raise HomeUnavailable()
        # Resolved here, in the thread: the shell then confines to it without reading
        # links on the reactor (Confinement's realpath) at every login.
        resolved = os.path.realpath(home)
        self._checked[home] = (resolved, checked_at)
        return resolved

    def home_now(self, record: UserRecord) -> str:
        """``check_home`` without the disk, on the reactor: the disk home of ``record``
        as a check found it less than a second ago, or NotAtHand. A home removed in
        that second is found missing by the session's first command instead (550)."""
        if not is_disk(record.options.get("storage", self._storage)):
            raise HomeNotAtHand()
        checked = self._checked.get(self.resolve_home(record))
        if checked is None or self._seconds() - checked[1] >= MAX_AGE:
            raise HomeNotAtHand()
        return checked[0]

    def _object_home(self, user: str, record: UserRecord, url: str | None) -> ObjectHome:
        """The home's prefix in the store (blocking: may load the store's client)."""
        assert url is not None
        if self._stores is None:
            self.log.error("User {user!r} has storage={url}, but this server serves no "
                           "object storage", user=user, url=url)
            raise HomeUnavailable()
        try:
            return self._stores.locate(url, record.home)
        except (StorageError, ImportError, ValueError) as e:
            self.log.error("Storage of user {user!r} ({url}) cannot be served: {error}",
                           user=user, url=url, error=e)
            raise HomeUnavailable() from e
