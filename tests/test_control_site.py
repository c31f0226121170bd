"""File attributes and session odds and ends: SITE HELP, SITE CHMOD, MFMT, HOST, ALLO."""

from __future__ import annotations

import calendar
import os
import stat
from pathlib import Path

import pytest

from tests.harness import Harness, logged_in


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- SITE ---------------------------------------------------------------------------------


def test_site_help_is_a_multi_line_214(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    reply = s.send("SITE HELP")
    assert reply[0].startswith("214-") and reply[-1].startswith("214 ")
    assert [line for line in reply if line[:4] == "214 "] == [reply[-1]]
    assert any("CHMOD" in line for line in reply[1:-1])
    assert s.send("site help") == reply


def test_site_chmod_sets_the_mode(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("f", b"data")
    os.chmod(path, 0o644)
    assert s.send("SITE CHMOD 600 f") == ["200 SITE CHMOD successful."]
    assert mode_of(path) == 0o600
    assert s.codes("site chmod 0755 /f") == [200]
    assert mode_of(path) == 0o755
    assert path.read_bytes() == b"data"


def test_site_chmod_of_a_directory_and_relative_to_the_cwd(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("d/f", b"x")
    assert s.codes("SITE CHMOD 700 d", "CWD d", "SITE CHMOD 640 f") == [200, 250, 200]
    assert mode_of(h.root / "d") == 0o700
    assert mode_of(path) == 0o640


def test_site_chmod_never_sets_setuid_setgid_or_sticky(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("f", b"x")
    assert s.codes("SITE CHMOD 4755 f") == [200]
    assert mode_of(path) == 0o755
    assert s.codes("SITE CHMOD 7644 f") == [200]
    assert mode_of(path) == 0o644


def test_site_chmod_needs_M(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, "elradfmw")
    path = h.put("f", b"x")
    os.chmod(path, 0o644)
    assert s.send("SITE CHMOD 600 f") == ["550 Permission denied."]
    assert mode_of(path) == 0o644
    assert s.codes("SITE HELP") == [214]  # HELP needs no letter


@pytest.mark.parametrize("line", ["SITE CHMOD 999 f", "SITE CHMOD abc f", "SITE CHMOD 600",
                                  "SITE CHMOD", "SITE CHMOD 12345 f", "SITE CHMOD -1 f",
                                  "SITE CHMOD u+x f"])
def test_site_chmod_bad_arguments_are_501(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("f", b"x")
    os.chmod(path, 0o644)
    assert s.send(line) == ["501 Syntax error in parameters or arguments."]
    assert mode_of(path) == 0o644


def test_site_chmod_of_a_missing_file_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("SITE CHMOD 600 nope") == ["550 /nope: No such file or directory."]


@pytest.mark.parametrize("target", ["/", ".", "..", "d/..", "/d/../.."])
def test_site_chmod_of_the_home_itself_is_550(tmp_path: Path, target: str) -> None:
    h, s = logged_in(tmp_path)
    h.put("d/f", b"x")
    before = mode_of(h.root)
    assert s.codes(f"SITE CHMOD 000 {target}") == [550]
    assert s.codes("CWD d", "SITE CHMOD 777 ..") == [250, 550]
    assert mode_of(h.root) == before
    assert s.codes("SITE CHMOD 700 /d") == [200]  # what is below it still can be


@pytest.mark.parametrize("line", ["SITE CHMOD 777 link", "SITE CHMOD 777 filelink",
                                  "SITE CHMOD 777 link/secret", "SITE CHMOD 777 dangling",
                                  "MFMT 20000101000000 filelink", "MFMT 20000101000000 link",
                                  "MFMT 20000101000000 link/secret"])
def test_attributes_are_not_changed_through_a_link_out_of_the_home(tmp_path: Path,
                                                                   line: str) -> None:
    h, s = logged_in(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_bytes(b"top secret")
    os.chmod(secret, 0o600)
    (h.root / "link").symlink_to(outside)
    (h.root / "filelink").symlink_to(secret)
    (h.root / "dangling").symlink_to(outside / "missing")
    before = [(os.stat(p).st_mode, os.stat(p).st_mtime) for p in (outside, secret)]
    assert s.codes(line) == [550]
    assert [(os.stat(p).st_mode, os.stat(p).st_mtime) for p in (outside, secret)] == before
    assert sorted(os.listdir(outside)) == ["secret"]


@pytest.mark.parametrize("line", ["SITE FOO", "SITE UMASK 022", "SITE EXEC ls"])
def test_unknown_site_command_is_504(tmp_path: Path, line: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes(line) == [504]


def test_site_needs_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("SITE HELP", "SITE CHMOD 600 f") == [530, 530]


# -- MFMT ---------------------------------------------------------------------------------


def test_mfmt_sets_the_modification_time_in_utc(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("f", b"x")
    assert s.send("MFMT 20200102030405 f") == ["213 Modify=20200102030405; /f"]
    assert os.stat(path).st_mtime == calendar.timegm((2020, 1, 2, 3, 4, 5))
    assert s.send("MDTM f") == ["213 20200102030405"]
    assert path.read_bytes() == b"x"


def test_mfmt_reply_gives_the_full_path(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("d/f", b"x")
    assert s.codes("CWD d") == [250]
    assert s.send("MFMT 19991231235959 f") == ["213 Modify=19991231235959; /d/f"]
    assert os.stat(path).st_mtime == calendar.timegm((1999, 12, 31, 23, 59, 59))


def test_mfmt_needs_T(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, "elradfmwM")
    path = h.put("f", b"x")
    before = os.stat(path).st_mtime
    assert s.send("MFMT 20200102030405 f") == ["550 Permission denied."]
    assert os.stat(path).st_mtime == before


@pytest.mark.parametrize("stamp", ["2020010203040", "202001020304050", "20201302030405",
                                   "20200132030405", "20200102250405", "2020010203040a",
                                   "abcdefghijklmn", "20200230000000", "-2020010203040",
                                   # time-vals out of range:
                                   "20200102030461", "09991231000000"])
def test_mfmt_bad_timestamp_is_501(tmp_path: Path, stamp: str) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("f", b"x")
    before = os.stat(path).st_mtime
    assert s.send(f"MFMT {stamp} f") == ["501 Syntax error in parameters or arguments."]
    assert os.stat(path).st_mtime == before


def test_mfmt_leap_second_60_is_accepted(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("MFMT 20161231235960 f") == [213]


def test_mfmt_without_a_path_is_501(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes("MFMT 20200102030405") == [501]


def test_mfmt_of_a_missing_file_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.send("MFMT 20200102030405 nope") == ["550 /nope: No such file or directory."]
    assert os.listdir(h.root) == []


# -- HOST (RFC 7151) -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ftp.example.com", "[::1]", "192.0.2.1", "localhost",
                                  "[2001:db8::1]"])
def test_host_before_user_is_220_and_login_works(tmp_path: Path, name: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.send(f"HOST {name}") == ["220 Host accepted."]
    assert s.proto.session.host == name
    s.login()
    assert s.codes("PWD") == [257]


def test_host_after_user_is_503(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("USER alice") == [331]
    assert s.send("HOST ftp.example.com") == ["503 HOST must come before USER."]
    assert s.codes("PASS secret") == [230]


def test_host_after_login_is_503(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    s.login()
    assert s.send("HOST ftp.example.com") == ["503 HOST must come before USER."]
    assert s.proto.session.logged_in
    assert s.codes("NOOP") == [200]


@pytest.mark.parametrize("name", ["bad name", "-x", "[zz]", "x-", "[192.0.2.1]", "a_b.com",
                                  "[::1", "host/path"])
def test_invalid_host_is_501(tmp_path: Path, name: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.send(f"HOST {name}") == ["501 Syntax error in parameters or arguments."]
    s.login()  # the session is still usable


@pytest.mark.parametrize("name", ["a..b", "256.1.1.1"])
def test_host_rejects_malformed_names(tmp_path: Path, name: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.send(f"HOST {name}") == ["501 Syntax error in parameters or arguments."]


def test_host_needs_no_login_but_an_argument(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.send("HOST") == ["501 HOST needs an argument."]
    assert s.codes("HOST example.com", "HOST example.org") == [220, 220]
    assert s.proto.session.host == "example.org"


# -- ALLO -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["ALLO 1000", "ALLO 1000 R 512"])
def test_allo_is_202(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    assert s.send(line) == ["202 No storage allocation necessary."]
    assert os.listdir(h.root) == []


def test_allo_needs_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("ALLO 1000") == [530]
