# -*- test-case-name: tests.test_users_cli,tests.integration.test_pgusers -*-
"""Manage users.db from a shell so nobody hand-writes password hashes or breaks its syntax.

``twisted-ftpd users ...`` (or ``python -m twisted_ftpd.users ...``). Every command
says what it did; the file is rewritten atomically, keeps its comments and is left
readable by its owner only (mode 0600), since it holds password hashes. With
``--db postgresql://...`` the same commands work on the ``ftpd_users`` table, and
``import FILE`` copies a users.db into it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from twisted_ftpd.auth import perms, userdb
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.pgusers import PostgresUsers, is_database_url
from twisted_ftpd.auth.userdb import (
    ANONYMOUS,
    UserRecord,
    parse,
    remove_user,
    set_user,
    validate_home,
    validate_name,
)
from twisted_ftpd.fs.storage import is_disk
from twisted_ftpd.protocol.errors import UsersUnavailable
from twisted_ftpd.urls import redact

PROG = "python -m twisted_ftpd.users"
DEFAULT_DB = "./users.db"
DEFAULT_ROOT = "./ftproot"  # the server's --root default
FILE_MODE = 0o600
TLS_CHOICES = ("required", "optional")


class CommandError(Exception):
    """A failure worth one line on stderr and exit status 1."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt):
            raise CommandError("no password given") from None
        if password != again:
            raise CommandError("passwords do not match")
    if not password:
        raise CommandError("empty passwords are refused")
    return password


def _database(url: str) -> PostgresUsers:
    return PostgresUsers(url)


@contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """A database that cannot be reached (or has no table) is one line, with the cause."""
    try:
        yield
    except UsersUnavailable as e:
        raise CommandError(f"{redact(url)}: {' '.join(str(e.__cause__).split())}") from None


