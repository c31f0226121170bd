# -*- test-case-name: tests.test_listen -*-
"""What the server checks once at start-up, so an administrator hears about a users file
nobody can log in with (or that shows its password hashes to every local user) when the
server starts, not at the first failed login."""

from __future__ import annotations

import os
import stat

from twisted_ftpd.auth import pgusers, userdb

__all__ = ["users_file_warnings"]


def users_file_warnings(path: str) -> list[str]:
    """Problems with the users file at ``path`` as this process sees it (blocking: one
    stat and one read, done before the server serves anyone)."""
    if pgusers.is_database_url(path):
        return pgusers.database_warnings(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [f"users file {path} does not exist: nobody can log in until it appears"]
    except OSError as e:
        return [f"users file {path}: {e.strerror or e}: nobody can log in"]
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        records = userdb.parse(text, path)
    except OSError as e:
        return [f"users file {path} cannot be read by uid {os.geteuid()} ({e.strerror or e}): "
                "nobody can log in"]
    except UnicodeDecodeError as e:
        return [f"users file {path}: not valid UTF-8 ({e}): nobody can log in"]
    except userdb.UserDBError as e:
        return [f"{e}: nobody can log in until it is fixed"]
    hashes = any(record.password_hash for record in records.values())
    if hashes and stat.S_IMODE(st.st_mode) & (stat.S_IRGRP | stat.S_IROTH):
        return [f"users file {path} is readable by group/others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}): anyone on this host can read its password "
                f"hashes; chmod 600 {path}"]
    return []
