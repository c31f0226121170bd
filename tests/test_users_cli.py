"""The users CLI and the shipped users.db."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
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
    """The tool on ``db``, with the server root (for relative homes) next to it."""
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return users.main(["--db", str(db), "--root", str(db.parent), *argv])


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
    (db.parent / "pub" / "bob").mkdir(parents=True)
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
    run(db, "add", "alice", "--perm", "elrw", "--home", "h", "--create-home", "--password-stdin",
        stdin="old\n", monkeypatch=monkeypatch)
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
    home = db.parent / "alice"
    run(db, "add", "alice", "--perm", "elrw", "--home", str(home), "--create-home",
        "--tls", "required", "--password-stdin", stdin="pw\n", monkeypatch=monkeypatch)
    capsys.readouterr()
    assert run(db, "list") == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert lines == [["anonymous", "elr", "(default", "root)"],
                     ["alice", "elrw", str(home), "tls=required"]]
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


# -- homes ----------------------------------------------------------------------------


def add(db: Path, monkeypatch, *argv: str) -> int:
    return run(db, "add", "bob", *argv, "--password-stdin", stdin="pw\n",
               monkeypatch=monkeypatch)


@pytest.mark.parametrize("home", ["missing", "deep/er/missing", "/nonexistent/ftp/bob"])
def test_add_refuses_a_home_that_does_not_exist(db: Path, monkeypatch, capsys, home) -> None:
    assert add(db, monkeypatch, "--home", home) == 1
    message = one_line_error(capsys)
    assert "does not exist" in message and "--create-home" in message
    expected = Path(home) if home.startswith("/") else db.parent / home
    assert str(expected) in message  # where the server would look: below --root
    assert not db.exists()


def test_create_home_makes_it_and_says_so(db: Path, monkeypatch, capsys) -> None:
    assert add(db, monkeypatch, "--home", "pub/bob", "--create-home") == 0
    assert (db.parent / "pub" / "bob").is_dir()
    out = capsys.readouterr().out
    assert f"created home directory {db.parent / 'pub' / 'bob'}" in out
    assert parse(db.read_text())["bob"].home == "pub/bob"


def test_a_home_that_is_a_file_is_refused(db: Path, monkeypatch, capsys) -> None:
    (db.parent / "plain").write_text("x")
    assert add(db, monkeypatch, "--home", "plain", "--create-home") == 1
    assert "not a directory" in one_line_error(capsys)


def test_empty_home_is_the_root_and_needs_no_check(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "users.db"
    assert users.main(["--db", str(db), "--root", str(tmp_path / "not-yet"), "add", "anonymous"]
                      ) == 0
    assert parse(db.read_text())["anonymous"].home == ""


def test_a_bad_record_creates_no_home(db: Path, monkeypatch, capsys) -> None:
    assert add(db, monkeypatch, "--home", "made", "--create-home", "--perm", "elrX") == 1
    one_line_error(capsys)
    assert not (db.parent / "made").exists()


# -- what the commands say, and the file's mode -----------------------------------------------


def test_every_command_says_what_it_did(db: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert add(db, monkeypatch, "--perm", "elrw") == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"created {db} (mode 0600)",
                   f"added user bob to {db}: perms elrw, home the server root"]
    assert run(db, "passwd", "bob", "--password-stdin", stdin="new\n",
               monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out == f"changed the password of bob in {db}\n"
    assert run(db, "modify", "bob", "--perm", "elr") == 0
    assert capsys.readouterr().out == (f"modified bob in {db}: perms elr, home the server root "
                                       "(was perms elrw, home the server root)\n")
    assert run(db, "remove", "bob") == 0
    assert capsys.readouterr().out.startswith(f"removed bob from {db}")
    assert run(db, "add", "anonymous") == 0
    assert capsys.readouterr().out == (f"added anonymous login to {db}: perms elr, "
                                       "home the server root\n")


def test_as_root_new_files_and_homes_come_with_a_chown_hint(db: Path, monkeypatch,
                                                           capsys) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert add(db, monkeypatch, "--home", "bob", "--create-home") == 0
    out = capsys.readouterr().out
    assert out.count("it belongs to root: chown it") == 2  # the file and the home


@pytest.mark.parametrize("command", [["passwd", "bob", "--password-stdin"],
                                     ["modify", "bob", "--perm", "elr"], ["remove", "bob"]])
def test_a_rewritten_file_is_owner_only(db: Path, monkeypatch, command) -> None:
    assert add(db, monkeypatch, "--perm", "elrw") == 0
    db.chmod(0o644)
    assert run(db, *command, stdin="pw2\n", monkeypatch=monkeypatch) == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_remove_from_a_missing_file(db: Path, capsys) -> None:
    assert run(db, "remove", "bob") == 1
    assert "no such file" in one_line_error(capsys)


# -- modify -----------------------------------------------------------------------------


def hashes_and_comments(db: Path) -> tuple[str, list[str]]:
    text = db.read_text()
    return parse(text)["bob"].password_hash, [ln for ln in text.splitlines() if ln[:1] == "#"]


def test_modify_permissions_home_tls_and_limits(db: Path, monkeypatch, capsys) -> None:
    db.write_text("# users\nanonymous::elr:\n")
    assert add(db, monkeypatch) == 0
    before = hashes_and_comments(db)
    (db.parent / "bob").mkdir()
    assert run(db, "modify", "bob", "--perm", "elrwd", "--home", "bob", "--tls", "required",
               "--download-rate", "500K", "--upload-rate", "1M") == 0
    record = parse(db.read_text())["bob"]
    assert (record.perms, record.home) == ("elrdw", "bob")
    assert record.options == {"tls": "required", "download_rate": "500K", "upload_rate": "1M"}
    assert hashes_and_comments(db) == before  # the password and the comments are kept
    assert "anonymous::elr:" in db.read_text()
    assert "tls=required, download_rate=500K, upload_rate=1M" in capsys.readouterr().out

    assert run(db, "modify", "bob", "--tls", "optional", "--unset", "download-rate",
               "--unset", "upload_rate", "--home", "") == 0
    record = parse(db.read_text())["bob"]
    assert (record.home, record.options) == ("", {})


def test_modify_keeps_options_it_does_not_know(db: Path, monkeypatch) -> None:
    assert add(db, monkeypatch) == 0
    line = [ln for ln in db.read_text().splitlines() if ln.startswith("bob:")][0]
    db.write_text(line + ":future=1\n")
    assert run(db, "modify", "bob", "--perm", "elrw") == 0
    assert parse(db.read_text())["bob"].options == {"future": "1"}
    assert run(db, "modify", "bob", "--unset", "future") == 0
    assert parse(db.read_text())["bob"].options == {}


def test_modify_with_nothing_to_change_leaves_the_file(db: Path, monkeypatch, capsys) -> None:
    assert add(db, monkeypatch, "--perm", "elr") == 0
    before = db.read_bytes()
    capsys.readouterr()
    assert run(db, "modify", "bob", "--perm", "lre") == 0
    assert capsys.readouterr().out.startswith("bob unchanged")
    assert db.read_bytes() == before


@pytest.mark.parametrize(("argv", "message"), [
    (["modify", "carol", "--perm", "elr"], "no such user: carol"),
    (["modify", "bob", "--perm", "elrX"], "'X'"),
    (["modify", "bob", "--home", "nowhere"], "does not exist"),
    (["modify", "bob", "--home", "a:b"], "':'"),
    (["modify", "bob", "--download-rate", "fast"], "--download-rate: 'fast' is not a size"),
    (["modify", "bob", "--unset", "tls"], "user bob has no option tls"),
])
def test_modify_refusals_change_nothing(db: Path, monkeypatch, capsys, argv, message) -> None:
    assert add(db, monkeypatch) == 0
    before = db.read_bytes()
    capsys.readouterr()
    assert run(db, *argv) == 1
    assert message in one_line_error(capsys)
    assert db.read_bytes() == before


def test_modify_bad_tls_value_is_a_usage_error(db: Path, monkeypatch, capsys) -> None:
    assert add(db, monkeypatch) == 0
    assert run(db, "modify", "bob", "--tls", "maybe") == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_checked_users_db_option_has_a_flag() -> None:
    from twisted_ftpd.auth.userdb import OPTION_VALUES

    parser = users._parser("t")
    text = parser.format_help() + "".join(
        action.format_help() for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for action in action.choices.values())
    for key in OPTION_VALUES:
        assert f"--{key.replace('_', '-')}" in text, key


# -- the server's config file ----------------------------------------------------------


def test_db_and_root_come_from_the_config_file(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "srv" / "bob").mkdir(parents=True)
    config = tmp_path / "ftpd.toml"
    config.write_text(f'users = "{tmp_path / "etc.db"}"\nroot = "{tmp_path / "srv"}"\n'
                      "port = 21\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert users.main(["--config", str(config), "add", "bob", "--home", "bob",
                       "--password-stdin"]) == 0
    assert parse((tmp_path / "etc.db").read_text())["bob"].home == "bob"
    other = tmp_path / "other.db"
    assert users.main(["--config", str(config), "--db", str(other), "add", "anonymous"]) == 0
    assert other.exists()  # --db wins over the file


def test_a_broken_config_file_is_one_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "ftpd.toml"
    config.write_text("users = \n")
    assert users.main(["--config", str(config), "list"]) == 1
    assert "not valid TOML" in one_line_error(capsys)
    config.write_text("users = 5\n")
    assert users.main(["--config", str(config), "list"]) == 1
    assert "users: expected a string" in one_line_error(capsys)


# -- how it is run ------------------------------------------------------------------------


CONSOLE_SCRIPT = str(Path(sys.executable).with_name("twisted-ftpd"))


def _run_command(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60)


def test_twisted_ftpd_users_subcommand(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    result = _run_command(CONSOLE_SCRIPT, "users", "--db", str(db), "add", "bob",
                          "--password-stdin", stdin="pw\n")
    assert result.returncode == 0, result.stderr
    assert "added user bob" in result.stdout
    assert verify_password("pw", parse(db.read_text())["bob"].password_hash)
    result = _run_command(CONSOLE_SCRIPT, "users", "--db", str(db), "remove", "carol")
    assert result.returncode == 1
    assert result.stderr == "twisted-ftpd users: error: no such user: carol\n"
    result = _run_command(CONSOLE_SCRIPT, "users", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: twisted-ftpd users")


def test_python_dash_m_still_works(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    result = _run_command(sys.executable, "-m", "twisted_ftpd.users", "--db", str(db), "list")
    assert result.returncode == 1
    assert result.stderr.startswith("python -m twisted_ftpd.users: error: ")


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