def _load(db: str, *, missing_ok: bool = False) -> dict[str, UserRecord]:
    if is_database_url(db):
        with _database_errors(db):
            return _database(db).records()
    try:
        with open(db, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise CommandError(f"{db}: no such file") from None
    try:
        return parse(data.decode("utf-8"), db)
    except UnicodeDecodeError as e:
        raise CommandError(f"{db}: not valid UTF-8 ({e})") from None


def _existing(db: str, name: str) -> UserRecord:
    record = _load(db).get(name)
    if record is None:
        raise CommandError(f"no such user: {name}")
    return record


def _put(db: str, record: UserRecord) -> None:
    """Add or replace ``record`` in the file or the database."""
    if is_database_url(db):
        with _database_errors(db):
            _database(db).upsert(record)
    else:
        set_user(db, record)


def _remove(db: str, name: str) -> None:
    """Remove ``name``; KeyError if there is no such user."""
    if not is_database_url(db):
        remove_user(db, name)
        return
    with _database_errors(db):
        if not _database(db).remove(name):
            raise KeyError(name)


def _save(args: argparse.Namespace, write: Callable[[], None]) -> None:
    """Run ``write`` (which rewrites the file), then make the file owner-only."""
    if is_database_url(args.db):  # the database keeps its own permissions
        write()
        return
    existed = os.path.exists(args.db)
    write()
    os.chmod(os.path.realpath(args.db), FILE_MODE)
    if not existed:
        print(f"created {args.db} (mode 0600)")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            print("  it belongs to root: chown it to the account the server runs as, "
                  "which must be able to read it")


# -- homes ------------------------------------------------------------------------------


def _check_home(args: argparse.Namespace, record: UserRecord) -> None:
    """A home must exist where the server will look for it, unless --create-home makes it.

    Empty means the server's root (the server creates that itself); a relative home
    hangs off the root, as the server resolves it.
    """
    home = record.home
    if not home or not is_disk(record.options.get("storage")):
        return  # in object storage a home is a key prefix: nothing to make in advance
    path = os.path.abspath(os.path.join(args.root, home))
    if os.path.isdir(path):
        return
    if os.path.lexists(path):
        raise CommandError(f"home {path} exists but is not a directory")
    if not args.create_home:
        raise CommandError(f"home {path} does not exist (give --create-home to make it)")
    os.makedirs(path, mode=0o755)
    print(f"created home directory {path}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("  it belongs to root: chown it to the account the server runs as "
              "if this user may upload")


# -- key=value options: tls=, limits and whatever the server validates -------------------


def _option_flags() -> dict[str, str]:
    """``--flag`` spelling -> users.db key, for every option the server checks."""
    return {key.replace("_", "-"): key for key in userdb.OPTION_VALUES}


def _options_from(args: argparse.Namespace, current: dict[str, str]) -> dict[str, str]:
    options = dict(current)
    for key in args.unset or ():
        key = _option_flags().get(key, key)
        if key not in options:
            raise CommandError(f"user {args.name} has no option {key}")
        del options[key]
    if args.tls == "required":
        options["tls"] = "required"
    elif args.tls == "optional":
        options.pop("tls", None)
    for flag, key in _option_flags().items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            try:
                userdb.OPTION_VALUES[key](value)
            except ValueError as e:
                raise CommandError(f"--{flag}: {e}") from None
            options[key] = value
    return options


def _describe(record: UserRecord) -> str:
    home = record.home or "the server root"
    extra = "".join(f", {key}={value}" for key, value in record.options.items())
    return f"perms {record.perms or '-'}, home {home}{extra}"


# -- the commands -----------------------------------------------------------------------


def cmd_add(args: argparse.Namespace) -> None:
    try:
        validate_name(args.name)
        validate_home(args.home)
        letters = perms.validate(args.perm)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if args.name in _load(args.db, missing_ok=True):
        raise CommandError(f"user {args.name} already exists; use passwd to change the password")
    options = _options_from(args, {})
    if args.name == ANONYMOUS:
        if args.password_stdin:
            raise CommandError(f"{ANONYMOUS} takes no password")
        password_hash = ""
    else:
        password_hash = hash_password(_read_password(args.password_stdin))
    record = UserRecord(args.name, password_hash, letters, args.home, options)
    userdb.format_record(record)  # refuse a bad record before creating its home
    _check_home(args, record)
    _save(args, lambda: _put(args.db, record))
    what = "anonymous login" if args.name == ANONYMOUS else f"user {args.name}"
    print(f"added {what} to {args.where}: {_describe(record)}")


def cmd_passwd(args: argparse.Namespace) -> None:
    record = _existing(args.db, args.name)
    if record.name == ANONYMOUS:
        raise CommandError(f"{ANONYMOUS} has no password (any password is accepted)")
    password_hash = hash_password(_read_password(args.password_stdin))
    _save(args, lambda: _put(args.db, replace(record, password_hash=password_hash)))
    print(f"changed the password of {args.name} in {args.where}")


def cmd_modify(args: argparse.Namespace) -> None:
    record = _existing(args.db, args.name)
    changed = record
    try:
        if args.perm is not None:
            changed = replace(changed, perms=perms.validate(args.perm))
        if args.home is not None:
            validate_home(args.home)
            changed = replace(changed, home=args.home)
    except ValueError as e:
        raise CommandError(str(e)) from None
    changed = replace(changed, options=_options_from(args, record.options))
    if changed == record:
        print(f"{args.name} unchanged: {_describe(record)}")
        return
    userdb.format_record(changed)
    if args.home is not None:
        _check_home(args, changed)
    _save(args, lambda: _put(args.db, changed))
    print(f"modified {args.name} in {args.where}: {_describe(changed)} "
          f"(was {_describe(record)})")


def cmd_remove(args: argparse.Namespace) -> None:
    _load(args.db)  # a missing file is "no such file", not a crash inside the rewrite
    try:
        _save(args, lambda: _remove(args.db, args.name))
    except KeyError:
        raise CommandError(f"no such user: {args.name}") from None
    print(f"removed {args.name} from {args.where} (files in the home are left alone)")


def cmd_import(args: argparse.Namespace) -> None:
    """Copy every user of a users.db into the database (added, or updated where they
    differ): the move to PostgreSQL, safe to run again."""
    if not is_database_url(args.db):
        raise CommandError("import needs --db postgresql://...: it copies a users.db into "
                           "a database")
    records = _load(args.file)
    database = _database(args.db)
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    with _database_errors(args.db):
        database.create_schema()
        for record in records.values():
            counts[database.upsert(record)] += 1
    database.close()
    print(f"imported {args.file} into {args.where}: " + ", ".join(
        f"{n} {what}" for what, n in counts.items()))


def cmd_list(args: argparse.Namespace) -> None:
    records = _load(args.db)
    width = max((len(name) for name in records), default=0)
    for record in records.values():
        home = record.home or "(default root)"
        extra = " ".join(f"{key}={value}" for key, value in record.options.items())
        line = f"{record.name:<{width}}  {record.perms or '-':<10}  {home}"
        print(f"{line}  {extra}" if extra else line)


# -- the parser -------------------------------------------------------------------------


def _add_option_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls", choices=TLS_CHOICES,
                        help="required: this user may log in only over TLS (tls=required)")
    for flag, key in _option_flags().items():
        parser.add_argument(f"--{flag}", metavar="VALUE", help=_option_help(key))


