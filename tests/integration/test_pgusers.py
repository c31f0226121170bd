"""Users from a real PostgreSQL (started by the tests, tests/integration/backends.py):
logins, edits without a restart, the import of a users.db, the database going away,
and names that try SQL injection."""

from __future__ import annotations

import ftplib
import io
from pathlib import Path

import psycopg
import pytest
import pytest_twisted
from twisted.logger import capturedLogs

from tests.integration.conftest import close_quietly, in_thread
from twisted_ftpd import users as users_tool
from twisted_ftpd.auth import userdb
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.pgusers import PostgresUsers
from twisted_ftpd.auth.userdb import UserRecord

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": ("secret", "elr"), "bob": ("bobpw", "elradfmw")}


@pytest.fixture
def database(postgres_server) -> str:  # type: ignore[no-untyped-def]
    """A fresh database holding the shipped schema and alice (read-only) and bob."""
    url = postgres_server.database()
    source = PostgresUsers(url)
    source.create_schema()
    for name, (password, letters) in PASSWORDS.items():
        source.upsert(UserRecord(name, hash_password(password), letters, ""))
    source.close()
    return url


def sql(url: str, statement: str, *params: object) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def login_reply(server, user: str, password: str) -> str:  # type: ignore[no-untyped-def]
    """The reply to PASS (or the 4xx/5xx error text); blocking."""
    ftp = ftplib.FTP(timeout=30)
    ftp.connect(server.host, server.port)
    try:
        return ftp.login(user, password)
    except ftplib.Error as e:
        return str(e)
    finally:
        ftp.close()


@pytest_twisted.ensureDeferred
async def test_a_postgresql_user_logs_in_and_edits_count_at_the_next_login(
        node_factory, database) -> None:
    server = await node_factory(database, PASSWORDS)

    def upload(user: str, password: str) -> str:
        with server.session(user, password) as ftp:
            try:
                return ftp.storbinary("STOR up.txt", io.BytesIO(b"data"))
            except ftplib.error_perm as e:
                return str(e)

    assert (await in_thread(upload, "alice", "secret")).startswith("550")  # elr: read-only
    sql(database, "UPDATE ftpd_users SET perms = %s WHERE name = %s", "elrw", "alice")
    assert (await in_thread(upload, "alice", "secret")).startswith("226")
    assert (server.root / "up.txt").read_bytes() == b"data"

    sql(database, "UPDATE ftpd_users SET password_hash = %s WHERE name = %s",
        hash_password("changed"), "alice")
    assert (await in_thread(login_reply, server, "alice", "secret")).startswith("530")
    assert (await in_thread(login_reply, server, "alice", "changed")).startswith("230")

    sql(database, "DELETE FROM ftpd_users WHERE name = %s", "alice")
    assert (await in_thread(login_reply, server, "alice", "changed")).startswith("530")
    assert (await in_thread(login_reply, server, "bob", "bobpw")).startswith("230")


@pytest_twisted.ensureDeferred
async def test_options_from_the_table_apply(node_factory, database) -> None:
    sql(database, "UPDATE ftpd_users SET options = %s::jsonb WHERE name = %s",
        '{"max_sessions": 1}', "bob")
    server = await node_factory(database, PASSWORDS)

    def second_session() -> str:
        with server.session("bob"):
            return login_reply(server, "bob", "bobpw")

    assert await in_thread(second_session) == "421 Too many sessions for bob; try again later."


