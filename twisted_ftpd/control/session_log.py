# -*- test-case-name: tests.test_events -*-
"""The session's side of ``twisted_ftpd.events``: who and where, filled in once.

Handlers call ``emit(ctx, "delete", path=...)`` and the session id, the peer
and the user are added here; ``TransferRecord`` times one transfer from its
150 to its final reply and says how it ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted_ftpd.auth.userdb import ANONYMOUS_NAMES
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.protocol.addresses import normalize
from twisted_ftpd.protocol.errors import FTPError, LocalError

from .context import CommandContext

# The fields emit() fills in itself, per event.
_WITH_USER = frozenset({"logout", "transfer", "delete", "rename", "mkdir", "rmdir", "chmod"})
# Longer verbs than any real command are cut in command_refused events.
MAX_VERB = 16


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)


def login_name(name: str) -> str:
    """The account a USER name logs in to: anonymous names in lower case."""
    return name.lower() if name.lower() in ANONYMOUS_NAMES else name


def emit(ctx: CommandContext, event: str, **fields: Any) -> None:
    """Emit a session event from this session (``session``, ``peer`` and, for what
    a logged-in user does, ``user`` are added)."""
    fields.setdefault("session", ctx.session_id)
    fields.setdefault("peer", normalize(ctx.peer_host))
    if event in _WITH_USER:
        fields.setdefault("user", login_name(ctx.session.user))
    if event == "command_refused":  # unknown verbs are whatever the client sent
        fields["command"] = _printable(fields["command"])[:MAX_VERB]
    ctx.server.events.emit(event, **fields)


def login(ctx: CommandContext, result: str) -> None:
    """A ``login`` event for the session's USER name: ``result`` is "ok" or "failed"."""
    name = login_name(ctx.session.user)
    emit(ctx, "login", user=name, method="anonymous" if name in ANONYMOUS_NAMES else "password",
         result=result)


def failure_reason(error: BaseException | None) -> str:
    """The reply a failed transfer ended with, as the event's ``reason``."""
    if not isinstance(error, FTPError):
        error = LocalError()
    reply = error.reply()
    return f"{reply.code} {reply.text}"


class TransferRecord:
    """One RETR/STOR/APPE/STOU from its 150 on; ``finish`` emits its ``transfer`` event.

    The byte count is the data connection's (bytes on the wire), read at the end
    even when the session has already let go of the connection.
    """

    def __init__(self, ctx: CommandContext, direction: str, path: str, tls: bool) -> None:
        self._ctx = ctx
        self._direction = direction
        self._path = path
        self._tls = tls
        self._mode = "ascii" if ctx.session.type == "A" else "binary"
        self._started = ctx.clock.seconds()
        self._connection: DataProtocol | None = None
        ctx.data.on_connected.append(self._connected)

    def _connected(self, connection: DataProtocol) -> None:
        self._connection = connection

    def finish(self, error: BaseException | None) -> None:
        """The transfer is over: completed when ``error`` is None."""
        self._ctx.data.on_connected.remove(self._connected)
        moved = self._connection.bytes_moved if self._connection is not None else 0
        seconds = max(self._ctx.clock.seconds() - self._started, 0.0)
        if error is None:
            reason = None
        elif self._ctx.gone:
            reason = "control connection closed"
        elif self._ctx.data.aborted:
            reason = "aborted by ABOR"
        else:
            reason = failure_reason(error)
        emit(self._ctx, "transfer", direction=self._direction, path=self._path, bytes=moved,
             seconds=seconds, rate=moved / seconds if seconds > 0 else 0.0, tls=self._tls,
             completed=error is None, reason=reason, mode=self._mode)


@contextmanager
def recorded(ctx: CommandContext, direction: str, path: str, tls: bool
             ) -> Iterator[TransferRecord]:
    """``with recorded(ctx, "download", path, tls):`` around a transfer, from its 150."""
    record = TransferRecord(ctx, direction, path, tls)
    try:
        yield record
    except BaseException as e:
        record.finish(e)
        raise
    record.finish(None)
