"""The users CLI and the shipped users.db."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from twisted_ftpd import users
from twisted_ftpd.auth.passwords import verify_password
from twisted_ftpd.auth.userdb import parse

SHIPPED = Path(__file__).resolve().parent.parent / "users.db"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "users.db"


def run(db: Path, *argv: str, stdin: str | None = None, monkeypatch=None) -> int:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return users.main(["--db", str(db), *argv])


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_add_creates_db_with_password(db: Path, monkeypatch, capsys) -> None:
    assert run(db, "add", "alice", "--password-stdin", stdin="s3cret\nignored\n",
               monkeypatch=monkeypatch) == 0
    record = parse(db.read_text())["alice"]
    assert verify_password("s3cret", record.password_hash)
    assert (record.perms, record.home) == ("elr", "")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert "s3cret" not in db.read_text()


def test_add_with_perms_and_home(db: Path, monkeypatch) -> None:
    assert run(db, "add", "bob", "--perm", "wlre", "--home", "pub/bob", "--password-stdin",
               stdin="pw\r\n", monkeypatch=monkeypatch) == 0
    record = parse(db.read_text())["bob"]
    assert (record.perms, record.home) == ("elrw", "pub/bob")
    assert verify_password("pw", record.password_hash)


def test_add_anonymous_takes_no_password(db: Path) -> None:
    assert run(db, "add", "anonymous") == 0
    assert db.read_text() == "anonymous::elr:\n"


def test_add_prompts_twice(db: Path, monkeypatch, capsys) -> None:
    answers = iter(["pw1", "pw1"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(db, "add", "carol") == 0
    assert verify_password("pw1", parse(db.read_text())["carol"].password_hash)


def test_add_prompt_mismatch(db: Path, monkeypatch, capsys) -> None:
    answers = iter(["pw1", "pw2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(db, "add", "carol") == 1
    assert "do not match" in one_line_error(capsys)
    assert not db.exists()


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["add", "a:b", "--password-stdin"], "pw\n", "':'"),
        (["add", "a b", "--password-stdin"], "pw\n", "whitespace"),
        (["add", "", "--password-stdin"], "pw\n", "empty"),
        (["add", "ftp", "--password-stdin"], "pw\n", "alias"),
        (["add", "alice", "--home", "/a:b", "--password-stdin"], "pw\n", "':'"),
        (["add", "alice", "--perm", "elrX", "--password-stdin"], "pw\n", "'X'"),
        (["add", "alice", "--password-stdin"], "\n", "empty password"),
        (["add", "alice", "--password-stdin"], "", "empty password"),
        (["add", "anonymous", "--password-stdin"], "pw\n", "takes no password"),
    ],
)
def test_add_refusals(db: Path, monkeypatch, capsys, argv, stdin, message) -> None:
    assert run(db, *argv, stdin=stdin, monkeypatch=monkeypatch) == 1
    assert message in one_line_error(capsys)
    assert not db.exists()


def test_add_existing_user_says_use_passwd(db: Path, monkeypatch, capsys) -> None:
    run(db, "add", "alice", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch)
    before = db.read_text()
    assert run(db, "add", "alice", "--password-stdin", stdin="pw2\n", monkeypatch=monkeypatch) == 1
    assert "use passwd" in one_line_error(capsys)
    assert db.read_text() == before


def test_passwd_changes_only_the_hash(db: Path, monkeypatch, capsys) -> None:
    db.write_text("# keep me\nanonymous::elr:\n")
    run(db, "add", "alice", "--perm", "elrw", "--home", "h", "--password-stdin", stdin="old\n",
        monkeypatch=monkeypatch)
    assert (
        run(db, "passwd", "alice", "--password-stdin", stdin="new\n", monkeypatch=monkeypatch) == 0
    )
    text = db.read_text()
    assert text.startswith("# keep me\nanonymous::elr:\n")
    record = parse(text)["alice"]
    assert verify_password("new", record.password_hash)
    assert not verify_password("old", record.password_hash)
    assert (record.perms, record.home) == ("elrw", "h")


def test_passwd_errors(db: Path, monkeypatch, capsys) -> None:
    assert (
        run(db, "passwd", "alice", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch) == 1
    )
    assert "no such file" in one_line_error(capsys)
    db.write_text("anonymous::elr:\n")
    assert (
        run(db, "passwd", "alice", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch) == 1
    )
    assert "no such user" in one_line_error(capsys)
    assert (
        run(db, "passwd", "anonymous", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch)
        == 1
    )
    assert "no password" in one_line_error(capsys)
    assert db.read_text() == "anonymous::elr:\n"


def test_remove(db: Path, capsys) -> None:
    db.write_text("# c\nanonymous::elr:\n# end\n")
    assert run(db, "remove", "anonymous") == 0
    assert db.read_text() == "# c\n# end\n"
    assert run(db, "remove", "anonymous") == 1
    assert "no such user: anonymous" in one_line_error(capsys)


def test_list_never_shows_hashes(db: Path, monkeypatch, capsys) -> None:
    db.write_text("# c\nanonymous::elr:\n")
    run(db, "add", "alice", "--perm", "elrw", "--home", "/srv/alice", "--password-stdin",
        stdin="pw\n", monkeypatch=monkeypatch)
    capsys.readouterr()
    assert run(db, "list") == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert lines == [["anonymous", "elr", "(default", "root)"], ["alice", "elrw", "/srv/alice"]]
    assert "$scrypt$" not in out


def test_broken_db_is_one_line_error(db: Path, monkeypatch, capsys) -> None:
    db.write_text("anonymous::elr:\nbroken\n")
    assert run(db, "list") == 1
    assert "line 2" in one_line_error(capsys)
    assert run(db, "add", "alice", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch) == 1
    assert "line 2" in one_line_error(capsys)
    db.write_bytes(b"\xff\n")
    assert run(db, "list") == 1
    assert "UTF-8" in one_line_error(capsys)


def test_unwritable_directory_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert run(tmp_path / "no" / "such" / "dir" / "users.db", "add", "anonymous") == 1
    assert "No such file or directory" in one_line_error(capsys)


def test_usage_errors_exit_2(db: Path, capsys) -> None:
    assert users.main(["--db", str(db)]) == 2
    assert users.main(["--db", str(db), "frobnicate"]) == 2
    assert users.main(["--db", str(db), "add"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys) -> None:
    assert users.main(["--help"]) == 0
    assert "passwd" in capsys.readouterr().out


def test_shipped_users_db_is_only_read_only_anonymous() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    records = parse(text, str(SHIPPED))
    assert list(records) == ["anonymous"]
    anonymous = records["anonymous"]
    assert (anonymous.password_hash, anonymous.perms, anonymous.home) == ("", "elr", "")
    data_lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert data_lines == ["anonymous::elr:"]
    assert "python -m twisted_ftpd.users" in text
    for letter in "elradfmwMT":
        assert f"#            {letter}  " in text