def _option_help(key: str) -> str:
    """``users.db key=: <the first line of its check's docstring>``."""
    lines = (userdb.OPTION_VALUES[key].__doc__ or "").replace("``", "").strip().splitlines()
    doc = lines[0] if lines else ""
    doc = doc.removeprefix(f"{key}=").lstrip(": ")
    return f"users.db {key}=" + (f": {doc}" if doc else "")


def _add_home_arguments(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--home", default=default, metavar="DIR",
                        help="the user's root (relative: below --root; empty: the root "
                        "itself); must exist")
    parser.add_argument("--create-home", action="store_true",
                        help="make the home directory (and its parents) when missing")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Manage the twisted-ftpd user database.",
        epilog=f"Permission letters: {perms.ALL} (default for new users: {perms.READ_ONLY}).",
    )
    parser.add_argument("--config", metavar="FILE",
                        help="the server's TOML config file: its users and root are the "
                        "defaults for --db and --root")
    parser.add_argument("--db", metavar="FILE", help="user file, or a PostgreSQL database "
                        f"as postgresql://USER@HOST/DB (default {DEFAULT_DB})")
    parser.add_argument("--root", metavar="DIR",
                        help=f"the server's --root, for relative homes (default {DEFAULT_ROOT})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = sub.add_parser("add", help="add a user")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--perm", default=perms.READ_ONLY, metavar="LETTERS")
    _add_home_arguments(add, "")
    add.add_argument("--password-stdin", action="store_true", help="read the first stdin line")
    _add_option_arguments(add)
    add.set_defaults(func=cmd_add, unset=None)

    passwd = sub.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=cmd_passwd)

    modify = sub.add_parser("modify", help="change a user's permissions, home, tls= or limits")
    modify.add_argument("name", metavar="NAME")
    modify.add_argument("--perm", metavar="LETTERS", help="the new permission letters")
    _add_home_arguments(modify, None)
    _add_option_arguments(modify)
    modify.add_argument("--unset", action="append", metavar="KEY",
                        help="remove a key=value option (download_rate, ...); repeatable")
    modify.set_defaults(func=cmd_modify)

    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=cmd_remove)

    imports = sub.add_parser("import", help="copy the users of a users.db file into the "
                             "--db postgresql://... database (creates its table; repeatable)")
    imports.add_argument("file", metavar="FILE")
    imports.set_defaults(func=cmd_import)

    listing = sub.add_parser("list", help="list users (name, permissions, home, options)")
    listing.set_defaults(func=cmd_list)
    return parser


def _defaults_from_config(args: argparse.Namespace) -> None:
    """--db and --root: given, else the config file's users and root, else the defaults."""
    table: dict[str, object] = {}
    if args.config is not None:
        from twisted.python.usage import UsageError

        from twisted_ftpd.config_file import read

        try:
            table = read(args.config)
        except UsageError as e:
            raise CommandError(str(e)) from None
    for attribute, key, default in (("db", "users", DEFAULT_DB), ("root", "root", DEFAULT_ROOT)):
        if getattr(args, attribute) is None:
            value = table.get(key, default)
            if not isinstance(value, str):
                raise CommandError(f"config file {args.config}: {key}: expected a string")
            setattr(args, attribute, value)
    args.where = redact(args.db) if is_database_url(args.db) else args.db  # for messages


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Run one command; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors and --help: argparse already printed
        return e.code if isinstance(e.code, int) else 2
    try:
        _defaults_from_config(args)
        args.func(args)
    except (CommandError, ValueError) as e:  # ValueError includes UserDBError
        message = str(e)
    except OSError as e:
        message = f"{e.filename or args.db}: {e.strerror or e}"
    else:
        return 0
    print(f"{prog}: error: {message}".replace("\n", " "), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
