# -*- test-case-name: tests.test_users_cli -*-
"""Manage users.db from a shell so nobody hand-writes password hashes or breaks its syntax."""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import replace

from twisted_ftpd.auth import perms
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.userdb import (
    ANONYMOUS,
    UserRecord,
    parse,
    remove_user,
    set_user,
    validate_home,
    validate_name,
)

PROG = "python -m twisted_ftpd.users"


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


def _load(db: str, *, missing_ok: bool = False) -> dict[str, UserRecord]:
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


def cmd_add(args: argparse.Namespace) -> None:
    try:
        validate_name(args.name)
        validate_home(args.home)
        letters = perms.validate(args.perm)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if args.name in _load(args.db, missing_ok=True):
        raise CommandError(f"user {args.name} already exists; use passwd to change the password")
    if args.name == ANONYMOUS:
        if args.password_stdin:
            raise CommandError(f"{ANONYMOUS} takes no password")
        password_hash = ""
    else:
        password_hash = hash_password(_read_password(args.password_stdin))
    set_user(args.db, UserRecord(args.name, password_hash, letters, args.home))


def cmd_passwd(args: argparse.Namespace) -> None:
    record = _existing(args.db, args.name)
    if record.name == ANONYMOUS:
        raise CommandError(f"{ANONYMOUS} has no password (any password is accepted)")
    password_hash = hash_password(_read_password(args.password_stdin))
    set_user(args.db, replace(record, password_hash=password_hash))


def cmd_remove(args: argparse.Namespace) -> None:
    try:
        remove_user(args.db, args.name)
    except KeyError:
        raise CommandError(f"no such user: {args.name}") from None


def cmd_list(args: argparse.Namespace) -> None:
    records = _load(args.db)
    width = max((len(name) for name in records), default=0)
    for record in records.values():
        home = record.home or "(default root)"
        print(f"{record.name:<{width}}  {record.perms or '-':<10}  {home}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage the twisted-ftpd user database.",
        epilog=f"Permission letters: {perms.ALL} (default for new users: {perms.READ_ONLY}).",
    )
    parser.add_argument("--db", default="./users.db", help="user database (default ./users.db)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = sub.add_parser("add", help="add a user")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--perm", default=perms.READ_ONLY, metavar="LETTERS")
    add.add_argument("--home", default="", metavar="DIR", help="default: the server root")
    add.add_argument("--password-stdin", action="store_true", help="read the first stdin line")
    add.set_defaults(func=cmd_add)

    passwd = sub.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=cmd_passwd)

    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=cmd_remove)

    listing = sub.add_parser("list", help="list users (name, permissions, home)")
    listing.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors and --help: argparse already printed
        return e.code if isinstance(e.code, int) else 2
    try:
        args.func(args)
    except (CommandError, ValueError) as e:  # ValueError includes UserDBError
        message = str(e)
    except OSError as e:
        message = f"{args.db}: {e.strerror or e}"
    else:
        return 0
    print(f"{PROG}: error: {message}".replace("\n", " "), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
