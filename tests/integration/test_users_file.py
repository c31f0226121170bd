"""users.db edits count at the very next login, though logins are answered from memory
while the file is unchanged (auth/userdb_watch.py): a real server, real ftplib clients."""

from __future__ import annotations

import ftplib

import pytest
import pytest_twisted

from tests.integration.conftest import USERS, close_quietly, in_thread
from twisted_ftpd.auth import passwords, userdb
from twisted_ftpd.auth.userdb_watch import NotAtHand

pytestmark = pytest.mark.integration

# Hashed before any test runs: scrypt on the reactor between two logins would give
# memory time to expire (a second), and a broken watch would go unnoticed.
NEW_BOB = passwords.hash_password("newpw")
CAROL = passwords.hash_password("carolpw")


def login(server, user: str, password: str) -> str:  # type: ignore[no-untyped-def]
    """The reply to PASS (blocking); the session is closed again."""
    ftp = server.connect(user=None)
    try:
        return ftp.login(user, password)
    except ftplib.error_perm as e:
        return str(e)
    finally:
        close_quietly(ftp)


def answered_from_memory(server, name: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        server.service.factory.users_watch.record_now(name)
    except NotAtHand:
        return False
    return True


@pytest_twisted.ensureDeferred
async def test_a_new_password_counts_at_the_next_login(server) -> None:
    old = USERS["bob"][0]
    assert (await in_thread(login, server, "bob", old)).startswith("230")
    assert answered_from_memory(server, "bob")
    userdb.set_user(server.service.config.users, userdb.UserRecord(
        "bob", NEW_BOB, USERS["bob"][1], ""))
    assert (await in_thread(login, server, "bob", old)).startswith("530")
    assert (await in_thread(login, server, "bob", "newpw")).startswith("230")


@pytest_twisted.ensureDeferred
async def test_anonymous_removed_is_refused_at_the_next_login(server) -> None:
    assert (await in_thread(login, server, "anonymous", "me@example.org")).startswith("230")
    assert (await in_thread(login, server, "ftp", "me@example.org")).startswith("230")
    assert answered_from_memory(server, "anonymous")
    userdb.remove_user(server.service.config.users, "anonymous")
    assert (await in_thread(login, server, "anonymous", "me@example.org")).startswith("530")


@pytest_twisted.ensureDeferred
async def test_a_user_appended_in_place_logs_in_at_once(server) -> None:
    assert (await in_thread(login, server, "alice", USERS["alice"][0])).startswith("230")
    with open(server.service.config.users, "a") as f:  # an editor writing the file itself
        f.write(userdb.format_record(userdb.UserRecord(
            "carol", CAROL, "elr", "")) + "\n")
    assert (await in_thread(login, server, "carol", "carolpw")).startswith("230")
