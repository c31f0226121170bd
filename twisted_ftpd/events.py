# -*- test-case-name: tests.test_events -*-
"""Session events: the names, their fields, and the one way to emit them.

Every session event is a ``twisted.logger`` event carrying an ``ftpd_event`` key,
so the text or JSON log, the xferlog and the Prometheus metrics are all plain
log observers. Each server has its own ``EventLog``: its publisher forwards
every event to the global log, and that server's own xferlog and metrics
observe only it, so two servers in one process never mix their counts.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

from twisted.logger import ILogObserver, Logger, LogLevel, LogPublisher, globalLogPublisher

NAMESPACE = "twisted_ftpd.events"
KEY = "ftpd_event"

# Each event's fields, exactly (the shared vocabulary; README "Logs and metrics").
FIELDS: dict[str, tuple[str, ...]] = {
    "connect": ("session", "peer"),
    "refused": ("session", "peer", "reason"),
    "login": ("session", "peer", "user", "method", "result"),
    "logout": ("session", "peer", "user"),
    "transfer": ("session", "peer", "user", "direction", "path", "bytes", "seconds", "rate",
                 "tls", "completed", "reason", "mode"),
    "delete": ("session", "peer", "user", "path"),
    "rename": ("session", "peer", "user", "path", "to"),
    "mkdir": ("session", "peer", "user", "path"),
    "rmdir": ("session", "peer", "user", "path"),
    "chmod": ("session", "peer", "user", "path", "permissions"),
    "ban": ("peer", "seconds"),
    "command_refused": ("session", "peer", "command", "code"),
}

# What an administrator reads in the text log.
FORMATS: dict[str, str] = {
    "connect": "[{session}] connection from {peer}",
    "refused": "[{session}] refused connection from {peer}: {reason}",
    "login": "[{session}] login {result} for {user!r} from {peer} ({method})",
    "logout": "[{session}] logout of {user!r} from {peer}",
    "transfer": "[{session}] {user!r} from {peer} {direction} {path!r}: {bytes} bytes in "
                "{seconds:.3f} s ({rate:.0f} B/s, {mode}, tls={tls})",
    "delete": "[{session}] {user!r} from {peer} deleted {path!r}",
    "rename": "[{session}] {user!r} from {peer} renamed {path!r} to {to!r}",
    "mkdir": "[{session}] {user!r} from {peer} made directory {path!r}",
    "rmdir": "[{session}] {user!r} from {peer} removed directory {path!r}",
    "chmod": "[{session}] {user!r} from {peer} set the mode of {path!r} to {permissions}",
    "ban": "banned {peer} for {seconds} s",
    "command_refused": "[{session}] {command} from {peer} refused with {code}",
}

_FIELD_SETS = {name: frozenset(fields) for name, fields in FIELDS.items()}

# Events that need an administrator's eye; the rest are info.
WARNINGS = frozenset({"refused", "ban", "command_refused"})

_session_numbers = itertools.count(secrets.randbits(32))


def new_session_id() -> str:
    """Eight hex digits, unique within this process: a counter from a random start,
    so that ids from one run are not mistaken for another's in a long log."""
    return f"{next(_session_numbers) & 0xFFFFFFFF:08x}"


class EventLog:
    """One server's session events: emitted here, forwarded to ``forward``
    (the global log publisher unless told otherwise)."""

    def __init__(self, forward: Callable[[dict[str, Any]], None] | None = globalLogPublisher
                 ) -> None:
        self.publisher = LogPublisher(*([forward] if forward is not None else []))
        self._log = Logger(namespace=NAMESPACE, observer=self.publisher)
        self._observers: list[Callable[[dict[str, Any]], None]] = (
            [forward] if forward is not None else [])

    def observe(self, observer: ILogObserver) -> None:
        """Also send this server's events to ``observer`` (xferlog, metrics)."""
        self.publisher.addObserver(observer)
        self._observers.append(observer)

    def stop_observing(self, observer: ILogObserver) -> None:
        self.publisher.removeObserver(observer)
        if observer in self._observers:
            self._observers.remove(observer)

    def emit(self, event: str, **fields: Any) -> None:
        """Emit ``event`` with exactly its fields (see FIELDS); anything else is a
        programming error and raises TypeError."""
        expected = _FIELD_SETS.get(event)
        if expected is None:
            raise TypeError(f"unknown session event {event!r}")
        if fields.keys() != expected:
            raise TypeError(f"{event} takes {FIELDS[event]}, got {tuple(sorted(fields))}")
        if not self._observers:  # nobody would see it: build nothing
            return
        level = LogLevel.warn if event in WARNINGS or fields.get("result") == "failed" \
            else LogLevel.info
        text = FORMATS[event]
        if event == "transfer":
            text += ", complete" if fields["completed"] else ", incomplete: {reason}"
        # The event Logger.emit would build, without its per-call check that the
        # level is a LogLevel (ours always are) and its extra call layers: several
        # events a session, on the reactor thread.
        fields.update(log_logger=self._log, log_level=level, log_namespace=NAMESPACE,
                      log_source=None, log_format=text, log_time=time.time())
        fields[KEY] = event
        self.publisher(fields)


def is_event(event: dict[str, Any], name: str | None = None) -> bool:
    """Whether a log event is a session event (named ``name``, if given)."""
    found = event.get(KEY)
    return found is not None and (name is None or found == name)
