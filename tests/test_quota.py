"""Per-user quotas in memory: the usage count itself on a Clock, then whole sessions
on the harness, over the disk shell and over the memory shell."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.cred.portal import Portal
from twisted.internet import defer, error, task

from tests.harness import Harness, Session, close
from tests.helpers import sync_run
from twisted_ftpd.auth import userdb
from twisted_ftpd.auth.realm import FTPRealm
from twisted_ftpd.fs.memory import MemoryFilesystem, MemoryShell
from twisted_ftpd.protocol.errors import FileQuotaExceeded, QuotaExceeded
from twisted_ftpd.quota import HomeUsage, QuotaLimits, QuotaRegistry, parse_quota

# -- the count --------------------------------------------------------------------------------


class Walks:
    """A disk_usage that the test answers."""

    def __init__(self) -> None:
        self.pending: list[defer.Deferred[tuple[int, int]]] = []

    def __call__(self) -> defer.Deferred[tuple[int, int]]:
        d: defer.Deferred[tuple[int, int]] = defer.Deferred()
        self.pending.append(d)
        return d


def current(home: HomeUsage, walk: Callable[[], Any]) -> defer.Deferred[None]:
    return defer.ensureDeferred(home.current(walk))


def test_the_first_need_walks_once_for_everyone_waiting() -> None:
    home, walks = HomeUsage(task.Clock(), 3600), Walks()
    first, second = current(home, walks), current(home, walks)
    assert len(walks.pending) == 1
    assert not first.called and not second.called
    walks.pending[0].callback((1000, 3))
    assert first.called and second.called
    assert (home.bytes, home.files) == (1000, 3)
    current(home, walks)
    assert len(walks.pending) == 1  # known now: no second walk


def test_a_failed_walk_fails_its_waiters_and_is_tried_again() -> None:
    home, walks = HomeUsage(task.Clock(), 3600), Walks()
    first, second = current(home, walks), current(home, walks)
    walks.pending[0].errback(OSError("disk gone"))
    for d in (first, second):
        assert isinstance(d.result.value, OSError)
        d.addErrback(lambda _: None)
    current(home, walks)
    assert len(walks.pending) == 2


def test_usage_is_walked_again_after_the_rescan_time_but_not_under_an_upload() -> None:
    clock, walks = task.Clock(), Walks()
    home = HomeUsage(clock, 600)
    current(home, walks)
    walks.pending[0].callback((10, 1))
    clock.advance(600)
    charge = home.start(None, 0, new_file=True)
    current(home, walks)
    assert len(walks.pending) == 1  # an upload is running: it would be counted twice
    home.settle(charge, None, 5)
    current(home, walks)
    assert len(walks.pending) == 2
    walks.pending[1].callback((99, 4))  # what changed outside the server shows now
    assert (home.bytes, home.files) == (99, 4)


def test_a_rescan_of_zero_never_walks_again() -> None:
    clock, walks = task.Clock(), Walks()
    home = HomeUsage(clock, 0)
    current(home, walks)
    walks.pending[0].callback((0, 0))
    clock.advance(10**9)
    current(home, walks)
    assert len(walks.pending) == 1


def measured(used: int = 0, files: int = 0) -> HomeUsage:
    home = HomeUsage(task.Clock(), 3600)
    current(home, lambda: defer.succeed((used, files)))
    return home


def test_an_upload_is_admitted_up_to_the_quota_exactly() -> None:
    home = measured(60)
    charge = home.start(QuotaLimits(bytes=100), 0, new_file=True)
    assert charge.admit(30) and charge.admit(10)
    assert not charge.admit(1)
    assert charge.refusal().reply() == (552, "Quota exceeded: this account may store 100 bytes.")


def test_an_overwrite_may_use_what_the_old_file_frees() -> None:
    home = measured(100)
    charge = home.start(QuotaLimits(bytes=100), 40, new_file=False)  # replaces 40 bytes
    assert charge.admit(40) and not charge.admit(1)


def test_a_full_home_refuses_an_upload_before_it_starts() -> None:
    home = measured(100)
    with pytest.raises(QuotaExceeded):
        home.start(QuotaLimits(bytes=100), 0, new_file=True)
    assert not home.charges


def test_concurrent_uploads_share_the_room() -> None:
    home = measured(0)
    limits = QuotaLimits(bytes=100)
    one, two = home.start(limits, 0, True), home.start(limits, 0, True)
    assert one.admit(70)
    assert two.admit(30) and not two.admit(1)
    home.settle(one, None, 70)
    home.settle(two, None, 30)
    assert (home.bytes, home.files, home.charges) == (100, 2, set())


def test_the_file_count_limit_counts_new_files_only() -> None:
    home = measured(0, 2)
    limits = QuotaLimits(files=3)
    coming = home.start(limits, 0, new_file=True)
    with pytest.raises(FileQuotaExceeded) as refused:
        home.start(limits, 0, new_file=True)  # 2 files and one on its way
    assert refused.value.reply() == (552, "Quota exceeded: this account may store 3 files.")
    home.start(limits, 5, new_file=False)  # an overwrite makes no new file
    home.settle(coming, None, None)  # it never landed


def test_settling_counts_what_is_on_disk() -> None:
    home = measured(500, 5)
    home.settle(home.start(None, 100, False), 100, 250)  # overwrite: 100 -> 250 bytes
    home.changed(50, None)  # a delete
    assert (home.bytes, home.files) == (600, 4)


def test_limits_come_from_the_users_options() -> None:
    assert QuotaLimits.from_options({"upload_rate": "1M"}) is None
    assert QuotaLimits.from_options({"quota": "10M"}) == QuotaLimits(10 * 1024 * 1024, None)
    assert QuotaLimits.from_options({"quota_files": "7"}) == QuotaLimits(None, 7)


@pytest.mark.parametrize("line, message", [
    ("quota=lots", "option quota: 'lots' is not a size"),
    ("quota=0", "option quota: must be more than 0"),
    ("quota_files=-1", "option quota_files: '-1' is not a number of files"),
    ("quota_files=0", "option quota_files: '0' is not a number of files"),
])
def test_bad_quota_values_are_refused_at_load(line: str, message: str) -> None:
    with pytest.raises(userdb.UserDBError, match=message):
        userdb.parse(f"anonymous::elr::{line}\n")


def test_the_registry_shares_one_count_per_home() -> None:
    registry = QuotaRegistry(task.Clock())
    assert registry.tracked("a") is None
    assert registry.home("a") is registry.home("a") is registry.tracked("a")
    assert registry.home("b") is not registry.home("a")
    assert parse_quota("1K") == 1024


# -- sessions ----------------------------------------------------------------------------------


def set_options(h: Harness, name: str = "alice", **options: str) -> None:
    """Give ``name``'s users.db line these options (the server rereads the file)."""
    record = userdb.UserDB(h.config.users).lookup(name)
    assert record is not None
    userdb.set_user(h.config.users, replace(record, options=dict(options)))


