# -*- test-case-name: tests.test_xferlog -*-
"""The standard xferlog: one line of 14 fields per transfer, as wu-ftpd, vsftpd
(``xferlog_std_format``), ProFTPD and Pure-FTPd write it (``man 5 xferlog``),
so the log analysers written for them read ours.

It is a log observer of the server's ``transfer`` events; nothing else writes it.
"""

from __future__ import annotations

import re
import time
from typing import IO, Any

from twisted_ftpd.auth.userdb import ANONYMOUS_NAMES
from twisted_ftpd.events import is_event

# Fields are separated by single spaces, so no field may hold one.
_BLANKS = re.compile(r"[\s\x00-\x1f\x7f]")


def one_field(text: str) -> str:
    """``text`` as a single field: whitespace and control characters become ``_``
    (ProFTPD's rule; vsftpd lets a space in a name shift every later field)."""
    return _BLANKS.sub("_", text) or "_"


def format_line(event: dict[str, Any]) -> str:
    """The xferlog line (without its newline) for a ``transfer`` event."""
    anonymous = event["user"] in ANONYMOUS_NAMES
    return " ".join([
        time.ctime(event["log_time"]),  # current-time, local: "Mon Jan  5 14:03:09 2026"
        str(max(1, int(event["seconds"] + 0.5))),  # transfer-time: whole seconds, at least 1
        event["peer"],  # remote-host
        str(event["bytes"]),  # file-size: the bytes that crossed the data connection
        one_field(event["path"]),  # filename, as the user sees it
        "a" if event["mode"] == "ascii" else "b",  # transfer-type
        "_",  # special-action-flag: no compression or tar on the fly
        "i" if event["direction"] == "upload" else "o",  # direction
        "a" if anonymous else "r",  # access-mode: anonymous or real (no guest users)
        one_field(event["user"]),  # username: the account, never an anonymous password
        "ftp",  # service-name
        "0",  # authentication-method: none (no RFC 931 ident)
        "*",  # authenticated-user-id: unknown
        "c" if event["completed"] else "i",  # completion-status
    ])


class XferLog:
    """Appends a line to ``path`` for every transfer the observed server makes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def open(self) -> None:
        """Open (create, append) the file, once; before privileges are dropped, like
        vsftpd's, so it may belong to root."""
        if self._file is None:
            # Names that were not UTF-8 on disk go out as their own bytes, as ProFTPD
            # writes them. A line at a time: a crash loses no transfer.
            self._file = open(self.path, "a", encoding="utf-8", errors="surrogateescape",
                              buffering=1)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def __call__(self, event: dict[str, Any]) -> None:
        if self._file is not None and is_event(event, "transfer"):
            # A short append into the page cache, on the reactor thread like every
            # twisted.logger file observer.
            self._file.write(format_line(event) + "\n")
