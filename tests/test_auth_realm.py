"""FTPRealm: home resolution, missing homes, and what it hands to the shell factory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface

from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.realm import FTPRealm
from twisted_ftpd.auth.userdb import UserDB, UserRecord
from twisted_ftpd.auth.userdb_watch import MAX_AGE, NotAtHand
from twisted_ftpd.interfaces import IFTPShell
from twisted_ftpd.protocol.errors import HomeUnavailable

H = hash_password("secret")


class RealmTests(SynchronousTestCase):
    def temp_path(self) -> Path:
        """A fresh path in a private temporary directory (not the cwd, unlike mktemp)."""
        directory = tempfile.mkdtemp(prefix="twisted-ftpd-test-")
        self.addCleanup(shutil.rmtree, directory)
        return Path(directory) / "f"

    def setUp(self) -> None:
        self.base = self.temp_path()
        self.root = self.base / "root"
        (self.root / "pub").mkdir(parents=True)
        self.elsewhere = self.base / "elsewhere"
        self.elsewhere.mkdir()
        self.db_path = self.base / "users.db"
        self.db_path.write_text(
            "anonymous::elr:\n"
            f"rel:{H}:elrw:pub\n"
            f"abs:{H}:elradfmwMT:{self.elsewhere}\n"
            f"gone:{H}:elr:missing\n"
            f"file:{H}:elr:users.db\n"
            f"dots:{H}:elr:pub/../pub/\n"
        )
        self.made: list[tuple[str, str]] = []
        self.realm = FTPRealm(UserDB(self.db_path), str(self.root), self.factory)

    def factory(self, home: str, perms: str) -> object:
        self.made.append((home, perms))
        return ("shell", home, perms)

    def login(self, avatar_id: str | bytes) -> tuple:
        return self.successResultOf(self.realm.requestAvatar(avatar_id, None, IFTPShell))

    def test_disk_work_goes_through_the_runner(self) -> None:
        # Reading users.db and checking the home must not run on the reactor thread.
        calls: list[tuple] = []
        pending: Deferred = Deferred()

        def runner(f, *args):  # type: ignore[no-untyped-def]
            calls.append((f, args))
            return pending

        realm = FTPRealm(UserDB(self.db_path), str(self.root), self.factory, run=runner)
        d = realm.requestAvatar("rel", None, IFTPShell)
        self.assertNoResult(d)
        self.assertEqual(self.made, [])
        ((f, args),) = calls
        pending.callback(f(*args))
        _, shell, _ = self.successResultOf(d)
        self.assertEqual(shell, ("shell", str(self.root / "pub"), "elrw"))

    def test_the_home_is_handed_over_resolved(self) -> None:
        # Resolved in the realm's thread, so the shell reads no links on the reactor.
        link = self.base / "link"
        link.symlink_to(self.elsewhere)
        self.db_path.write_text(self.db_path.read_text() + f"viasym:{H}:elr:{link}\n")
        _, shell, _ = self.login("viasym")
        self.assertEqual(shell, ("shell", os.path.realpath(self.elsewhere), "elr"))

    def test_provides_irealm(self) -> None:
        self.assertTrue(IRealm.providedBy(self.realm))

    def test_empty_home_is_default_root(self) -> None:
        interface, shell, logout = self.login("anonymous")
        self.assertIs(interface, IFTPShell)
        self.assertEqual(shell, ("shell", str(self.root), "elr"))
        self.assertEqual(self.made, [(str(self.root), "elr")])
        self.assertIsNone(logout())

    def test_relative_home_hangs_off_default_root(self) -> None:
        _, shell, _ = self.login("rel")
        self.assertEqual(shell, ("shell", str(self.root / "pub"), "elrw"))

    def test_home_is_normalised_absolute(self) -> None:
        _, shell, _ = self.login("dots")
        self.assertEqual(shell[1], str(self.root / "pub"))
        self.assertTrue(os.path.isabs(shell[1]))

    def test_absolute_home(self) -> None:
        _, shell, _ = self.login("abs")
        self.assertEqual(shell, ("shell", str(self.elsewhere), "elradfmwMT"))

    def test_bytes_avatar_id(self) -> None:
        _, shell, _ = self.login(b"rel")
        self.assertEqual(shell[1], str(self.root / "pub"))

    def test_relative_default_root_is_made_absolute(self) -> None:
        cwd = os.getcwd()
        os.chdir(self.base)
        self.addCleanup(os.chdir, cwd)
        realm = FTPRealm(UserDB(self.db_path), "root", self.factory)
        self.successResultOf(realm.requestAvatar("anonymous", None, IFTPShell))
        self.assertEqual(self.made, [(str(self.root), "elr")])

    def test_missing_home(self) -> None:
        d = self.realm.requestAvatar("gone", None, IFTPShell)
        self.failureResultOf(d, HomeUnavailable)
        self.assertEqual(self.made, [])

    def test_home_that_is_a_file(self) -> None:
        self.db_path.rename(self.root / "users.db")  # make root/users.db a plain file
        realm = FTPRealm(UserDB(self.root / "users.db"), str(self.root), self.factory)
        self.failureResultOf(realm.requestAvatar("file", None, IFTPShell), HomeUnavailable)

    def test_record_vanished(self) -> None:
        d = self.realm.requestAvatar("nobody", None, IFTPShell)
        failure = self.failureResultOf(d, HomeUnavailable)
        self.assertEqual(failure.value.reply().code, 530)

    def test_other_interfaces_not_implemented(self) -> None:
        class IOther(Interface):
            pass

        with self.assertRaises(NotImplementedError):
            self.realm.requestAvatar("anonymous", None, IOther)
        _, shell, _ = self.login("anonymous")  # IFTPShell among several is fine
        self.successResultOf(self.realm.requestAvatar("anonymous", None, IOther, IFTPShell))


class HomeNowTests(SynchronousTestCase):
    """``home_now``: a disk home checked less than MAX_AGE ago, without the disk."""

    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="twisted-ftpd-test-"))
        self.addCleanup(shutil.rmtree, directory)
        (directory / "root" / "pub").mkdir(parents=True)
        self.root = directory / "root"
        self.now = 50.0
        self.realm = FTPRealm(UserDB(directory / "users.db"), str(self.root),
                              lambda home, perms: None, seconds=lambda: self.now)
        self.record = UserRecord("rel", H, "elr", "pub")

    def test_not_at_hand_until_a_check_found_it(self) -> None:
        self.assertRaises(NotAtHand, self.realm.home_now, self.record)
        self.assertEqual(self.realm.check_home(self.record), str(self.root / "pub"))
        self.assertEqual(self.realm.home_now(self.record), str(self.root / "pub"))

    def test_a_check_is_reused_for_max_age_at_most(self) -> None:
        self.realm.check_home(self.record)
        self.now += MAX_AGE
        self.assertRaises(NotAtHand, self.realm.home_now, self.record)

    def test_a_failed_check_forgets_the_home(self) -> None:
        self.realm.check_home(self.record)
        (self.root / "pub").rmdir()
        self.assertRaises(HomeUnavailable, self.realm.check_home, self.record)
        self.assertRaises(NotAtHand, self.realm.home_now, self.record)

    def test_object_storage_homes_are_never_at_hand(self) -> None:
        record = UserRecord("s3", H, "elr", "", {"storage": "s3://bucket/x"})
        self.assertRaises(NotAtHand, self.realm.home_now, record)