def with_quota(tmp_path: Path, memory: bool = False, rescan: float = 3600.0,
               **options: str) -> Harness:
    """A harness whose alice has ``options`` (quota=..., quota_files=...), on disk or
    in a MemoryFilesystem (``h.memory``)."""
    h = Harness(tmp_path, quota_rescan=rescan)
    set_options(h, **options)
    h.memory = None  # type: ignore[attr-defined]
    if memory:
        fs = MemoryFilesystem()
        realm = FTPRealm(userdb.UserDB(h.config.users), h.config.root,
                         lambda home, perms: MemoryShell(fs, perms), run=sync_run)
        checkers = list(dict.fromkeys(h.factory.portal.checkers.values()))
        h.factory.portal = Portal(realm, checkers)
        h.memory = fs  # type: ignore[attr-defined]
    return h


def put(h: Harness, name: str, data: bytes) -> None:
    if h.memory is not None:  # type: ignore[attr-defined]
        h.memory.put(name, data)  # type: ignore[attr-defined]
    else:
        h.put(name, data)


def read(h: Harness, name: str) -> bytes | None:
    if h.memory is not None:  # type: ignore[attr-defined]
        fs = h.memory  # type: ignore[attr-defined]
        return fs.read(name) if fs.exists(name) else None
    path = h.root / name
    return path.read_bytes() if path.exists() else None


