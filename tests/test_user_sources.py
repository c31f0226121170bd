"""Choosing the user source from --users, and what of a database URL reaches the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer

from tests.harness import Harness
from twisted_ftpd.auth.pgusers import PostgresUsers, is_database_url, open_user_source
from twisted_ftpd.auth.userdb import UserDB
from twisted_ftpd.protocol.errors import UsersUnavailable
from twisted_ftpd.urls import redact


def test_a_url_names_a_database_and_anything_else_a_file(tmp_path: Path) -> None:
    assert isinstance(open_user_source("postgresql://ftpd@db/ftp"), PostgresUsers)
    assert isinstance(open_user_source("postgres://ftpd@db/ftp"), PostgresUsers)
    assert isinstance(open_user_source(str(tmp_path / "users.db")), UserDB)
    assert not is_database_url("./postgresql.db")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://ftpd:s3cret@db.internal:5433/ftp?sslmode=require",
     "postgresql://ftpd:***@db.internal:5433/ftp?sslmode=require"),
    ("postgresql://ftpd@db.internal/ftp", "postgresql://ftpd@db.internal/ftp"),
    ("redis://:s3cret@[::1]:6380/2", "redis://:***@[::1]:6380/2"),
])
def test_the_password_of_a_url_never_reaches_the_log(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_user_with_the_database_down_is_421_and_the_connection_closes(
        tmp_path: Path, pem: str) -> None:
    # With FTPS, USER reads the user's tls= option: the first moment a login needs the
    # database.
    h = Harness(tmp_path, tls_cert=pem)
    h.factory.services.lookup_user = lambda name: defer.fail(UsersUnavailable())
    session = h.connect()
    assert session.send("USER alice") == ["421 User database unavailable; try again later."]
    assert session.transport.disconnecting
