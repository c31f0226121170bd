# -*- test-case-name: tests.integration.test_pgusers -*-
"""Users in a PostgreSQL table, so several nodes share one user database.

``PostgresUsers`` has the API of ``userdb.UserDB`` (``lookup``, ``records``:
blocking, thread-safe, called off the reactor), so the checker and the realm
use it unchanged. There is no cache: every lookup is one indexed query, so an
INSERT, UPDATE or DELETE counts from the next login on, on every node, and no
node can serve a password that was changed or a user that was removed. When the
database cannot be reached, lookups raise ``UsersUnavailable`` (a 421 for the
login) and one log line says so until it is back; sessions already logged in
do not need it. The SQL is parameterised, never built from names.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

from twisted.logger import Logger

from twisted_ftpd.auth.userdb import UserDB, UserRecord, validate_name, validate_record
from twisted_ftpd.protocol.errors import UsersUnavailable
from twisted_ftpd.urls import redact

SCHEMES = ("postgresql://", "postgres://")
TABLE = "ftpd_users"
#: Idle connections kept for the next lookups (each thread uses one at a time).
IDLE_CONNECTIONS = 4
#: Seconds to wait for a connection, and for a query, before the login gets 421.
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT_MS = 5000

_COLUMNS = "name, password_hash, perms, home, options"
_LOOKUP = f"SELECT {_COLUMNS} FROM {TABLE} WHERE name = %s"
_ALL = f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY name"
# Inserted, updated, or (no row back) unchanged: the import says which.
_UPSERT = f"""
INSERT INTO {TABLE} AS u (name, password_hash, perms, home, options)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (name) DO UPDATE SET
    password_hash = EXCLUDED.password_hash, perms = EXCLUDED.perms,
    home = EXCLUDED.home, options = EXCLUDED.options, updated_at = now()
WHERE (u.password_hash, u.perms, u.home, u.options)
    IS DISTINCT FROM (EXCLUDED.password_hash, EXCLUDED.perms, EXCLUDED.home, EXCLUDED.options)