def session(h: Harness) -> Session:
    s = h.connect()
    s.login()
    return s


def quota_session(tmp_path: Path, memory: bool = False, files: Mapping[str, bytes] | None = None,
                  **options: str) -> tuple[Harness, Session]:
    """``with_quota``, its home holding ``files`` before alice logs in, and her session."""
    h = with_quota(tmp_path, memory, **options)
    for name, data in (files or {}).items():
        put(h, name, data)
    return h, session(h)


def usage(h: Harness) -> tuple[int, int]:
    (home,) = h.factory.quotas._homes.values()
    return home.bytes, home.files


backends = pytest.mark.parametrize("memory", [False, True], ids=["disk", "memory"])


@backends
def test_uploads_within_the_quota_land_and_are_counted(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"old.bin": b"x" * 30}, quota="100")
    assert s.upload("STOR a.bin", b"y" * 70)[-1].startswith("226")
    assert usage(h) == (100, 2)
    assert read(h, "a.bin") == b"y" * 70


@backends
def test_an_upload_crossing_the_quota_is_stopped_with_552(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"old.bin": b"x" * 60}, quota="100")
    proto, transport = s.start("STOR big.bin")
    proto.dataReceived(b"z" * 30)
    proto.dataReceived(b"z" * 30)  # 120 > 100: stopped here
    assert transport.disconnecting  # the data connection is dropped at once
    replies = s.finish(proto, error.ConnectionLost())
    assert replies == ["552 Quota exceeded: this account may store 100 bytes."]
    kept = read(h, "big.bin")  # settled like an aborted upload: a resumable partial
    assert kept is None or len(kept) <= 40
    assert usage(h) == (60 + len(kept or b""), 1 + (kept is not None))
    if not memory:
        assert [n for n in os.listdir(h.root) if n.endswith(".part")] == []


@backends
def test_a_full_home_gets_552_before_any_data(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"full.bin": b"x" * 100}, quota="100")
    s.pasv()
    assert s.send("STOR more.bin") == ["552 Quota exceeded: this account may store 100 bytes."]
    assert s.upload("STOR full.bin", b"y" * 100)[-1].startswith("226")  # an overwrite fits
    assert read(h, "full.bin") == b"y" * 100


@backends
def test_deleting_gives_room_back(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"full.bin": b"x" * 100}, quota="100")
    s.pasv()
    assert s.send("STOR more.bin")[-1].startswith("552")
    assert s.codes("MKD d", "RMD d", "DELE full.bin") == [257, 250, 250]
    assert usage(h) == (0, 0)
    assert s.upload("STOR again.bin", b"y" * 100)[-1].startswith("226")


@backends
def test_a_rename_over_a_file_gives_its_size_back(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"a.bin": b"x" * 40, "b.bin": b"x" * 50}, quota="100")
    assert s.upload("STOR c.bin", b"")[-1].startswith("226")  # the count starts here
    assert s.codes("DELE nothing-here", "DELE c.bin") == [550, 250]
    assert usage(h) == (90, 2)
    assert s.codes("RNFR a.bin", "RNTO moved.bin") == [350, 250]
    assert usage(h) == (90, 2)  # a rename inside the home changes nothing
    assert s.codes("RNFR moved.bin", "RNTO b.bin") == [350, 250]
    assert usage(h) == (40, 1)
    assert s.codes("RNFR b.bin", "RNTO b.bin") == [350, 250]
    assert usage(h) == (40, 1)


