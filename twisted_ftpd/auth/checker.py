# -*- test-case-name: tests.test_auth_checker -*-
"""Password checks cost a deliberate ~50 ms of scrypt, so they run off the reactor
thread, in a small pool of their own behind a bounded, per-address fair queue
(``auth.pool``): a flood of bad logins can neither starve a real one nor pile up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_ftpd.auth import passwords
from twisted_ftpd.auth.pool import PasswordPool, VerificationQueue
from twisted_ftpd.auth.userdb import ANONYMOUS, ANONYMOUS_NAMES, UserDB

DeferToThread = Callable[..., "Deferred[Any]"]


class ClientCredentials(UsernamePassword):
    """USER/PASS and the client's address, so checks can be queued fairly by address."""

    def __init__(self, username: bytes, password: bytes, peer: str) -> None:
        super().__init__(username, password)
        self.peer = peer


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


@implementer(ICredentialsChecker)
class UserDBChecker:
    """Checks USER/PASS against users.db; avatar ids are users.db names."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, userdb: UserDB, defer_to_thread: DeferToThread | None = None) -> None:
        """``defer_to_thread`` runs each check (default: a PasswordPool on the global
        reactor); the queue in front of it bounds how many run and wait."""
        self._userdb = userdb
        self.queue = VerificationQueue(defer_to_thread or PasswordPool().run)

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:
        """Fire with the user's name, or fail with UnauthorizedLogin (or LoginsBusy
        when too many checks are waiting)."""
        username = _text(credentials.username)
        password = _text(credentials.password)
        peer = getattr(credentials, "peer", "")
        return self.queue.submit(peer, self._check, username, password)

    def _check(self, username: str, password: str) -> str:
        """Runs in a thread: the users.db stat/read and the scrypt both block."""
        if username in ANONYMOUS_NAMES:
            if self._userdb.lookup(ANONYMOUS) is None:
                raise UnauthorizedLogin("anonymous login is not enabled")
            return ANONYMOUS
        record = self._userdb.lookup(username)
        if record is None or record.name == ANONYMOUS:
            passwords.verify_password(password, passwords.dummy_hash())  # no timing oracle
            raise UnauthorizedLogin("unknown user")
        if not passwords.verify_password(password, record.password_hash):
            raise UnauthorizedLogin("wrong password")
        return record.name
