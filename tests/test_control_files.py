"""Directory and file commands over the control channel, and path confinement."""

from __future__ import annotations

import calendar
import os
from pathlib import Path

import pytest

from tests.harness import Harness, Session, logged_in


def pwd(s: Session) -> str:
    reply = s.send("PWD")
    assert len(reply) == 1 and reply[0].startswith("257 "), reply
    return reply[0]


def assert_untouched(outside: Path) -> None:
    """The directory outside the root still holds its one file, unchanged."""
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"top secret"


# -- PWD, CWD, CDUP ---------------------------------------------------------------------


def test_pwd_at_login_is_root(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert pwd(s) == '257 "/" is the current directory.'


def test_pwd_doubles_quotes_in_names(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.send('MKD a"b') == ['257 "/a""b" created.']
    assert (h.root / 'a"b').is_dir()
    assert s.codes('CWD a"b') == [250]
    assert pwd(s) == '257 "/a""b" is the current directory.'


def test_xpwd_is_pwd(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("XPWD") == ['257 "/" is the current directory.']


def test_cwd_and_cdup(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "a" / "b").mkdir(parents=True)
    assert s.send("CWD a/b") == ["250 Directory changed to /a/b."]
    assert pwd(s) == '257 "/a/b" is the current directory.'
    assert s.send("CDUP") == ["250 Directory changed to /a."]
    assert s.codes("XCUP", "XCWD a", "CWD b") == [250, 250, 250]
    assert pwd(s) == '257 "/a/b" is the current directory.'
    assert s.codes("CWD /") == [250]
    assert pwd(s) == '257 "/" is the current directory.'


def test_cwd_relative_to_current_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "a" / "b").mkdir(parents=True)
    h.put("a/b/f.txt", b"12345")
    assert s.codes("TYPE I", "CWD a") == [200, 250]
    assert s.send("SIZE b/f.txt") == ["213 5"]
    assert s.send("SIZE /a/b/f.txt") == ["213 5"]
    assert s.codes("SIZE a/b/f.txt") == [550]


def test_cwd_into_a_file_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f.txt", b"x")
    assert s.send("CWD f.txt") == ["550 /f.txt: Not a directory."]
    assert pwd(s) == '257 "/" is the current directory.'


def test_cwd_missing_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("CWD nowhere") == ["550 /nowhere: No such file or directory."]
    assert pwd(s) == '257 "/" is the current directory.'


def test_cdup_at_root_stays_at_root(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes("CDUP", "CDUP") == [250, 250]
    assert pwd(s) == '257 "/" is the current directory.'


# -- MKD, RMD, DELE ---------------------------------------------------------------------


def test_mkd_creates_and_replies_257_with_the_absolute_path(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.send("MKD new") == ['257 "/new" created.']
    assert s.codes("CWD new") == [250]
    assert s.send("XMKD deeper") == ['257 "/new/deeper" created.']
    assert (h.root / "new" / "deeper").is_dir()


def test_mkd_existing_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.send("MKD d") == ["550 /d: File exists."]


def test_mkd_without_parent_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("MKD a/b") == [550]
    assert os.listdir(h.root) == []


def test_mkd_root_is_refused(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes("MKD /", "MKD ..") == [550, 550]


def test_rmd_removes_an_empty_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.send("RMD d") == ["250 Directory removed."]
    assert not (h.root / "d").exists()


def test_rmd_non_empty_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("d/f", b"x")
    assert s.send("RMD d") == ["550 /d: Directory not empty."]
    assert (h.root / "d" / "f").read_bytes() == b"x"


def test_rmd_of_a_file_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("RMD f", "XRMD f") == [550, 550]
    assert (h.root / "f").exists()


def test_rmd_of_root_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("RMD /") == [550]
    assert h.root.is_dir()


def test_dele_removes_a_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.send("DELE f") == ["250 File removed."]
    assert os.listdir(h.root) == []


def test_dele_of_a_directory_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.send("DELE d") == ["550 /d: Is a directory."]
    assert (h.root / "d").is_dir()


def test_dele_missing_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("DELE nope") == ["550 /nope: No such file or directory."]


# -- RNFR / RNTO ----------------------------------------------------------------------------


def test_rename(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("old.txt", b"content")
    (h.root / "d").mkdir()
    assert s.send("RNFR old.txt") == ["350 Ready for destination name."]
    assert s.send("RNTO d/new.txt") == ["250 Rename successful."]
    assert not (h.root / "old.txt").exists()
    assert (h.root / "d" / "new.txt").read_bytes() == b"content"


def test_rename_a_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("d/f", b"x")
    assert s.codes("RNFR d", "RNTO e") == [350, 250]
    assert (h.root / "e" / "f").read_bytes() == b"x"


def test_rnfr_missing_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("RNFR nope") == ["550 /nope: No such file or directory."]
    assert s.codes("RNTO x") == [503]


def test_rnto_without_rnfr_is_503(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.send("RNTO x") == ["503 RNFR required first."]
    assert os.listdir(h.root) == []


@pytest.mark.parametrize("between", ["NOOP", "PWD", "XYZZY", "SIZE f"])
def test_rnfr_must_be_followed_directly_by_rnto(tmp_path: Path, between: str) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("RNFR f") == [350]
    s.send(between)
    assert s.codes("RNTO g") == [503]
    assert os.listdir(h.root) == ["f"]


def test_rnto_is_used_up_by_one_rename(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("RNFR f", "RNTO g", "RNTO h") == [350, 250, 503]
    assert os.listdir(h.root) == ["g"]


def test_rnto_replaces_an_existing_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("a", b"new")
    h.put("b", b"old")
    assert s.codes("RNFR a", "RNTO b") == [350, 250]
    assert os.listdir(h.root) == ["b"]
    assert (h.root / "b").read_bytes() == b"new"


# -- SIZE, MDTM -------------------------------------------------------------------------------


def test_size_of_a_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x" * 1234)
    h.put("empty", b"")
    assert s.codes("TYPE I") == [200]
    assert s.send("SIZE f") == ["213 1234"]
    assert s.send("SIZE empty") == ["213 0"]


def test_size_of_a_directory_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.codes("TYPE I") == [200]
    assert s.send("SIZE d") == ["550 /d: Is a directory."]
    assert s.codes("SIZE /") == [550]


def test_size_missing_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("TYPE I") == ["200 Type set to I."]
    assert s.send("SIZE nope") == ["550 /nope: No such file or directory."]


def test_mdtm_is_utc(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    path = h.put("f", b"x")
    when = calendar.timegm((2021, 3, 4, 5, 6, 7))
    os.utime(path, (when, when))
    assert s.send("MDTM f") == ["213 20210304050607"]


def test_mdtm_directory_and_missing_are_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.codes("MDTM d", "MDTM nope") == [550, 550]


# -- awkward names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["with space.txt", "  two leading spaces", "-x leading dash",
                                  "ünïcødé €.txt", "日本語", "trailing space "])
def test_awkward_names_round_trip(tmp_path: Path, name: str) -> None:
    h, s = logged_in(tmp_path)
    assert [r[:3] for r in s.upload(f"STOR {name}", b"payload")] == ["150", "226"]
    assert (h.root / name).read_bytes() == b"payload"
    replies, names = s.listing("NLST")
    assert names == [name]
    replies, lines = s.listing("LIST")
    assert len(lines) == 1 and lines[0].endswith(" " + name)
    replies, data = s.download(b"RETR " + name.encode())
    assert data == b"payload" and replies[-1].startswith("226")
    assert s.codes("TYPE I") == [200]
    assert s.send(f"SIZE {name}") == ["213 7"]
    assert s.codes(f"DELE {name}") == [250]
    assert os.listdir(h.root) == []


@pytest.mark.parametrize("name", ["dir with space", "-dash dir", "ünïcødé", "a\"quote"])
def test_awkward_directory_names_round_trip(tmp_path: Path, name: str) -> None:
    h, s = logged_in(tmp_path)
    quoted = name.replace('"', '""')
    assert s.send(f"MKD {name}") == [f'257 "/{quoted}" created.']
    assert (h.root / name).is_dir()
    assert s.codes(f"CWD {name}") == [250]
    assert pwd(s) == f'257 "/{quoted}" is the current directory.'
    assert [r[:3] for r in s.upload("STOR inner", b"x")] == ["150", "226"]
    assert (h.root / name / "inner").read_bytes() == b"x"
    assert s.codes("CDUP") == [250]
    _, names = s.listing("NLST")
    assert names == [name]


def test_utf8_name_is_utf8_on_disk(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("MKD été") == [257]
    assert os.listdir(os.fsencode(h.root)) == ["été".encode()]


# -- confinement ---------------------------------------------------------------------------


@pytest.mark.parametrize("arg", ["../../..", "/../..", "..\\..", "..", "/..", "a/../../..",
                                 "\\..\\..\\", "./../.", "//.."])
def test_cwd_never_leaves_the_root(tmp_path: Path, arg: str) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "a").mkdir()
    assert s.codes(f"CWD {arg}") == [250]
    assert pwd(s) == '257 "/" is the current directory.'
    assert s.codes("CDUP") == [250]
    assert pwd(s) == '257 "/" is the current directory.'


def test_dotdot_stops_at_root_then_descends(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "a").mkdir()
    assert s.codes("CWD ../../a") == [250]
    assert pwd(s) == '257 "/a" is the current directory.'


@pytest.mark.parametrize("arg", ["../../etc/passwd", "/etc/passwd", "..\\..\\etc\\passwd",
                                 "/../../../../etc/passwd"])
def test_retr_of_system_paths_stays_in_root(tmp_path: Path, arg: str) -> None:
    _, s = logged_in(tmp_path)
    replies, data = s.download(f"RETR {arg}", may_refuse=True)
    assert replies == ["550 /etc/passwd: No such file or directory."]
    assert data == b""


def test_dotdot_paths_reach_files_inside_root(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("etc/passwd", b"fake")
    replies, data = s.download("RETR ../../etc/passwd")
    assert data == b"fake" and replies[-1].startswith("226")


@pytest.fixture
def escape(tmp_path: Path) -> tuple[Harness, Session, Path]:
    """A root with links to a directory and a file outside it."""
    h, s = logged_in(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"top secret")
    (h.root / "link").symlink_to(outside)
    (h.root / "filelink").symlink_to(outside / "secret")
    (h.root / "dangling").symlink_to(outside / "missing")
    return h, s, outside


def test_symlink_out_of_root_cwd_is_550(escape: tuple[Harness, Session, Path]) -> None:
    _, s, _ = escape
    assert s.codes("CWD link", "CWD link/..") == [550, 250]
    assert pwd(s) == '257 "/" is the current directory.'


@pytest.mark.parametrize("arg", ["link/secret", "filelink"])
def test_symlink_out_of_root_retr_is_550(escape: tuple[Harness, Session, Path],
                                          arg: str) -> None:
    _, s, _ = escape
    replies, data = s.download(f"RETR {arg}", may_refuse=True)
    assert len(replies) == 1 and replies[0].startswith("550"), replies
    assert data == b""


@pytest.mark.parametrize("line", ["LIST link", "NLST link", "LIST filelink", "LIST -la link"])
def test_symlink_out_of_root_list_is_550(escape: tuple[Harness, Session, Path],
                                          line: str) -> None:
    _, s, _ = escape
    replies, lines = s.listing(line, may_refuse=True)
    assert len(replies) == 1 and replies[0].startswith("550"), replies
    assert lines == []


@pytest.mark.parametrize("arg", ["link/new", "link/secret", "filelink", "dangling"])
def test_symlink_out_of_root_stor_is_550(escape: tuple[Harness, Session, Path],
                                          arg: str) -> None:
    _, s, outside = escape
    replies = s.upload(f"STOR {arg}", b"overwritten", may_refuse=True)
    assert len(replies) == 1 and replies[0].startswith("550"), replies
    assert_untouched(outside)


@pytest.mark.parametrize("line", ["SIZE link/secret", "SIZE filelink", "MDTM filelink",
                                  "MKD link/made", "DELE link/secret", "RMD link",
                                  "RNFR link/secret", "CWD dangling"])
def test_symlink_out_of_root_other_commands(escape: tuple[Harness, Session, Path],
                                            line: str) -> None:
    _, s, outside = escape
    assert s.codes("TYPE I") == [200]  # else SIZE is refused for the mode, not the link
    assert s.codes(line) == [550]
    assert_untouched(outside)


@pytest.mark.parametrize("name", ["link", "filelink", "dangling"])
def test_a_link_out_of_root_can_be_deleted(escape: tuple[Harness, Session, Path],
                                           name: str) -> None:
    h, s, outside = escape
    assert s.codes(f"DELE {name}") == [250]
    assert not os.path.lexists(h.root / name)
    assert_untouched(outside)


@pytest.mark.parametrize("name", ["link", "filelink", "dangling"])
def test_a_link_out_of_root_can_be_renamed(escape: tuple[Harness, Session, Path],
                                           name: str) -> None:
    h, s, outside = escape
    target = os.readlink(h.root / name)
    h.put("sub/keep", b"")
    assert s.codes(f"RNFR {name}", "RNTO sub/moved") == [350, 250]
    assert os.readlink(h.root / "sub" / "moved") == target
    assert not os.path.lexists(h.root / name)
    # It is still a link out: nothing follows it.
    assert s.codes("TYPE I", "SIZE sub/moved", "CWD sub/moved", "MDTM sub/moved") == [
        200, 550, 550, 550]
    assert_untouched(outside)


@pytest.mark.parametrize("destination", ["link/moved", "link", "dangling"])
def test_a_link_out_of_root_is_not_renamed_out_or_over_a_link_out(
        escape: tuple[Harness, Session, Path], destination: str) -> None:
    h, s, outside = escape
    assert s.codes("RNFR filelink", f"RNTO {destination}") == [350, 550]
    assert os.readlink(h.root / "filelink") == str(outside / "secret")
    assert os.readlink(h.root / "link") == str(outside)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert os.readlink(h.root / "dangling") == str(outside / "missing")


def test_rename_into_a_link_out_of_root_is_refused(
        escape: tuple[Harness, Session, Path]) -> None:
    h, s, outside = escape
    h.put("mine", b"mine")
    assert s.codes("RNFR mine", "RNTO link/mine") == [350, 550]
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (h.root / "mine").exists()


def test_symlink_inside_root_is_followed(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("real/f", b"abc")
    (h.root / "alias").symlink_to(h.root / "real")
    assert s.codes("TYPE I") == [200]
    assert s.send("SIZE alias/f") == ["213 3"]
    assert s.codes("CWD alias") == [250]


@pytest.mark.parametrize("line", ["CWD a\0b", "MKD a\0b", "DELE a\0b", "RNFR a\0b",
                                  "SIZE \0", "MDTM x\0", "RMD \0\0", "STOR a\0b",
                                  "RETR a\0b", "LIST a\0b"])
def test_nul_in_a_path_is_refused(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("TYPE I") == [200]  # else SIZE is refused for the mode, not the NUL
    s.pasv()
    reply = s.send(line)
    assert len(reply) == 1 and reply[0][0] == "5", reply
    assert os.listdir(h.root) == []
    assert s.codes("NOOP") == [200]
