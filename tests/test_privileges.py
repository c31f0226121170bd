"""--user/--group (the account the server becomes once its ports are bound) and --umask
(the modes of what uploads create). The real switch, as root on port 21, is in
tests/integration/test_privileges.py; here the system calls are recorded instead."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.python import usage
from twisted.python.failure import Failure

from tests.helpers import sync_run
from twisted_ftpd import privileges
from twisted_ftpd.config import Options
from twisted_ftpd.fs.shell import FilesystemShell
from twisted_ftpd.privileges import Account, PrivilegeError


def parse(*args: str, parent: dict[str, object] | None = None) -> Options:
    options = Options()
    if parent is not None:
        options.parent = parent  # type: ignore[assignment]
    options.parseOptions(list(args))
    return options


# -- accounts -----------------------------------------------------------------------------


def test_resolve_takes_names_or_numbers_and_the_users_groups() -> None:
    nobody = pwd.getpwnam("nobody")
    account = privileges.resolve("nobody")
    assert account == Account("nobody", nobody.pw_uid, nobody.pw_gid,
                              tuple(sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))))
    assert privileges.resolve(str(nobody.pw_uid)) == account
    root_group = grp.getgrgid(0).gr_name
    assert privileges.resolve("nobody", root_group).gid == 0
    assert privileges.resolve("nobody", "0").gid == 0
    assert 0 in privileges.resolve("nobody", "0").groups


@pytest.mark.parametrize(("user", "group", "message"), [
    ("no-such-user-here", None, "no such user: 'no-such-user-here'"),
    ("nobody", "no-such-group-here", "no such group: 'no-such-group-here'"),
])
def test_unknown_accounts(user: str, group: str | None, message: str) -> None:
    with pytest.raises(PrivilegeError, match=message):
        privileges.resolve(user, group)


def test_options_carry_the_account() -> None:
    config = parse("--user", "nobody", "--group", "0").to_config()
    assert (config.user, config.group) == ("nobody", "0")
    assert parse().to_config().user is None


@pytest.mark.parametrize(("args", "parent", "message"), [
    (["--user", "no-such-user-here"], None, "no such user"),
    (["--group", "nogroup"], None, "--group needs --user"),
    (["--user", "nobody"], {"uid": 65534, "gid": None}, "either twistd's --uid/--gid"),
    (["--user", "nobody"], {"uid": None, "gid": 65534}, "either twistd's --uid/--gid"),
])
def test_bad_account_options(args: list[str], parent: dict[str, object] | None,
                             message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(*args, parent=parent)


def test_twistd_without_uid_lets_ftpd_switch() -> None:
    assert parse("--user", "nobody", parent={"uid": None, "gid": None})["user"] == "nobody"


# -- switching ----------------------------------------------------------------------------


class FakeIds:
    """The process's ids, with every change recorded (the test runs them on nothing)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, uid: int = 0, gid: int = 0) -> None:
        self.uid, self.gid = uid, gid
        self.calls: list[tuple[str, object]] = []
        for name in ("getuid", "geteuid"):
            monkeypatch.setattr(os, name, lambda: self.uid)
        for name in ("getgid", "getegid"):
            monkeypatch.setattr(os, name, lambda: self.gid)
        monkeypatch.setattr(os, "setgroups", self.setgroups)
        monkeypatch.setattr(os, "setgid", self.setgid)
        monkeypatch.setattr(os, "setuid", self.setuid)

    def setgroups(self, groups: list[int]) -> None:
        self.calls.append(("setgroups", groups))

    def setgid(self, gid: int) -> None:
        self.calls.append(("setgid", gid))
        self.gid = gid

    def setuid(self, uid: int) -> None:
        self.calls.append(("setuid", uid))
        if self.uid != 0:
            raise PermissionError(1, "Operation not permitted")
        self.uid = uid


NOBODY = Account("nobody", 65534, 65534, (65534, 100))


