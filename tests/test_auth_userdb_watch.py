"""UserDBWatch: users.db answered from memory exactly while the kernel reports no change.

The watch is real inotify on a real temporary directory, on a MemoryReactor: the
kernel queues the events, and the watch reads them when asked, so no test waits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactor

from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.userdb import UserDB, UserRecord, set_user
from twisted_ftpd.auth.userdb_watch import MAX_AGE, NotAtHand, UserDBWatch

pytest.importorskip("twisted.internet.inotify", reason="inotify is Linux only")

H = hash_password("secret")


class Reads:
    """Stands for the thread pool: runs the read at once and counts it."""

    def __init__(self) -> None:
        self.count = 0
        self.during: Any = None  # called in the middle of the next read

    def __call__(self, f: Any, *args: Any) -> defer.Deferred[Any]:
        self.count += 1
        during, self.during = self.during, None
        result = f(*args)
        if during is not None:
            during()
        return defer.succeed(result)


class Setup:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "users.db"
        self.path.write_text("anonymous::elr:\n")
        self.now = 100.0
        self.watch = UserDBWatch(UserDB(self.path), MemoryReactor(), lambda: self.now)
        self.reads = Reads()

    def lookup(self, name: str) -> UserRecord | None:
        d = self.watch.lookup(name, self.reads)
        return d.result  # type: ignore[attr-defined,no-any-return]

    def at_hand(self) -> bool:
        try:
            self.watch.record_now("anonymous")
        except NotAtHand:
            return False
        return True


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = Setup(tmp_path)
    assert made.watch.start()
    yield made
    made.watch.stop()


def test_nothing_is_at_hand_before_the_first_read(setup: Setup) -> None:
    assert not setup.at_hand()
    assert setup.lookup("anonymous") is not None and setup.reads.count == 1


def test_after_a_read_lookups_need_no_thread(setup: Setup) -> None:
    setup.lookup("anonymous")
    assert setup.lookup("anonymous").perms == "elr"  # type: ignore[union-attr]
    assert setup.lookup("nobody") is None
    assert setup.reads.count == 1


def test_an_edit_is_seen_by_the_very_next_lookup(setup: Setup) -> None:
    setup.lookup("anonymous")
    with open(setup.path, "a") as f:
        f.write(f"alice:{H}:elr:\n")
    assert not setup.at_hand()
    assert setup.lookup("alice") is not None and setup.reads.count == 2
    assert setup.at_hand()


def test_the_users_tool_replacing_the_file_is_seen(setup: Setup) -> None:
    setup.lookup("anonymous")
    set_user(setup.path, UserRecord("bob", H, "elr", ""))  # a new file renamed over it
    assert not setup.at_hand()
    assert setup.lookup("bob") is not None


def test_a_mode_change_is_seen(setup: Setup) -> None:
    setup.lookup("anonymous")
    setup.path.chmod(0o600)
    assert not setup.at_hand()


def test_the_file_removed_is_seen(setup: Setup) -> None:
    setup.lookup("anonymous")
    setup.path.unlink()
    assert setup.lookup("anonymous") is None and setup.reads.count == 2


def test_other_files_beside_it_change_nothing(setup: Setup) -> None:
    setup.lookup("anonymous")
    (setup.directory / "notes.txt").write_text("x")
    os.rename(setup.directory / "notes.txt", setup.directory / "notes.old")
    assert setup.at_hand()


def test_an_answer_is_trusted_for_max_age_at_most(setup: Setup) -> None:
    setup.lookup("anonymous")  # read at 100.0
    setup.now += MAX_AGE - 0.01
    assert setup.at_hand()
    setup.now += 0.01  # a change inotify cannot see (NFS) is found within MAX_AGE
    assert not setup.at_hand()
    setup.lookup("anonymous")
    assert setup.at_hand() and setup.reads.count == 2


def test_a_change_during_a_read_leaves_memory_untrusted(setup: Setup) -> None:
    setup.reads.during = lambda: setup.path.write_text("anonymous::elrw:\n")
    setup.lookup("anonymous")  # read before the change landed
    assert not setup.at_hand()
    assert setup.lookup("anonymous").perms == "elrw"  # type: ignore[union-attr]


def test_the_directory_going_away_ends_the_watch(setup: Setup) -> None:
    setup.lookup("anonymous")
    setup.path.unlink()
    setup.directory.rmdir()
    setup.directory.mkdir()
    setup.path.write_text("anonymous::elr:\n")
    setup.lookup("anonymous")
    setup.lookup("anonymous")
    assert not setup.at_hand() and setup.reads.count == 3  # every lookup reads again


def test_a_link_is_followed_to_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "users.db").write_text("anonymous::elr:\n")
    (tmp_path / "etc").mkdir()
    os.symlink(tmp_path / "real" / "users.db", tmp_path / "etc" / "users.db")
    watch = UserDBWatch(UserDB(tmp_path / "etc" / "users.db"), MemoryReactor(), lambda: 0.0)
    assert watch.start()
    try:
        watch.lookup("anonymous", Reads())
        watch.record_now("anonymous")
        (tmp_path / "real" / "users.db").write_text("anonymous::elrw:\n")
        with pytest.raises(NotAtHand):
            watch.record_now("anonymous")
    finally:
        watch.stop()


def test_without_a_watch_every_lookup_reads(tmp_path: Path) -> None:
    watch = UserDBWatch(UserDB(tmp_path / "missing" / "users.db"), MemoryReactor(),
                        lambda: 0.0)
    assert not watch.start()  # no such directory to watch
    reads = Reads()
    watch.lookup("anonymous", reads)
    watch.lookup("anonymous", reads)
    assert reads.count == 2


def test_a_stopped_watch_answers_nothing_from_memory(setup: Setup) -> None:
    setup.lookup("anonymous")
    setup.watch.stop()
    assert not setup.at_hand()


class HeldReads:
    """Stands for a busy thread pool: each read waits until ``finish()``."""

    def __init__(self) -> None:
        self.held: list[tuple[Any, tuple[Any, ...], defer.Deferred[Any]]] = []

    def __call__(self, f: Any, *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.held.append((f, args, d))
        return d

    def finish(self) -> None:
        f, args, d = self.held.pop(0)
        d.callback(f(*args))


def test_lookups_arriving_during_a_read_wait_for_it_instead_of_reading(setup: Setup) -> None:
    reads = HeldReads()
    answers = [setup.watch.lookup("anonymous", reads) for _ in range(200)]
    assert len(reads.held) == 1  # one read for all of them
    reads.finish()
    assert [d.result.name for d in answers] == ["anonymous"] * 200  # type: ignore[attr-defined]
    assert setup.at_hand() and reads.held == []


def test_a_lookup_waiting_on_a_read_that_missed_an_edit_reads_again(setup: Setup) -> None:
    reads = HeldReads()
    first = setup.watch.lookup("anonymous", reads)
    with open(setup.path, "a") as f:  # the edit lands while the first read is out
        f.write(f"alice:{H}:elr:\n")
    answered: list[UserRecord | None] = []
    setup.watch.lookup("alice", reads).addCallback(answered.append)
    reads.finish()
    assert first.called and answered == [] and len(reads.held) == 1  # a read of its own
    reads.finish()
    assert [record.name for record in answered if record] == ["alice"]


def test_an_edit_behind_more_than_one_read_of_other_events_is_seen(setup: Setup) -> None:
    setup.lookup("anonymous")
    for i in range(600):  # far more events than one 8 KiB read of inotify takes
        (setup.directory / f"log.{i:04d}").write_text("x")
    with open(setup.path, "a") as f:
        f.write(f"alice:{H}:elr:\n")
    assert not setup.at_hand()


def test_through_a_link_any_change_beside_the_link_counts(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "users.db").write_text("anonymous::elr:\n")
    os.symlink("data/users.db", tmp_path / "users.db")
    watch = UserDBWatch(UserDB(tmp_path / "users.db"), MemoryReactor(), lambda: 0.0)
    assert watch.start()
    try:
        watch.lookup("anonymous", Reads())
        watch.record_now("anonymous")
        os.symlink("data", tmp_path / "..data_tmp")  # as a ConfigMap update swaps links
        os.rename(tmp_path / "..data_tmp", tmp_path / "..data")
        with pytest.raises(NotAtHand):
            watch.record_now("anonymous")
    finally:
        watch.stop()


def test_a_read_that_never_began_leaves_memory_untrusted_and_nobody_waiting(
        setup: Setup) -> None:
    def broken_pool(f: Any, *args: Any) -> defer.Deferred[Any]:
        raise RuntimeError("the pool is stopped")

    failed = setup.watch.lookup("anonymous", broken_pool)
    assert isinstance(failed.result.value, RuntimeError)  # type: ignore[attr-defined]
    failed.addErrback(lambda _: None)
    assert setup.watch.after_read() is None and not setup.at_hand()
