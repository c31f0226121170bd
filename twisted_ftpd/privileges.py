# -*- test-case-name: tests.test_privileges,tests.integration.test_privileges -*-
"""Serve as an unprivileged user (``--user``/``--group``): root is needed only to bind
ports below 1024, so the server binds first and then becomes that user, with its
supplementary groups, for good, before it reads a command or a file.

The same as twistd's ``--uid``/``--gid`` (which ``twistd ftpd`` can use instead), for
``python server.py``, which has no twistd around it.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from twisted.python import usage

__all__ = ["Account", "PrivilegeError", "check_options", "resolve", "running_as", "switch_to"]


class PrivilegeError(ValueError):
    """The account cannot be used, or switching to it failed; the message says why."""


@dataclass(frozen=True)
class Account:
    """Who the server runs as after binding."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, as initgroups would set them


def resolve(user: str, group: str | None = None) -> Account:
    """The account of ``user`` (a name or a uid in the password database) with ``group``
    (a name or a gid; default: the user's primary group) and the user's groups."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"no such user: {user!r}") from None
    if group is None:
        gid = entry.pw_gid
    elif group.isdigit():
        gid = int(group)
    else:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f"no such group: {group!r}") from None
    groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, gid))))
    return Account(entry.pw_name, entry.pw_uid, gid, groups)


def check_options(options: usage.Options) -> None:
    """``--user``/``--group`` name an account, and twistd is not also asked to switch."""
    if options["user"] is None:
        if options["group"] is not None:
            raise PrivilegeError("--group needs --user")
        return
    resolve(options["user"], options["group"])
    parent = options.parent
    if parent is not None and (parent.get("uid") is not None or parent.get("gid") is not None):
        raise PrivilegeError("use either twistd's --uid/--gid or ftpd's --user/--group, not both")


def switch_to(account: Account) -> None:
    """Become ``account`` (groups, then gid, then uid: after setuid nothing else could be
    changed) and make sure root cannot be regained. Nothing to do when already running
    as exactly that account; without root, anything else is a PrivilegeError."""
    current = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    if current == (account.uid, account.uid, account.gid, account.gid):
        return
    if os.geteuid() != 0:
        raise PrivilegeError(f"--user {account.name} needs root (running as uid {os.geteuid()})")
    try:
        os.setgroups(list(account.groups))
        os.setgid(account.gid)  # as root this sets the real, effective and saved ids
        os.setuid(account.uid)
    except OSError as e:
        raise PrivilegeError(f"cannot switch to user {account.name}: {e}") from None
    if account.uid != 0 and _can_regain_root():
        raise PrivilegeError(f"still able to become root after switching to {account.name}")


def running_as() -> str:
    """``nobody (uid 65534, gid 65534)``, for the start-up log."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid}, gid {gid})"
    except KeyError:  # a uid without a name, as in some containers
        return f"uid {uid}, gid {gid}"


def _can_regain_root() -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return False
    return True