RETURNING (xmax = 0) AS inserted
"""
_DELETE = f"DELETE FROM {TABLE} WHERE name = %s"


def is_database_url(spec: str) -> bool:
    """Whether ``--users`` names a PostgreSQL database rather than a users.db file."""
    return spec.startswith(SCHEMES)


def schema_sql() -> str:
    """The shipped schema (``twisted_ftpd/deploy/users.sql``)."""
    return (resources.files("twisted_ftpd") / "deploy" / "users.sql").read_text("utf-8")


class PostgresUsers:
    """The ``ftpd_users`` table as a user source; ``url`` is a libpq connection URI."""

    log = Logger()

    def __init__(self, url: str) -> None:
        import psycopg  # imported here: only servers that use PostgreSQL need it

        self._psycopg = psycopg
        self.url = url
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._down: str | None = None  # the error, while the database is unreachable

    def describe(self) -> str:
        return redact(self.url)

    # -- the user-source API -----------------------------------------------------------

    def lookup(self, name: str) -> UserRecord | None:
        """The record for ``name``, or None (also for a row the server cannot use,
        which is logged); UsersUnavailable when the database cannot answer."""
        try:
            validate_name(name)  # what no row can hold (NUL, bytes not UTF-8) is nobody
        except ValueError:
            return None
        rows = self._execute(_LOOKUP, (name,))
        return self._record(rows[0]) if rows else None

    def records(self) -> dict[str, UserRecord]:
        """Every usable record, by name."""
        found = (self._record(row) for row in self._execute(_ALL, ()))
        return {record.name: record for record in found if record is not None}

    # -- writing (the users tool) --------------------------------------------------------

    def create_schema(self) -> None:
        """Create the table unless it exists (``users.sql``)."""
        self._execute(schema_sql(), None, fetch=False)

    def upsert(self, record: UserRecord) -> str:
        """Store ``record``: ``added``, ``updated`` or ``unchanged``."""
        validate_record(record)
        from psycopg.types.json import Jsonb

        rows = self._execute(_UPSERT, (record.name, record.password_hash, record.perms,
                                       record.home, Jsonb(dict(record.options))))
        if not rows:
            return "unchanged"
        return "added" if rows[0][0] else "updated"

    def remove(self, name: str) -> bool:
        """Delete ``name``'s row; whether there was one."""
        return self._execute(_DELETE, (name,), fetch=False) > 0

    # -- rows --------------------------------------------------------------------------

    def _record(self, row: tuple[Any, ...]) -> UserRecord | None:
        name, password_hash, letters, home, options = row
        try:
            if not isinstance(options, dict):
                raise ValueError("options is not a JSON object")
            record = UserRecord(name, password_hash, letters, home,
                                {str(k): _option_text(k, v) for k, v in options.items()})
            validate_record(record)
        except ValueError as e:
            self.log.error("User {user!r} in {db} is unusable, so cannot log in: {error}",
                           user=name, db=self.describe(), error=e)
            return None
        return record

    # -- connections -------------------------------------------------------------------

    def _execute(self, sql: str, params: tuple[Any, ...] | None, fetch: bool = True) -> Any:
        """Run one statement (once more on a fresh connection if a kept one went stale,
        as after a database restart): its rows, or its row count when not ``fetch``."""
        psycopg = self._psycopg
        lost = psycopg.OperationalError, psycopg.InterfaceError
        for may_retry in (True, False):
            try:
                conn, reused = self._checkout()
            except psycopg.Error as e:
                self._went_down(e)
                raise UsersUnavailable() from e
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    result = cur.fetchall() if fetch else cur.rowcount
            except lost as e:
                conn.close()
                if may_retry and reused:
                    continue
                self._went_down(e)
                raise UsersUnavailable() from e
            except psycopg.Error as e:  # no table, no permission: no login can work
                self._checkin(conn)
                self._went_down(e)
                raise UsersUnavailable() from e
            except BaseException:
                conn.close()
                raise
            self._checkin(conn)
            self._came_back()
            return result
        raise AssertionError("unreachable")

    def _checkout(self) -> tuple[Any, bool]:
        """A kept connection (True) or a new one (False)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.url)  # the URL's own settings win over these
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        params.setdefault("application_name", "twisted-ftpd")
        params["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} " + str(
            params.get("options", ""))
        return self._psycopg.connect(autocommit=True, **params), False

    def _checkin(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def _went_down(self, error: Exception) -> None:
        text = " ".join(str(error).split()) or type(error).__name__
        with self._lock:
            was, self._down = self._down, text
        if was != text:
            self.log.error("User database {db} unavailable ({error}): new logins get 421 "
                           "until it is back; sessions already logged in go on",
                           db=self.describe(), error=text)

    def _came_back(self) -> None:
        with self._lock:
            was, self._down = self._down, None
        if was is not None:
            self.log.info("User database {db} is available again", db=self.describe())

    def close(self) -> None:
        """Close the kept connections (the next lookup opens a new one)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _option_text(key: object, value: object) -> str:
    """JSON option values as users.db would hold them: strings, or whole numbers."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"option {key}: {value!r} is neither a string nor a whole number")


def open_user_source(spec: str) -> UserDB | PostgresUsers:
    """``--users``: a PostgreSQL URL, or the path of a users.db file."""
    return PostgresUsers(spec) if is_database_url(spec) else UserDB(spec)


def database_warnings(url: str) -> list[str]:
    """Start-up problems with the user database at ``url`` (blocking: one query)."""
    source = PostgresUsers(url)
    try:
        count = len(source.records())
    except UsersUnavailable as e:
        cause = " ".join(str(e.__cause__).split())
        return [f"user database {redact(url)} unavailable ({cause}): logins get 421 until "
                "it is back"]
    finally:
        source.close()
    return [] if count else [f"user database {redact(url)} has no users: nobody can log in"]