def test_groups_then_gid_then_uid_and_root_cannot_come_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = FakeIds(monkeypatch)
    privileges.switch_to(NOBODY)
    assert ids.calls == [("setgroups", [65534, 100]), ("setgid", 65534), ("setuid", 65534),
                         ("setuid", 0)]  # the last one is the check, refused
    assert (ids.uid, ids.gid) == (65534, 65534)


def test_a_switch_that_could_be_undone_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = FakeIds(monkeypatch)
    monkeypatch.setattr(os, "setuid", lambda uid: ids.calls.append(("setuid", uid)))
    with pytest.raises(PrivilegeError, match="still able to become root"):
        privileges.switch_to(NOBODY)


def test_without_root_only_the_current_account_is_possible(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = FakeIds(monkeypatch, uid=1000, gid=1000)
    with pytest.raises(PrivilegeError, match="--user nobody needs root .running as uid 1000."):
        privileges.switch_to(NOBODY)
    assert ids.calls == []
    privileges.switch_to(Account("me", 1000, 1000, (1000,)))
    assert ids.calls == []


def test_a_refused_system_call_is_a_privilege_error(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeIds(monkeypatch)

    def refuse(groups: list[int]) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setgroups", refuse)
    with pytest.raises(PrivilegeError, match="cannot switch to user nobody"):
        privileges.switch_to(NOBODY)


def test_running_as_names_the_effective_ids() -> None:
    text = privileges.running_as()
    assert f"uid {os.geteuid()}, gid {os.getegid()}" in text


# -- umask --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("022", 0o022), ("0027", 0o027), ("0", 0),
                                              ("0o077", 0o077), ("0777", 0o777)])
def test_umask_is_octal_with_a_leading_zero(text: str, value: int) -> None:
    assert parse("--umask", text).to_config().umask == value


@pytest.mark.parametrize("text", ["22", "18", "0999", "01000", "abc", "", "-022", "0o"])
def test_bad_umask(text: str) -> None:
    with pytest.raises(usage.UsageError):
        parse("--umask", text)


def test_default_umask_is_022() -> None:
    assert parse().to_config().umask == 0o022


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def strict_process_umask() -> Iterator[None]:
    """A process umask (077, as twistd sets when daemonising) that --umask must override."""
    old = os.umask(0o077)
    yield
    os.umask(old)


def done(d: defer.Deferred) -> Any:
    """The result of a Deferred that ``sync_run`` has already fired."""
    results: list[Any] = []
    d.addBoth(results.append)
    [result] = results
    if isinstance(result, Failure):
        result.raiseException()
    return result


def upload(d: defer.Deferred, data: bytes = b"data") -> None:
    writer = done(d)
    done(writer.write(data))
    done(writer.commit())


@pytest.mark.usefixtures("strict_process_umask")
def test_uploads_and_new_directories_get_the_configured_umask(tmp_path: Path) -> None:
    shell = FilesystemShell(str(tmp_path), "elradfmwMT", run=sync_run, umask=0o027)
    done(shell.make_dir(("made",)))
    upload(shell.open_for_writing(("made", "new.txt")))
    upload(shell.open_for_writing(("at-zero.txt",), 0))  # REST 0 + STOR
    upload(shell.open_for_appending(("appended.txt",)))
    name, writer = done(shell.open_unique((), "unique"))
    done(writer.commit())
    assert mode(tmp_path / "made") == 0o750
    for path in ["made/new.txt", "at-zero.txt", "appended.txt", name]:
        assert mode(tmp_path / path) == 0o640, path


@pytest.mark.usefixtures("strict_process_umask")
def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_bytes(b"old")
    (tmp_path / "old.txt").chmod(0o604)
    shell = FilesystemShell(str(tmp_path), "elradfmwMT", run=sync_run, umask=0o027)
    upload(shell.open_for_writing(("old.txt",)), b"new")
    assert (tmp_path / "old.txt").read_bytes() == b"new"
    assert mode(tmp_path / "old.txt") == 0o604
