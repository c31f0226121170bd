# -*- test-case-name: tests.test_auth_userdb -*-
"""Users live in one hand-editable text file, so it is parsed strictly and rewritten gently."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.logger import Logger

from twisted_ftpd.auth import passwords, perms
from twisted_ftpd.auth.sessions import parse_max_sessions
from twisted_ftpd.fs.storage import parse_storage_url
from twisted_ftpd.quota import parse_quota, parse_quota_files
from twisted_ftpd.units import parse_rate

#: The record whose line enables anonymous login; it has no password hash.
ANONYMOUS = "anonymous"
#: Login names that mean the anonymous record.
ANONYMOUS_NAMES = frozenset({"anonymous", "ftp"})

_FORBIDDEN_IN_FIELD = (":", "\n", "\r", "\0")


class UserDBError(ValueError):
    """users.db (or a record meant for it) is malformed; the message says where."""


@dataclass(frozen=True)
class UserRecord:
    """One users.db line: ``name:hash:perms:home[:key=value...]``."""

    name: str
    password_hash: str
    perms: str
    home: str
    options: dict[str, str] = field(default_factory=dict)


def validate_name(name: str) -> None:
    """Raise ValueError unless ``name`` can be stored as a users.db user name."""
    if not name:
        raise ValueError("user name is empty")
    if any(c == ":" or c.isspace() or not c.isprintable() for c in name):
        raise ValueError(f"user name {name!r} contains ':', whitespace or control characters")
    if name.startswith("#"):
        raise ValueError(f"user name {name!r} starts with '#'")
    if name in ANONYMOUS_NAMES and name != ANONYMOUS:
        raise ValueError(f"user name {name!r} is reserved as an alias of {ANONYMOUS!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"user name {name!r} is not valid UTF-8") from None


def validate_home(home: str) -> None:
    """Raise ValueError unless ``home`` can be stored in a users.db home field."""
    if any(c in home for c in _FORBIDDEN_IN_FIELD):
        raise ValueError(f"home {home!r} contains ':', a newline or NUL")
    try:
        home.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"home {home!r} is not valid UTF-8") from None


# Options whose values must parse: a bad one is reported with its line, at load.
OPTION_VALUES: dict[str, Callable[[str], object]] = {
    "download_rate": parse_rate,  # bytes/s for this user, overriding --max-download-rate
    "upload_rate": parse_rate,
    "quota": parse_quota,  # bytes this user's home may hold (500M, 2G)
    "quota_files": parse_quota_files,  # files it may hold
    "max_sessions": parse_max_sessions,  # most logged-in sessions of this user at once
    "storage": parse_storage_url,  # this user's store (s3://bucket/prefix), not --storage's
}

#: The one option whose value may hold a colon: a URL's "scheme://" (credentials never).
URL_OPTIONS = frozenset({"storage"})


def validate_record(record: UserRecord) -> None:
    """Raise ValueError unless ``record`` could be a users.db line (any user source's rows
    are held to the same rules)."""
    validate_name(record.name)
    if record.name == ANONYMOUS:
        if record.password_hash:
            raise ValueError(f"{ANONYMOUS!r} takes no password hash (the field must be empty)")
    elif not record.password_hash:
        raise ValueError(f"user {record.name!r} has an empty password hash")
    elif not passwords.is_valid_hash(record.password_hash):
        raise ValueError(f"user {record.name!r} has a malformed password hash")
    perms.validate(record.perms)
    validate_home(record.home)
    for key, value in record.options.items():
        checked = value.replace("://", "/", 1) if key in URL_OPTIONS else value
        if not key or "=" in key or any(c in key + checked for c in _FORBIDDEN_IN_FIELD):
            raise ValueError(f"bad option {key!r}={value!r}")
        if key in OPTION_VALUES:
            try:
                OPTION_VALUES[key](value)
            except ValueError as e:
                raise ValueError(f"option {key}: {e}") from None


def _parse_line(line: str) -> UserRecord:
    """Parse one non-comment line (without its line ending); ValueError if bad."""
    fields = line.split(":")
    if len(fields) < 4:
        raise ValueError("expected name:hash:perms:home[:key=value...]")
    name, password_hash, letters, home = fields[:4]
    options: dict[str, str] = {}
    for item in _rejoin_urls(fields[4:]):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"option {item!r} is not key=value")
        if key in options:
            raise ValueError(f"option {key!r} given twice")
        options[key] = value
    record = UserRecord(name, password_hash, perms.validate(letters), home, options)
    validate_record(record)
    return record


def _rejoin_urls(items: list[str]) -> list[str]:
    """Undo the split at a URL option's "scheme://" (``storage=s3://bucket/prefix``)."""
    joined: list[str] = []
    for item in items:
        if item.startswith("//") and joined and joined[-1].partition("=")[0] in URL_OPTIONS:
            joined[-1] += ":" + item
        else:
            joined.append(item)
    return joined


