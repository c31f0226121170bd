"""The verification cache: what it remembers, for how long, and what makes it forget.

Checked through ``UserDBChecker`` with a counting ``verify_password``, so each test
shows whether a login paid for scrypt or was let in from the cache.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.task import Clock

from tests.harness import ManualRunner, cheap_hash
from twisted_ftpd.auth import passwords
from twisted_ftpd.auth.cache import VerificationCache
from twisted_ftpd.auth.checker import UserDBChecker
from twisted_ftpd.auth.userdb import UserDB, UserRecord, remove_user, set_user

HASH = cheap_hash("secret")


def sync(f: Any, *a: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(f, *a)


class Setup:
    def __init__(self, tmp_path: Path, ttl: float = 60, size: int = 10,
                 users: tuple[str, ...] = ("alice",)) -> None:
        self.path = tmp_path / "users.db"
        self.path.write_text("".join(f"{name}:{HASH}:elr:\n" for name in users))
        self.clock = Clock()
        self.cache = VerificationCache(ttl, size, self.clock.seconds)
        self.checker = UserDBChecker(UserDB(self.path), defer_to_thread=sync, cache=self.cache)
        self.verified: list[str] = []  # the user of every scrypt run

    def login(self, user: str = "alice", password: str = "secret") -> bool:
        """Whether the login succeeded; scrypt runs are counted in ``verified``."""
        real = passwords.verify_password
        passwords.verify_password = lambda pw, encoded: (self.verified.append(user)
                                                         or real(pw, encoded))
        try:
            d = self.checker.requestAvatarId(UsernamePassword(user.encode(), password.encode()))
        finally:
            passwords.verify_password = real
        results: list[object] = []
        d.addBoth(results.append)
        [result] = results
        if isinstance(result, Exception) or hasattr(result, "trap"):
            result.trap(UnauthorizedLogin)  # type: ignore[union-attr]
            return False
        assert result == user
        return True


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_a_repeated_login_is_let_in_without_scrypt(setup: Setup) -> None:
    assert setup.login() and setup.login() and setup.login()
    assert setup.verified == ["alice"]


def test_an_entry_expires_after_its_ttl(setup: Setup) -> None:
    assert setup.login()
    setup.clock.advance(59.9)
    assert setup.login()
    setup.clock.advance(0.1)  # 60 s after the check that made it
    assert setup.login()
    assert setup.verified == ["alice", "alice"]
    assert setup.login()  # the new check made a new entry
    assert setup.verified == ["alice", "alice"]


def test_failures_are_never_cached(setup: Setup) -> None:
    assert not setup.login(password="wrong")
    assert not setup.login(password="wrong")
    assert setup.verified == ["alice", "alice"]
    assert len(setup.cache) == 0


def test_a_wrong_password_misses_and_keeps_the_entry(setup: Setup) -> None:
    assert setup.login()
    assert not setup.login(password="Secret")  # checked the slow way, refused
    assert setup.login()  # the right one is still remembered
    assert setup.verified == ["alice", "alice"]


def test_a_new_password_takes_effect_at_once(setup: Setup) -> None:
    assert setup.login()
    record = UserDB(setup.path).lookup("alice")
    assert record is not None
    set_user(setup.path, dataclasses.replace(record,
                                             password_hash=cheap_hash("new")))
    assert not setup.login()  # the old password is checked against the new hash
    assert len(setup.cache) == 0  # and the old entry is gone
    assert setup.login(password="new")
    assert setup.verified == ["alice", "alice", "alice"]


def test_the_same_password_rehashed_is_checked_again(setup: Setup) -> None:
    assert setup.login()
    record = UserDB(setup.path).lookup("alice")
    assert record is not None
    rehashed = passwords.hash_password("secret")  # a fresh salt: another stored hash
    set_user(setup.path, dataclasses.replace(record, password_hash=rehashed))
    assert setup.login()
    assert setup.verified == ["alice", "alice"]


def test_a_removed_user_is_refused_and_forgotten(setup: Setup) -> None:
    assert setup.login()
    remove_user(setup.path, "alice")
    assert not setup.login()
    assert len(setup.cache) == 0
    setup.path.write_text(f"alice:{HASH}:elr:\n")  # back, with the very same line
    assert setup.login()
    assert setup.verified == ["alice", "alice", "alice"]  # the unknown user's dummy check too


def test_the_oldest_entry_is_evicted_past_the_size(tmp_path: Path) -> None:
    setup = Setup(tmp_path, size=2, users=("a", "b", "c"))
    for user in ("a", "b", "c"):
        assert setup.login(user)
    assert len(setup.cache) == 2
    assert setup.login("b") and setup.login("c")
    assert setup.verified == ["a", "b", "c"]
    assert setup.login("a")  # evicted: scrypt again (and now "b" is the oldest)
    assert setup.verified == ["a", "b", "c", "a"]
    assert len(setup.cache) == 2


def test_expired_entries_are_dropped_when_a_new_one_is_made(tmp_path: Path) -> None:
    setup = Setup(tmp_path, users=("a", "b"))
    assert setup.login("a")
    setup.clock.advance(60)
    assert setup.login("b")
    assert len(setup.cache) == 1


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (60, 0)])
def test_zero_ttl_or_size_turns_it_off(tmp_path: Path, ttl: float, size: int) -> None:
    setup = Setup(tmp_path, ttl=ttl, size=size)
    assert setup.login() and setup.login()
    assert setup.verified == ["alice", "alice"]
    assert len(setup.cache) == 0


def test_the_key_is_an_hmac_under_a_per_process_secret() -> None:
    one, two = VerificationCache(), VerificationCache()
    one.add("alice", "secret", HASH)
    [(key, stored_hash, _)] = one._entries.values()
    assert b"secret" not in key and len(key) == 32
    assert key == one._key("alice", "secret", HASH)
    assert key != two._key("alice", "secret", HASH)  # another secret, another key
    assert not two.hit("alice", "secret", HASH)
    # The fields are length-prefixed: moving a character across them changes the key.
    assert one._key("alice", "secret", HASH) != one._key("alices", "ecret", HASH)


def test_a_cache_hit_needs_no_password_pool(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    assert setup.login()
    pool = ManualRunner()
    checker = UserDBChecker(UserDB(setup.path), defer_to_thread=pool, lookup_in_thread=sync,
                            cache=setup.cache)
    d = checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))
    assert pool.calls == []
    assert d.result == "alice"
    d = checker.requestAvatarId(UsernamePassword(b"alice", b"wrong"))
    assert len(pool.calls) == 1  # a miss is verified in the pool
    pool.flush()
    d.addErrback(lambda f: f.trap(UnauthorizedLogin))


def test_the_record_carried_by_a_cache_hit_is_the_current_one(setup: Setup) -> None:
    assert setup.login()
    record = UserDB(setup.path).lookup("alice")
    assert isinstance(record, UserRecord)
    set_user(setup.path, dataclasses.replace(record, perms="elrw"))  # same hash, new perms
    d = setup.checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))
    assert d.result.record.perms == "elrw"
    assert setup.verified == ["alice"]
