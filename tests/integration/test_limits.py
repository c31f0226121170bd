"""Connection limits, per-user sessions and bans on real sockets: clients on 127.0.0.1
and 127.0.0.2 (two loopback addresses, so two client addresses) against one server."""

from __future__ import annotations

import ftplib
import io
from pathlib import Path

import pytest
import pytest_twisted
from twisted.logger import capturedLogs

from tests.integration.conftest import (
    FTP_TIMEOUT,
    USERS,
    close_quietly,
    in_thread,
    require_binary,
    run_cli,
)
from twisted_ftpd.auth import passwords, userdb

pytestmark = pytest.mark.integration

OTHER = "127.0.0.2"  # a second client address on loopback


def connect(server, source: str = "127.0.0.1") -> ftplib.FTP:  # type: ignore[no-untyped-def]
    """An ftplib client connected from ``source`` (blocking)."""
    ftp = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=(source, 0))
    ftp.connect(server.host, server.port)
    return ftp


def refused_at_connect(server, source: str = "127.0.0.1") -> str:  # type: ignore[no-untyped-def]
    """The 421 a connection from ``source`` is greeted with (blocking)."""
    with pytest.raises(ftplib.error_temp) as refusal:
        connect(server, source).close()
    return str(refusal.value)


def logged_in(server, source: str = "127.0.0.1", user: str = "alice",  # type: ignore[no-untyped-def]
              password: str | None = None) -> ftplib.FTP:
    ftp = connect(server, source)
    ftp.login(user, USERS[user][0] if password is None else password)
    return ftp


@pytest_twisted.ensureDeferred
async def test_connections_past_max_connections_get_421_at_once(server_factory) -> None:
    server = await server_factory(max_connections=2)

    def fill_then_overflow() -> tuple[str, list[ftplib.FTP]]:
        open_ = [logged_in(server), logged_in(server, OTHER, "bob")]
        return refused_at_connect(server), open_

    refusal, open_ = await in_thread(fill_then_overflow)
    assert refusal == "421 Too many connected users; try again later."
    for ftp in open_:
        await in_thread(close_quietly, ftp)
    await server.all_sessions_gone()
    ftp = await in_thread(logged_in, server)  # the slots are free again
    await in_thread(close_quietly, ftp)


@pytest_twisted.ensureDeferred
async def test_the_per_address_limit_counts_each_client_address(server_factory) -> None:
    server = await server_factory(max_connections_per_ip=1)

    def session() -> tuple[str, bytes]:
        first = logged_in(server)
        try:
            refusal = refused_at_connect(server)
            other = logged_in(server, OTHER)  # another address is not affected
            other.storbinary("STOR from-other.txt", io.BytesIO(b"hello"))
            close_quietly(other)
        finally:
            close_quietly(first)
        return refusal, (server.root / "from-other.txt").read_bytes()

    refusal, stored = await in_thread(session)
    assert refusal == "421 Too many connections from your address; try again later."
    assert stored == b"hello"


@pytest_twisted.ensureDeferred
async def test_curl_shows_the_refusal(server_factory, tmp_path: Path) -> None:
    curl = require_binary("curl")
    server = await server_factory(max_connections_per_ip=1)
    first = await in_thread(logged_in, server)
    try:
        result = await in_thread(run_cli, [curl, "-sS", "-v", "--user", "alice:secret",
                                           server.url("/")], tmp_path / "home")
    finally:
        await in_thread(close_quietly, first)
    assert result.returncode != 0
    assert b"421 Too many connections from your address; try again later." in result.stderr


@pytest_twisted.ensureDeferred
async def test_max_sessions_in_users_db_limits_one_user(server_factory) -> None:
    server = await server_factory()
    userdb.set_user(server.service.config.users, userdb.UserRecord(
        "bob", passwords.hash_password(USERS["bob"][0]), USERS["bob"][1], "",
        {"max_sessions": "1"}))

    def sessions() -> str:
        first = logged_in(server, user="bob")
        second = connect(server, OTHER)
        try:
            with pytest.raises(ftplib.error_temp) as refusal:
                second.login("bob", USERS["bob"][0])
            close_quietly(logged_in(server, user="alice"))  # other users are not limited
            assert first.nlst() == []  # the first session goes on
        finally:
            close_quietly(second)
            close_quietly(first)
        return str(refusal.value)

    assert await in_thread(sessions) == "421 Too many sessions for bob; try again later."
    await server.all_sessions_gone()
    await in_thread(lambda: close_quietly(logged_in(server, user="bob")))


@pytest_twisted.ensureDeferred
async def test_wrong_passwords_from_one_address_ban_it_and_only_it(server_factory) -> None:
    server = await server_factory(ban_after=3, ban_time=600, login_delay=0.0)

    def guess() -> list[str]:
        answers = []
        for _ in range(2):  # a connection that fails three times is closed anyway
            ftp = connect(server, OTHER)
            for _ in range(2):
                with pytest.raises(ftplib.Error) as failure:
                    ftp.login("alice", "wrong")
                answers.append(str(failure.value))
                if str(failure.value).startswith("421"):
                    break
            ftp.close()
        return answers

    with capturedLogs() as logged:
        answers = await in_thread(guess)
        banned = await in_thread(refused_at_connect, server, OTHER)
    assert answers == ["530 Login incorrect."] * 2 + [
        "421 Too many failed logins from your address; try again later."]
    assert banned == "421 Too many failed logins from your address; try again later."
    assert [(e["peer"], e["seconds"]) for e in logged if e.get("ftpd_event") == "ban"] == [
        (OTHER, 600)]
    assert {"peer": OTHER, "reason": "banned"} in [
        {"peer": e["peer"], "reason": e["reason"]}
        for e in logged if e.get("ftpd_event") == "refused"]

    def still_serves_the_others() -> list[str]:
        ftp = logged_in(server)
        try:
            return ftp.nlst()
        finally:
            close_quietly(ftp)

    assert await in_thread(still_serves_the_others) == []