def _is_data(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _split_lines(text: str) -> list[str]:
    """Lines without their ``\\n``/``\\r\\n`` ending; a leading BOM is dropped."""
    return [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]


def parse(text: str, source: str = "users.db") -> dict[str, UserRecord]:
    """Parse users.db text into records by name; UserDBError names source and line."""
    records: dict[str, UserRecord] = {}
    for number, line in enumerate(_split_lines(text), start=1):
        if not _is_data(line):
            continue
        try:
            record = _parse_line(line)
        except ValueError as e:
            raise UserDBError(f"{source}, line {number}: {e}") from None
        if record.name in records:
            raise UserDBError(f"{source}, line {number}: duplicate user {record.name!r}")
        records[record.name] = record
    return records


def _read(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserDBError(f"{path}: not valid UTF-8 ({e})") from None


class UserDB:
    """users.db as a live table: every lookup notices edits made since the last one."""

    log = Logger()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._records: dict[str, UserRecord] = {}
        self._signature: tuple[int, ...] | None = None

    def lookup(self, name: str) -> UserRecord | None:
        """The record for ``name``, or None; safe to call from any thread."""
        with self._lock:
            self._refresh()
            return self._records.get(name)

    def cached(self, name: str) -> UserRecord | None:
        """The record for ``name`` as the file said when last read, without reading it
        again (``auth.userdb_watch`` knows when that is the same answer)."""
        with self._lock:
            return self._records.get(name)

    def records(self) -> dict[str, UserRecord]:
        """A snapshot of every record, by name."""
        with self._lock:
            self._refresh()
            return dict(self._records)

    def _refresh(self) -> None:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                signature = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
                if signature == self._signature:
                    return
                data = f.read()
        except FileNotFoundError:
            if self._signature != ():
                self.log.warn("User database {path} not found; no user can log in", path=self.path)
                self._records, self._signature = {}, ()
            return
        except OSError as e:
            if self._signature != (-1, e.errno or 0):  # log once while the error lasts
                self._keep_last_good((-1, e.errno or 0), f"{self.path}: {e.strerror or e}")
            return
        self._signature = signature
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self._keep_last_good(signature, f"{self.path}: not valid UTF-8 ({e})")
            return
        try:
            self._records = parse(text, self.path)
        except UserDBError as e:
            self._keep_last_good(signature, str(e))
            return
        self.log.info("Loaded {n} user(s) from {path}", n=len(self._records), path=self.path)

    def _keep_last_good(self, signature: tuple[int, ...], error: str) -> None:
        self._signature = signature
        self.log.error(
            "Cannot load user database, keeping the previous {count} user(s): {error}",
            count=len(self._records),
            error=error,
        )


def format_record(record: UserRecord) -> str:
    """The users.db line (without newline) for ``record``; ValueError if it cannot be one."""
    try:
        validate_record(record)
    except ValueError as e:
        raise UserDBError(str(e)) from None
    fields = [record.name, record.password_hash, perms.validate(record.perms), record.home]
    fields += [f"{key}={value}" for key, value in record.options.items()]
    return ":".join(fields)


def _line_name(line: str) -> str | None:
    line = line.removeprefix("\ufeff")
    return line.split(":", 1)[0] if _is_data(line) else None


def _rewrite(path: str, replace: str, new_line: str | None, *, append: bool) -> bool:
    """Replace (or drop, when ``new_line`` is None) the line for user ``replace``.

    Appends ``new_line`` when there is no such line and ``append`` is true. Every
    other byte of the file is kept. Returns whether a line for the user existed.
    """
    path = os.path.realpath(path)
    try:
        text = _read(path)
        original = os.stat(path)
    except FileNotFoundError:
        text, original = "", None
    parse(text, path)  # never rewrite (and so compound) a file that is already broken
    parts = text.split("\n")
    kept: list[str] = []
    found = False
    for part in parts:
        if _line_name(part.removesuffix("\r")) != replace:
            kept.append(part)
            continue
        found = True
        if new_line is not None:
            kept.append(new_line + ("\r" if part.endswith("\r") else ""))
    if found:
        new_text = "\n".join(kept)
    elif append and new_line is not None:
        eol = "\r\n" if parts[0].endswith("\r") else "\n"
        new_text = text if not text or text.endswith("\n") else text + eol
        new_text += new_line + eol
    else:
        return False
    parse(new_text, path)
    _atomic_write(path, new_text.encode("utf-8"), original)
    return found


def _atomic_write(path: str, data: bytes, original: os.stat_result | None) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if original is not None:
            os.chmod(tmp, original.st_mode & 0o7777)
            try:
                os.chown(tmp, original.st_uid, original.st_gid)
            except (OSError, AttributeError):
                pass  # not root: the file becomes ours, which is all we can do
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def set_user(path: str | os.PathLike[str], record: UserRecord) -> None:
    """Add or replace ``record``'s line in place; other lines are kept byte-for-byte."""
    _rewrite(os.fspath(path), record.name, format_record(record), append=True)


def remove_user(path: str | os.PathLike[str], name: str) -> None:
    """Delete ``name``'s line, keeping every other line; KeyError if there is none."""
    if not _rewrite(os.fspath(path), name, None, append=False):
        raise KeyError(name)
