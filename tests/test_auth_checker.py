"""UserDBChecker: passwords, anonymous aliases, and that the work happens off the reactor."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.harness import ManualRunner
from twisted_ftpd.auth import passwords
from twisted_ftpd.auth.checker import ClientCredentials, UserDBChecker
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.pool import WORKERS
from twisted_ftpd.auth.userdb import UserDB, UserRecord
from twisted_ftpd.auth.userdb_watch import HomeNotAtHand, UserDBWatch

H = hash_password("secret")


def sync(f: Any, *a: Any, **kw: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(f, *a, **kw)


class CheckerTests(SynchronousTestCase):
    def temp_path(self) -> Path:
        """A fresh path in a private temporary directory (not the cwd, unlike mktemp)."""
        directory = tempfile.mkdtemp(prefix="twisted-ftpd-test-")
        self.addCleanup(shutil.rmtree, directory)
        return Path(directory) / "f"

    def make(self, text: str, run: Any = sync) -> UserDBChecker:
        path = self.temp_path()
        path.write_text(text)
        return UserDBChecker(UserDB(path), defer_to_thread=run)

    def check(self, checker: UserDBChecker, user: bytes, password: bytes) -> defer.Deferred[str]:
        return checker.requestAvatarId(UsernamePassword(user, password))

    def assertUnauthorized(self, d: defer.Deferred[str]) -> None:  # noqa: N802
        self.failureResultOf(d, UnauthorizedLogin)

    def test_interfaces(self) -> None:
        checker = self.make("")
        self.assertTrue(ICredentialsChecker.providedBy(checker))
        self.assertEqual(checker.credentialInterfaces, (IUsernamePassword,))

    def test_good_password(self) -> None:
        checker = self.make(f"alice:{H}:elr:\n")
        self.assertEqual(self.successResultOf(self.check(checker, b"alice", b"secret")), "alice")

    def test_bad_password(self) -> None:
        checker = self.make(f"alice:{H}:elr:\n")
        self.assertUnauthorized(self.check(checker, b"alice", b"Secret"))
        self.assertUnauthorized(self.check(checker, b"alice", b""))

    def test_unknown_user_pays_for_a_dummy_verification(self) -> None:
        checker = self.make(f"alice:{H}:elr:\n")
        seen: list[str] = []
        real = passwords.verify_password

        def spy(password: str, encoded: str) -> bool:
            seen.append(encoded)
            return real(password, encoded)

        self.patch(passwords, "verify_password", spy)
        self.assertUnauthorized(self.check(checker, b"mallory", b"secret"))
        self.assertEqual(seen, [passwords.DUMMY_HASH])

    def test_anonymous_and_ftp_with_any_password(self) -> None:
        checker = self.make(f"anonymous::elr:\nalice:{H}:elr:\n")
        for name in (b"anonymous", b"ftp"):
            for password in (b"", b"me@example.com", b"secret"):
                d = self.check(checker, name, password)
                self.assertEqual(self.successResultOf(d), "anonymous")

    def test_anonymous_names_refused_without_anonymous_line(self) -> None:
        checker = self.make(f"alice:{H}:elr:\n")
        for name in (b"anonymous", b"ftp"):
            self.assertUnauthorized(self.check(checker, name, b"x@example.com"))

    def test_anonymous_name_is_case_sensitive(self) -> None:
        checker = self.make("anonymous::elr:\n")
        self.assertUnauthorized(self.check(checker, b"Anonymous", b"x"))

    def test_non_utf8_username_and_password(self) -> None:
        checker = self.make(f"alice:{H}:elr:\n")
        self.assertUnauthorized(self.check(checker, b"al\xffice", b"secret"))
        self.assertUnauthorized(self.check(checker, b"alice", b"sec\xffret"))

    def test_non_utf8_password_can_match(self) -> None:
        encoded = hash_password("p\udcffw")  # what b"p\xffw" decodes to
        checker = self.make(f"bob:{encoded}:elr:\n")
        self.assertEqual(self.successResultOf(self.check(checker, b"bob", b"p\xffw")), "bob")

    def test_missing_db_refuses_everyone(self) -> None:
        checker = UserDBChecker(UserDB(self.temp_path()), defer_to_thread=sync)
        self.assertUnauthorized(self.check(checker, b"anonymous", b""))
        self.assertUnauthorized(self.check(checker, b"alice", b"secret"))

    def test_lookup_and_verification_run_inside_the_thread_runners(self) -> None:
        path = self.temp_path()
        path.write_text(f"alice:{H}:elr:\n")
        db = UserDB(path)
        lookups: list[str] = []
        real_lookup = db.lookup
        db.lookup = lambda name: lookups.append(name) or real_lookup(name)  # type: ignore[method-assign]
        lookup_runner, pool_runner = ManualRunner(), ManualRunner()
        checker = UserDBChecker(db, defer_to_thread=pool_runner, lookup_in_thread=lookup_runner)
        d = checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))
        self.assertNoResult(d)
        self.assertEqual(lookups, [])  # nothing blocking ran on the calling thread
        self.assertEqual(len(lookup_runner.calls), 1)
        lookup_runner.flush()
        self.assertEqual(lookups, ["alice"])  # read once, in the lookup thread...
        self.assertNoResult(d)
        self.assertEqual(len(pool_runner.calls), 1)  # ...and scrypt queued for the pool
        pool_runner.flush()
        self.assertEqual(self.successResultOf(d), "alice")
        self.assertEqual(lookups, ["alice"])

    def test_default_runners_are_the_reactors_pool_then_a_small_dedicated_one(self) -> None:
        from twisted.internet import reactor, threads

        calls: list[tuple[Any, ...]] = []
        pending: list[defer.Deferred[Any]] = []

        def fake(on: Any, pool: Any, f: Any, *a: Any) -> defer.Deferred[Any]:
            calls.append((on, pool, f, *a))
            pending.append(defer.Deferred())
            return pending[-1]

        self.patch(threads, "deferToThreadPool", fake)
        path = self.temp_path()
        path.write_text(f"alice:{H}:elr:\n")
        d = UserDBChecker(UserDB(path)).requestAvatarId(UsernamePassword(b"alice", b"secret"))
        [(on, pool, look_up, *args)] = calls
        self.assertIs(on, reactor)
        self.assertIs(pool, reactor.getThreadPool())  # the lookup: an ordinary worker
        pending[0].callback(look_up(*args))
        self.assertNoResult(d)
        [_, (on, pool, _, *args)] = calls
        self.assertIs(on, reactor)
        self.assertIsNot(pool, reactor.getThreadPool())
        self.assertEqual((pool.min, pool.max), (0, WORKERS))
        self.assertIn(WORKERS, (1, 2))
        self.assertEqual(args[:2], ["alice", "secret"])
        pending[1].callback("alice")  # the last check is done: the pool stops
        self.assertEqual(self.successResultOf(d), "alice")
        self.assertTrue(pool.joined)

    def test_checks_carry_the_client_address_into_the_queue(self) -> None:
        runner = ManualRunner()
        path = self.temp_path()
        path.write_text(f"alice:{H}:elr:\n")
        checker = UserDBChecker(UserDB(path), defer_to_thread=runner, lookup_in_thread=sync)
        checker.queue.workers = 2
        for _ in range(4):
            checker.requestAvatarId(ClientCredentials(b"alice", b"x", "::ffff:192.0.2.9"))
        self.assertEqual(checker.queue.waiting_from("192.0.2.9"), 2)  # 2 run, 2 wait

    def test_the_avatar_id_carries_the_record_it_was_decided_on(self) -> None:
        checker = self.make(f"anonymous::elr:\nalice:{H}:elr::download_rate=1K\n")
        alice = self.successResultOf(self.check(checker, b"alice", b"secret"))
        self.assertEqual(alice.record.options, {"download_rate": "1K"})
        anonymous = self.successResultOf(self.check(checker, b"ftp", b"x@example.com"))
        self.assertEqual((anonymous, anonymous.record.perms), ("anonymous", "elr"))

    def test_anonymous_needs_no_password_pool(self) -> None:
        pool = ManualRunner()
        path = self.temp_path()
        path.write_text("anonymous::elr:\n")
        checker = UserDBChecker(UserDB(path), defer_to_thread=pool, lookup_in_thread=sync)
        self.assertEqual(self.successResultOf(self.check(checker, b"anonymous", b"")),
                         "anonymous")
        self.assertEqual(pool.calls, [])


class DecidedOnTheReactorTests(SynchronousTestCase):
    """With users.db and the home at hand in memory (a started UserDBWatch, a home
    checked a moment ago), an anonymous login or a cache hit needs no thread at all."""

    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="twisted-ftpd-test-"))
        self.addCleanup(shutil.rmtree, directory)
        self.path = directory / "users.db"
        self.path.write_text(f"anonymous::elr:\nalice:{H}:elr:\n")
        self.homes: dict[str, str] = {}
        self.lookups, self.pool = ManualRunner(), ManualRunner()
        userdb = UserDB(self.path)
        self.watch = UserDBWatch(userdb, MemoryReactor(), lambda: 0.0)
        if not self.watch.start():
            raise SkipTest("no inotify here")
        self.addCleanup(self.watch.stop)
        self.checker = UserDBChecker(
            userdb, defer_to_thread=self.pool, lookup_in_thread=self.lookups,
            check_home=lambda record: self.homes.setdefault(record.name, "/srv/" + record.name),
            watch=self.watch, home_now=self.home_now)

    def home_now(self, record: UserRecord) -> str:
        if record.name not in self.homes:
            raise HomeNotAtHand()
        return self.homes[record.name]

    def check(self, user: bytes, password: bytes) -> defer.Deferred[Any]:
        d = self.checker.requestAvatarId(UsernamePassword(user, password))
        self.lookups.flush()
        self.pool.flush()
        return d

    def test_the_first_login_reads_in_a_thread_and_the_next_does_not(self) -> None:
        first = self.checker.requestAvatarId(UsernamePassword(b"ftp", b"x"))
        self.assertNoResult(first)  # nothing at hand yet: a thread reads the file
        self.lookups.flush()
        self.assertEqual(self.successResultOf(first).home, "/srv/anonymous")
        again = self.checker.requestAvatarId(UsernamePassword(b"anonymous", b"y"))
        self.assertEqual(self.successResultOf(again).home, "/srv/anonymous")
        self.assertEqual((self.lookups.calls, self.pool.calls), ([], []))

    def test_a_remembered_password_needs_no_thread_but_a_new_one_does(self) -> None:
        self.successResultOf(self.check(b"alice", b"secret"))  # scrypt, then remembered
        self.assertEqual(self.successResultOf(
            self.checker.requestAvatarId(UsernamePassword(b"alice", b"secret"))), "alice")
        wrong = self.checker.requestAvatarId(UsernamePassword(b"alice", b"nope"))
        self.assertNoResult(wrong)  # the record was at hand; the verification is not
        self.assertEqual((len(self.lookups.calls), len(self.pool.calls)), (0, 1))
        self.pool.flush()
        self.failureResultOf(wrong, UnauthorizedLogin)

    def test_an_unknown_name_is_refused_from_memory(self) -> None:
        self.successResultOf(self.check(b"ftp", b"x"))
        d = self.checker.requestAvatarId(UsernamePassword(b"mallory", b"x"))
        self.assertEqual(len(self.pool.calls), 1)  # the dummy verification, as ever
        self.pool.flush()
        self.failureResultOf(d, UnauthorizedLogin)

    def test_a_home_not_at_hand_sends_the_login_to_a_thread(self) -> None:
        self.successResultOf(self.check(b"ftp", b"x"))
        del self.homes["anonymous"]
        d = self.checker.requestAvatarId(UsernamePassword(b"ftp", b"x"))
        self.assertNoResult(d)
        self.lookups.flush()
        self.assertEqual(self.successResultOf(d).home, "/srv/anonymous")

    def test_logins_arriving_during_a_read_share_it(self) -> None:
        logins = [self.checker.requestAvatarId(UsernamePassword(b"ftp", b"x"))
                  for _ in range(50)]
        self.assertEqual(len(self.lookups.calls), 1)
        self.lookups.flush()
        self.assertEqual([self.successResultOf(d) for d in logins], ["anonymous"] * 50)

    def test_homes_to_check_do_not_queue_behind_one_read(self) -> None:
        self.successResultOf(self.check(b"ftp", b"x"))  # users.db is at hand now
        self.homes.clear()  # ...but no home is: say, object storage
        logins = [self.checker.requestAvatarId(UsernamePassword(b"ftp", b"x"))
                  for _ in range(20)]
        self.assertEqual(len(self.lookups.calls), 20)  # each checks its home at once
        self.lookups.flush()
        self.assertEqual([self.successResultOf(d) for d in logins], ["anonymous"] * 20)

    def test_the_watch_must_watch_the_checkers_own_table(self) -> None:
        with self.assertRaises(ValueError):
            UserDBChecker(UserDB(self.path), watch=self.watch, home_now=self.home_now)

    def test_an_edit_sends_the_next_login_to_a_thread(self) -> None:
        self.successResultOf(self.check(b"ftp", b"x"))
        self.path.write_text(f"alice:{H}:elr:\n")  # anonymous removed
        d = self.checker.requestAvatarId(UsernamePassword(b"ftp", b"x"))
        self.assertNoResult(d)
        self.lookups.flush()
        self.failureResultOf(d, UnauthorizedLogin)


def test_import_does_not_install_a_reactor() -> None:
    code = (
        "import sys, twisted_ftpd.auth.checker, twisted_ftpd.auth.realm;"
        "sys.exit('twisted.internet.reactor' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