@backends
def test_quota_files_refuses_a_new_file_only(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"one": b"1"}, quota_files="2")
    assert s.upload("STOR two", b"2")[-1].startswith("226")
    s.pasv()
    assert s.send("STOR three") == ["552 Quota exceeded: this account may store 2 files."]
    s.pasv()
    assert s.send("STOU")[-1].startswith("552")
    assert s.upload("STOR two", b"22")[-1].startswith("226")  # replacing is no new file
    assert s.upload("APPE one", b"1")[-1].startswith("226")


@backends
def test_appe_and_resumed_stor_count_what_they_add(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, {"part.bin": b"p" * 50}, quota="100")
    assert s.upload("APPE part.bin", b"q" * 20)[-1].startswith("226")
    assert usage(h) == (70, 1)
    assert s.codes("REST 60") == [350]
    assert s.upload("STOR part.bin", b"r" * 40)[-1].startswith("226")  # 60 kept + 40
    assert usage(h) == (100, 1)
    assert s.codes("REST 100") == [350]
    s.pasv()
    assert s.send("STOR part.bin")[-1].startswith("552")


@backends
def test_sessions_of_one_home_share_the_count(tmp_path: Path, memory: bool) -> None:
    h = with_quota(tmp_path, memory, quota="100")
    one, two = session(h), session(h)
    proto, _ = one.start("STOR one.bin")
    proto.dataReceived(b"a" * 80)  # still running, holding 80 bytes
    proto2, _ = two.start("STOR two.bin")
    proto2.dataReceived(b"b" * 21)
    assert two.finish(proto2, error.ConnectionLost())[-1].startswith("552")
    assert one.finish(proto)[-1].startswith("226")
    assert usage(h)[0] == 80 + len(read(h, "two.bin") or b"")


def test_users_without_a_quota_keep_a_counted_home_current(tmp_path: Path) -> None:
    h, s = quota_session(tmp_path, quota="100")
    assert s.upload("STOR a.bin", b"a" * 10)[-1].startswith("226")  # alice's count exists now
    set_options(h)  # her quota is lifted: her uploads are still counted for the home
    assert s.upload("STOR b.bin", b"b" * 10)[-1].startswith("226")
    assert usage(h) == (20, 2)


def test_the_home_is_walked_once_and_rescanned_later(tmp_path: Path) -> None:
    h = with_quota(tmp_path, rescan=100, quota="1K")
    h.put("sub/deep/file.bin", b"x" * 100)
    os.symlink("/etc/passwd", h.root / "link")  # links are not followed, nor counted
    s = session(h)
    assert s.upload("STOR a.bin", b"a" * 10)[-1].startswith("226")
    assert usage(h) == (110, 2)
    h.put("outside.bin", b"o" * 500)  # behind the server's back
    assert s.upload("STOR b.bin", b"b" * 10)[-1].startswith("226")
    assert usage(h) == (120, 3)  # not seen yet
    h.reactor.advance(100)
    assert s.upload("STOR c.bin", b"c" * 10)[-1].startswith("226")
    assert usage(h) == (630, 5)


def test_a_quota_edit_applies_at_the_next_upload(tmp_path: Path) -> None:
    h, s = quota_session(tmp_path, quota="1K")
    assert s.upload("STOR a.bin", b"a" * 100)[-1].startswith("226")
    set_options(h, quota="50")
    s.pasv()
    assert s.send("STOR b.bin")[-1].startswith("552")


@backends
def test_a_client_leaving_mid_upload_gives_its_room_back(tmp_path: Path, memory: bool) -> None:
    h, s = quota_session(tmp_path, memory, quota="100")
    proto, _ = s.start("STOR gone.bin")
    proto.dataReceived(b"g" * 90)
    s.lose()  # logged out at once; the upload settles after, when its connection ends
    close(proto, error.ConnectionLost())
    (home,) = h.factory.quotas._homes.values()
    assert home.charges == set()
    assert read(h, "gone.bin") == b"g" * 90  # kept as a partial, as for any broken upload
    assert usage(h) == (90, 1)
    assert session(h).codes("DELE gone.bin") == [250]
    assert session(h).upload("STOR next.bin", b"n" * 100)[-1].startswith("226")
