"""users.db: parsing, live reloading, comment-preserving rewrites, permission letters."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest
from twisted.logger import Logger

from twisted_ftpd.auth import perms, userdb
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.userdb import (
    UserDB,
    UserDBError,
    UserRecord,
    format_record,
    parse,
    remove_user,
    set_user,
)

H = hash_password("secret")
H2 = hash_password("other")
_mtimes = itertools.count(1_600_000_000 * 10**9, 10**9)


def write(path: Path, text: str | bytes) -> None:
    """Write and give the file a fresh, strictly later mtime so any reload sees it."""
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    t = next(_mtimes)
    os.utime(path, ns=(t, t))


# --- perms -------------------------------------------------------------------


def test_perm_constants() -> None:
    assert perms.ALL == "elradfmwMT"
    assert perms.READ_ONLY == "elr"
    assert set(perms.MEANINGS) == set(perms.ALL)


def test_validate_canonical_order_and_dedup() -> None:
    assert perms.validate("rle") == "elr"
    assert perms.validate("TMwwee") == "ewMT"
    assert perms.validate("") == ""
    assert perms.validate(perms.ALL[::-1]) == perms.ALL


def test_validate_names_bad_letters() -> None:
    with pytest.raises(ValueError, match="'xz'"):
        perms.validate("elrzx")


# --- parse -------------------------------------------------------------------


def test_parse_skips_comments_and_blank_lines() -> None:
    text = f"# header\n\n   \n  # indented comment\nalice:{H}:elr:/srv/a\n"
    records = parse(text)
    assert records == {"alice": UserRecord("alice", H, "elr", "/srv/a", {})}


def test_parse_anonymous_and_empty_home() -> None:
    records = parse("anonymous::elr:\n")
    assert records["anonymous"] == UserRecord("anonymous", "", "elr", "", {})


def test_parse_options_kept_in_order_including_unknown() -> None:
    record = parse(f"bob:{H}:elrw:pub:tls=required:zzz=1:empty=\n")["bob"]
    assert record.home == "pub"
    assert record.options == {"tls": "required", "zzz": "1", "empty": ""}
    assert list(record.options) == ["tls", "zzz", "empty"]


def test_parse_canonicalises_perms_and_accepts_crlf_and_bom() -> None:
    records = parse(f"\ufeffalice:{H}:rle:\r\nbob:{H2}::home\r\n")
    assert records["alice"].perms == "elr"
    assert records["bob"] == UserRecord("bob", H2, "", "home", {})


def test_parse_keeps_unicode_names() -> None:
    assert "jürgen" in parse(f"jürgen:{H}:elr:\n")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("alice:" + H + ":elr", "expected name:hash:perms:home"),
        ("alice::elr:", "empty password hash"),
        ("alice:plaintext:elr:", "malformed password hash"),
        ("anonymous:" + H + ":elr:", "takes no password"),
        ("alice:" + H + ":elrq:", "'q'"),
        (":" + H + ":elr:", "user name is empty"),
        ("al ice:" + H + ":elr:", "whitespace"),
        (" alice:" + H + ":elr:", "whitespace"),
        ("ftp:" + H + ":elr:", "alias"),
        ("alice:" + H + ":elr::tls", "not key=value"),
        ("alice:" + H + ":elr::=x", "not key=value"),
        ("alice:" + H + ":elr::a=1:a=2", "given twice"),
    ],
)
def test_parse_errors_name_source_and_line(line: str, why: str) -> None:
    text = f"# comment\n\nanonymous::elr:\n{line}\n"
    with pytest.raises(UserDBError, match=why) as info:
        parse(text, source="/etc/ftp/users.db")
    assert str(info.value).startswith("/etc/ftp/users.db, line 4: ")


def test_parse_duplicate_names() -> None:
    with pytest.raises(UserDBError, match=r"users\.db, line 3: duplicate user 'alice'"):
        parse(f"alice:{H}:elr:\n#\nalice:{H2}:elr:\n")


def test_user_db_error_is_value_error() -> None:
    assert issubclass(UserDBError, ValueError)


# --- format_record -----------------------------------------------------------


def test_format_record_roundtrips() -> None:
    record = UserRecord("carol", H, "wlre", "sub/dir", {"tls": "required"})
    line = format_record(record)
    assert line == f"carol:{H}:elrw:sub/dir:tls=required"
    assert parse(line)["carol"] == UserRecord("carol", H, "elrw", "sub/dir", {"tls": "required"})
    assert format_record(UserRecord("anonymous", "", "elr", "")) == "anonymous::elr:"


@pytest.mark.parametrize(
    "record",
    [
        UserRecord("a:b", H, "elr", ""),
        UserRecord("a b", H, "elr", ""),
        UserRecord("#a", H, "elr", ""),
        UserRecord("alice", H, "elr", "/srv:x"),
        UserRecord("alice", H, "elr", "/srv\nx"),
        UserRecord("alice", "", "elr", ""),
        UserRecord("anonymous", H, "elr", ""),
        UserRecord("alice", H, "elrX", ""),
        UserRecord("alice", H, "elr", "", {"k": "a:b"}),
        UserRecord("alice", H, "elr", "", {"": "v"}),
    ],
)
def test_format_record_refuses_unrepresentable(record: UserRecord) -> None:
    with pytest.raises(ValueError):
        format_record(record)


# --- UserDB (live reload) ------------------------------------------------------


def make_db(path: Path) -> tuple[UserDB, list[dict]]:
    events: list[dict] = []
    db = UserDB(path)
    db.log = Logger(observer=events.append)  # type: ignore[misc]
    return db, events


def levels(events: list[dict]) -> list[str]:
    return [e["log_level"].name for e in events]


def test_lookup(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, f"anonymous::elr:\nalice:{H}:elr:a\n")
    db, _ = make_db(path)
    assert db.lookup("alice") == UserRecord("alice", H, "elr", "a", {})
    assert db.lookup("anonymous") is not None
    assert db.lookup("mallory") is None
    assert set(db.records()) == {"anonymous", "alice"}


def test_reload_when_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, f"alice:{H}:elr:\n")
    db, _ = make_db(path)
    assert db.lookup("alice").perms == "elr"  # type: ignore[union-attr]
    write(path, f"alice:{H}:elrw:\n")  # same size: only the mtime tells
    assert db.lookup("alice").perms == "elrw"  # type: ignore[union-attr]
    write(path, f"bob:{H}:elr:\n")
    assert db.lookup("alice") is None
    assert db.lookup("bob") is not None


def test_no_reparse_while_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users.db"
    write(path, f"alice:{H}:elr:\n")
    calls: list[str] = []
    real_parse = userdb.parse

    def counting_parse(text: str, source: str = "users.db") -> dict[str, UserRecord]:
        calls.append(source)
        return real_parse(text, source)

    monkeypatch.setattr(userdb, "parse", counting_parse)
    db, _ = make_db(path)
    for _ in range(3):
        assert db.lookup("alice") is not None
    assert len(calls) == 1
    os.utime(path, ns=(next(_mtimes),) * 2)
    db.lookup("alice")
    assert len(calls) == 2


def test_missing_file_means_no_users_then_appears(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    db, events = make_db(path)
    assert db.lookup("alice") is None
    assert db.lookup("alice") is None
    assert levels(events) == ["warn"]  # warned once, not on every lookup
    write(path, f"alice:{H}:elr:\n")
    assert db.lookup("alice") is not None


def test_broken_file_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, f"alice:{H}:elr:\n")
    db, events = make_db(path)
    assert db.lookup("alice") is not None
    write(path, f"alice:{H}:elr:\nbroken line\n")
    assert db.lookup("alice") is not None
    assert db.lookup("alice") is not None
    errors = [e for e in events if e["log_level"].name == "error"]
    assert len(errors) == 1
    assert "line 2" in errors[0]["error"]
    write(path, b"alice:\xff\n")  # not UTF-8 either
    assert db.lookup("alice") is not None
    write(path, f"bob:{H}:elr:\n")
    assert db.lookup("alice") is None
    assert db.lookup("bob") is not None


def test_broken_file_at_start_means_no_users(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, "nonsense\n")
    db, events = make_db(path)
    assert db.lookup("nonsense") is None
    assert "error" in levels(events)


# --- set_user / remove_user ----------------------------------------------------

ORIGINAL = (
    "# users.db\n"
    "#   with a comment   \n"
    "\n"
    "anonymous::elr:\n"
    "# alice is the admin\n"
    f"alice:{H}:elr:home/alice:tls=required\n"
    "   \n"
    f"bob:{H}:rle:\n"
    "# trailing comment"
)


def test_set_user_replaces_in_place(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, ORIGINAL)
    set_user(path, UserRecord("alice", H2, "elrw", "home/alice", {"tls": "required"}))
    expected = ORIGINAL.replace(f"alice:{H}:elr:", f"alice:{H2}:elrw:")
    assert path.read_text() == expected
    assert parse(path.read_text())["alice"].password_hash == H2


def test_set_user_appends_new_user(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, ORIGINAL)
    set_user(path, UserRecord("carol", H2, "elr", ""))
    assert path.read_text() == ORIGINAL + f"\ncarol:{H2}:elr:\n"
    write(path, ORIGINAL + "\n")
    set_user(path, UserRecord("carol", H2, "elr", ""))
    assert path.read_text() == ORIGINAL + f"\ncarol:{H2}:elr:\n"


def test_set_user_keeps_crlf(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, f"# c\r\nalice:{H}:elr:\r\n")
    set_user(path, UserRecord("alice", H2, "elr", ""))
    set_user(path, UserRecord("bob", H, "elr", ""))
    assert path.read_bytes() == f"# c\r\nalice:{H2}:elr:\r\nbob:{H}:elr:\r\n".encode()


def test_set_user_creates_missing_file_private(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    set_user(path, UserRecord("anonymous", "", "elr", ""))
    assert path.read_text() == "anonymous::elr:\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_remove_user_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, ORIGINAL)
    remove_user(path, "alice")
    assert path.read_text() == ORIGINAL.replace(f"alice:{H}:elr:home/alice:tls=required\n", "")
    remove_user(path, "anonymous")
    assert set(parse(path.read_text())) == {"bob"}


def test_remove_user_absent(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, ORIGINAL)
    with pytest.raises(KeyError):
        remove_user(path, "mallory")
    with pytest.raises(KeyError):
        remove_user(path, "users.db")  # a comment line's text is never a user
    with pytest.raises(KeyError):
        remove_user(tmp_path / "missing.db", "alice")
    assert path.read_text() == ORIGINAL


def test_rewrite_is_atomic_and_preserves_mode(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, ORIGINAL)
    path.chmod(0o640)
    inode = path.stat().st_ino
    set_user(path, UserRecord("carol", H2, "elr", ""))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # replaced by rename, never rewritten in place
    remove_user(path, "carol")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.db"]  # no temp files left


def test_rewrite_follows_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    write(real, ORIGINAL)
    link = tmp_path / "users.db"
    link.symlink_to(real)
    set_user(link, UserRecord("carol", H2, "elr", ""))
    assert link.is_symlink()
    assert "carol" in parse(real.read_text())


def test_rewrite_refuses_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, "garbage\n")
    with pytest.raises(UserDBError, match="line 1"):
        set_user(path, UserRecord("carol", H2, "elr", ""))
    assert path.read_text() == "garbage\n"


def test_set_user_refuses_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    write(path, ORIGINAL)
    with pytest.raises(ValueError):
        set_user(path, UserRecord("carol", H2, "elr", "a:b"))
    assert path.read_text() == ORIGINAL