def test_import_of_a_users_db_keeps_hashes_and_options_and_can_be_repeated(
        postgres_server, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    url = postgres_server.database()
    db = tmp_path / "users.db"
    lines = [
        "anonymous::elr:pub",
        userdb.format_record(UserRecord("alice", hash_password("secret"), "elradfmwMT", "a",
                                        {"tls": "required", "max_sessions": "2",
                                         "quota": "500M", "download_rate": "1M"})),
        userdb.format_record(UserRecord("bob", hash_password("bobpw"), "elr", "")),
    ]
    db.write_text("# users\n" + "\n".join(lines) + "\n")

    assert users_tool.main(["--db", url, "import", str(db)]) == 0
    assert "3 added, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert users_tool.main(["--db", url, "import", str(db)]) == 0  # idempotent
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().out
    assert PostgresUsers(url).records() == userdb.parse(db.read_text())

    db.write_text("# users\n" + "\n".join(lines[:2]) + "\n" + lines[2].replace(":elr:", ":elrw:"))
    assert users_tool.main(["--db", url, "import", str(db)]) == 0  # a changed user: updated
    assert "0 added, 1 updated, 2 unchanged" in capsys.readouterr().out
    assert PostgresUsers(url).lookup("bob").perms == "elrw"


@pytest_twisted.ensureDeferred
async def test_the_database_down_refuses_new_logins_with_421_and_sessions_go_on(
        node_factory, database, postgres_server) -> None:
    server = await node_factory(database, PASSWORDS)
    (server.root / "file.txt").write_bytes(b"still here")
    running = await in_thread(server.connect, "bob")
    try:
        with capturedLogs() as events:
            await in_thread(postgres_server.stop)
            try:
                reply = await in_thread(login_reply, server, "bob", "bobpw")

                def still_works() -> tuple[bytes, str]:
                    chunks: list[bytes] = []
                    running.retrbinary("RETR file.txt", chunks.append)
                    running.nlst()
                    try:  # an upload needs the quota, which is in the database
                        running.storbinary("STOR new.txt", io.BytesIO(b"x"))
                    except ftplib.error_temp as e:
                        refused = str(e)
                    running.voidcmd("NOOP")
                    return b"".join(chunks), refused

                assert await in_thread(still_works) == (b"still here", (
                    "451 User database unavailable, so the quota is unknown; try again later."))
            finally:
                await in_thread(postgres_server.start)
    finally:
        await in_thread(close_quietly, running)
    assert reply == "421 User database unavailable; try again later."
    errors = [e for e in events if "unavailable" in e.get("log_format", "")]
    assert errors and errors[0]["db"] == database
    assert (await in_thread(login_reply, server, "bob", "bobpw")).startswith("230")  # back


@pytest.mark.parametrize("name", [
    "alice' OR '1'='1",
    "alice'--",
    "x'; DROP TABLE ftpd_users; --",
    "x';DROP/**/TABLE/**/ftpd_users;--",  # no spaces: a valid name, so it is looked up
    "%",
    "alice\\",
])
@pytest_twisted.ensureDeferred
async def test_sql_in_user_names_is_only_a_name(node_factory, database, name: str) -> None:
    server = await node_factory(database, PASSWORDS)
    assert (await in_thread(login_reply, server, name, "secret")).startswith("530")
    assert PostgresUsers(database).lookup(name) is None
    assert sorted(PostgresUsers(database).records()) == ["alice", "bob"]  # table intact
    assert (await in_thread(login_reply, server, "alice", "secret")).startswith("230")


def test_the_users_tool_manages_a_database_as_it_does_a_file(
        database, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    def tool(*args: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return users_tool.main(["--db", database, "--root", str(tmp_path), *args])

    assert tool("add", "carol", "--perm", "elrw", "--max-sessions", "3", "--password-stdin",
                stdin="pw1\n") == 0
    assert f"added user carol to {database}" in capsys.readouterr().out
    carol = PostgresUsers(database).lookup("carol")
    assert (carol.perms, carol.options) == ("elrw", {"max_sessions": "3"})
    assert tool("passwd", "carol", "--password-stdin", stdin="pw2\n") == 0
    assert tool("modify", "carol", "--unset", "max_sessions", "--perm", "elr") == 0
    changed = PostgresUsers(database).lookup("carol")
    assert (changed.perms, changed.options) == ("elr", {})
    assert changed.password_hash != carol.password_hash
    capsys.readouterr()
    assert tool("list") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "alice", "bob", "carol"]
    assert tool("remove", "carol") == 0
    assert tool("remove", "carol") == 1
    assert "no such user: carol" in capsys.readouterr().err
    assert PostgresUsers(database).lookup("carol") is None


def test_the_users_tool_says_why_a_database_cannot_be_used(postgres_server, capsys) -> None:  # type: ignore[no-untyped-def]
    empty = postgres_server.database()  # no table yet
    assert users_tool.main(["--db", empty, "list"]) == 1
    assert 'relation "ftpd_users" does not exist' in capsys.readouterr().err


def test_a_row_the_server_cannot_use_is_logged_and_locks_out_only_that_user(database) -> None:
    sql(database, "INSERT INTO ftpd_users (name, password_hash, perms) VALUES (%s, %s, %s)",
        "mallory", "not-a-hash", "elr")
    sql(database, "UPDATE ftpd_users SET options = %s::jsonb WHERE name = %s",
        '{"max_sessions": "many"}', "bob")
    source = PostgresUsers(database)
    with capturedLogs() as events:
        assert source.lookup("mallory") is None
        assert source.lookup("bob") is None
        assert sorted(source.records()) == ["alice"]
    unusable = [e for e in events if "unusable" in e.get("log_format", "")]
    assert {e["user"] for e in unusable} == {"mallory", "bob"}
    assert "max_sessions" in str(unusable[1]["error"])


@pytest_twisted.ensureDeferred
async def test_a_database_without_the_table_is_said_at_start_up(
        node_factory, postgres_server) -> None:
    empty = postgres_server.database()
    with capturedLogs() as events:
        server = await node_factory(empty, PASSWORDS)
    said = [e.get("warning", "") for e in events]
    assert any(f"user database {empty} unavailable" in w and "ftpd_users" in w for w in said)
    assert await in_thread(login_reply, server, "alice", "secret") == (
        "421 User database unavailable; try again later.")


def test_names_no_row_can_hold_are_nobody_without_a_query(database) -> None:
    source = PostgresUsers(database)
    for name in ("a\udcff", "a\x00b", ""):  # bytes not UTF-8, NUL, nothing
        assert source.lookup(name) is None
