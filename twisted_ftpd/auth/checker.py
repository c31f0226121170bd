# -*- test-case-name: tests.test_auth_checker -*-
"""Password checks cost a deliberate ~50 ms of scrypt, so they run off the reactor thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from zope.interface import implementer

from twisted_ftpd.auth import passwords
from twisted_ftpd.auth.userdb import ANONYMOUS, ANONYMOUS_NAMES, UserDB

DeferToThread = Callable[..., "Deferred[Any]"]


def _default_defer_to_thread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    # Imported here so that importing this module never installs a reactor.
    from twisted.internet.threads import deferToThread

    return deferToThread(f, *args, **kwargs)


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


@implementer(ICredentialsChecker)
class UserDBChecker:
    """Checks USER/PASS against users.db; avatar ids are users.db names."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, userdb: UserDB, defer_to_thread: DeferToThread | None = None) -> None:
        self._userdb = userdb
        self._defer_to_thread = defer_to_thread or _default_defer_to_thread

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:
        """Fire with the user's name, or fail with UnauthorizedLogin."""
        username = _text(credentials.username)
        password = _text(credentials.password)
        return self._defer_to_thread(self._check, username, password)

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
