# -*- test-case-name: tests.test_auth_checker,tests.test_auth_cache -*-
"""Password checks cost a deliberate ~50 ms of scrypt, so they run off the reactor
thread, in a small pool of their own behind a bounded, per-address fair queue
(``auth.pool``): a flood of bad logins can neither starve a real one nor pile up.

A check is two steps. The user's record is read first, in an ordinary worker
thread (the user source blocks: a file, a database); a login whose name, password
and stored hash passed a check recently (``auth.cache``) is let in right there, as
is anonymous. Only the rest, the scrypt verifications, queue for the password
pool. The avatar id a check fires with carries the record it was decided on, so
the realm and the session read the user's options from that one lookup.

When the record and the home are at hand in memory (``auth.userdb_watch``, and the
realm's recently checked homes), the first step runs on the reactor instead: an
anonymous login or a cache hit then needs no thread at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import threads
from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_ftpd.auth import passwords
from twisted_ftpd.auth.cache import VerificationCache
from twisted_ftpd.auth.pool import PasswordPool, VerificationQueue
from twisted_ftpd.auth.userdb import ANONYMOUS, ANONYMOUS_NAMES, UserDB, UserRecord
from twisted_ftpd.auth.userdb_watch import HomeNotAtHand, UserDBWatch

if TYPE_CHECKING:
    from twisted_ftpd.fs.storage import ObjectHome

DeferToThread = Callable[..., "Deferred[Any]"]
RecordOf = Callable[[str], "UserRecord | None"]


class ClientCredentials(UsernamePassword):
    """USER/PASS and the client's address, so checks can be queued fairly by address."""

    def __init__(self, username: bytes, password: bytes, peer: str) -> None:
        super().__init__(username, password)
        self.peer = peer


class AvatarId(str):
    """The logged-in user's name, as cred's avatar ids are, with the users.db record
    the check was decided on and, when the checker was given the realm's
    ``check_home``, the home it found (the realm builds the session from both)."""

    record: UserRecord
    home: str | ObjectHome | None

    def __new__(cls, record: UserRecord, home: str | ObjectHome | None = None) -> AvatarId:
        self = super().__new__(cls, record.name)
        self.record, self.home = record, home
        return self


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


@implementer(ICredentialsChecker)
class UserDBChecker:
    """Checks USER/PASS against users.db; avatar ids are users.db names (``AvatarId``)."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, userdb: UserDB, defer_to_thread: DeferToThread | None = None,
                 lookup_in_thread: DeferToThread | None = None,
                 cache: VerificationCache | None = None,
                 check_home: Callable[[UserRecord], Any] | None = None,
                 watch: UserDBWatch | None = None,
                 home_now: Callable[[UserRecord], Any] | None = None) -> None:
        """``defer_to_thread`` runs each scrypt verification (default: a PasswordPool on
        the global reactor); the queue in front of it bounds how many run and wait.
        ``lookup_in_thread`` reads the user's record (default: ``defer_to_thread`` if
        given, else the reactor's thread pool). ``check_home`` (the realm's) runs in
        the same thread once a login succeeds, sparing the realm a thread of its own.
        ``watch`` and ``home_now`` (the realm's) answer on the reactor when they can,
        raising NotAtHand when not."""
        if watch is not None and watch.userdb is not userdb:
            raise ValueError("the watch must watch this checker's own UserDB")
        self._userdb = userdb
        self._check_home = check_home
        self._watch = watch
        self._home_now = home_now
        self.queue = VerificationQueue(defer_to_thread or PasswordPool().run)
        self._lookup_in_thread = lookup_in_thread or defer_to_thread or threads.deferToThread
        self.cache = cache if cache is not None else VerificationCache()

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[AvatarId]:
        """Fire with the user's ``AvatarId``, or fail with UnauthorizedLogin (or LoginsBusy
        when too many checks are waiting)."""
        username = _text(credentials.username)
        password = _text(credentials.password)
        peer = getattr(credentials, "peer", "")
        watch, home_now = self._watch, self._home_now
        if watch is None:
            d = self._lookup_in_thread(self._look_up, username, password)
        else:
            def now() -> AvatarId | UserRecord | None:
                if home_now is None:
                    raise HomeNotAtHand()
                return self._decide(username, password, watch.record_now, home_now)

            d = watch.answer(now, self._lookup_in_thread, self._look_up, username, password)
        return d.addCallback(self._verify_if_needed, username, password, peer)

    def _look_up(self, username: str, password: str) -> AvatarId | UserRecord | None:
        """Runs in a thread: the decided login (anonymous, or a cache hit), or the
        record whose password must still be verified (None: no such user)."""
        return self._decide(username, password, self._userdb.lookup, self._check_home)

    def _decide(self, username: str, password: str, record_of: RecordOf,
                home_of: Callable[[UserRecord], Any] | None) -> AvatarId | UserRecord | None:
        """The login decided from ``record_of``'s record (anonymous, or a cache hit), or
        the record whose password must still be verified (None: no such user)."""
        if username in ANONYMOUS_NAMES:
            record = record_of(ANONYMOUS)
            if record is None:
                raise UnauthorizedLogin("anonymous login is not enabled")
            return self._logged_in(record, home_of)
        record = record_of(username)
        if record is None or record.name == ANONYMOUS:
            self.cache.forget(username)
            return None
        if self.cache.hit(username, password, record.password_hash):
            return self._logged_in(record, home_of)
        return record

    def _verify_if_needed(self, found: AvatarId | UserRecord | None, username: str,
                          password: str, peer: str) -> AvatarId | Deferred[AvatarId]:
        if isinstance(found, AvatarId):
            return found
        return self.queue.submit(peer, self._verify, username, password, found)

    def _verify(self, username: str, password: str, record: UserRecord | None) -> AvatarId:
        """Runs in the password pool: one scrypt, remembered if it succeeds."""
        if record is None:
            passwords.verify_password(password, passwords.dummy_hash())  # no timing oracle
            raise UnauthorizedLogin("unknown user")
        if not passwords.verify_password(password, record.password_hash):
            raise UnauthorizedLogin("wrong password")
        self.cache.add(username, password, record.password_hash)
        return self._logged_in(record, self._check_home)

    @staticmethod
    def _logged_in(record: UserRecord, home_of: Callable[[UserRecord], Any] | None,
                   ) -> AvatarId:
        """Where the login was decided: the realm's home check too."""
        return AvatarId(record, home_of(record) if home_of else None)
