# -*- test-case-name: tests.test_logs,tests.integration.test_logs -*-
"""Where the log goes: text or JSON lines, to stdout or a file, under server.py or twistd.

Both formats are twisted.logger's own (``formatEventAsClassicLogText`` and
``jsonFileLogObserver``); this module chooses the file, and writes session events'
lines more cheaply than Twisted's formatter would, in the same format. Passive data
ports log nothing (``data.ports``).
"""

from __future__ import annotations

import math
import signal
import sys
from typing import IO, Any

from twisted.application import service
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    formatEventAsClassicLogText,
    formatTime,
    jsonFileLogObserver,
)
from twisted.python import logfile
from twisted.python.components import Componentized

from twisted_ftpd.events import is_event

LOG_FORMATS = ("text", "json")


def parse_log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}, got {text!r}")
    return text


class _Timestamps:
    """Twisted's ``formatTime`` for the text log, computed once per second (the format
    has no finer unit): a busy server writes several lines a second."""

    FORMAT = "%Y-%m-%dT%H:%M:%S%z"

    def __init__(self) -> None:
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, when: float | None) -> str:
        if when is None:
            return formatTime(when, self.FORMAT)
        second = math.floor(when)
        cached_second, text = self._last
        if second != cached_second:
            text = formatTime(second, self.FORMAT)
            self._last = (second, text)  # one assignment: safe from any thread
        return text


def _session_event_text(event: dict[str, Any], timestamp: _Timestamps) -> str | None:
    """A session event's line, exactly as Twisted's classic format writes it, but with
    ``str.format``: the formats in ``events.FORMATS`` use plain fields only, never the
    ``{call()}`` syntax Twisted's slower formatter is there for. None if it will not
    format that way (then Twisted's own formatter says why)."""
    level = event.get("log_level")
    try:
        text = event["log_format"].format_map(event)
    except Exception:
        return None
    system = event.get("log_system") or (
        f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}")
    return f"{timestamp(event.get('log_time'))} [{system}] {text}".replace("\n", "\n\t") + "\n"


def _classic_text(event: dict[str, Any], timestamp: _Timestamps) -> str | None:
    """Twisted's text format; names that were not UTF-8 on disk come out escaped
    instead of making the log file's encoder raise."""
    text = None
    if is_event(event) and "log_failure" not in event:
        text = _session_event_text(event, timestamp)
    if text is None:
        text = formatEventAsClassicLogText(event, timestamp)
    return text and text.encode("utf-8", "backslashreplace").decode("utf-8")


def file_observer(out: IO[Any], log_format: str) -> ILogObserver:
    """Every event to ``out`` as a text line or, for "json", one JSON object per line."""
    if log_format == "json":
        observer = jsonFileLogObserver(out, recordSeparator="")
    else:
        timestamp = _Timestamps()
        observer = FileLogObserver(out, lambda event: _classic_text(event, timestamp))
    return observer


def open_log_file(path: str) -> IO[str]:
    """Append to ``path``, a line at a time (``logrotate``'s ``copytruncate`` works)."""
    return open(path, "a", encoding="utf-8", buffering=1)


def foreground_observer(log_format: str, log_file: str | None) -> ILogObserver:
    """server.py's log: stdout, or ``log_file``."""
    return file_observer(sys.stdout if log_file is None else open_log_file(log_file), log_format)


def twistd_observer(twistd: Any, log_format: str, log_file: str | None) -> ILogObserver | None:
    """The observer for twistd's application, writing where twistd itself would
    (``--logfile``; stdout with ``-n``; else twistd.log, rotated on SIGUSR1), or None
    to leave twistd's own in place (``--logger``, text to ``--syslog``, or no twistd)."""
    if twistd is None or twistd.get("logger"):
        return None
    if log_file is not None:
        return file_observer(open_log_file(log_file), log_format)
    if twistd.get("syslog"):
        if log_format == "json":
            raise ValueError("--log-format json writes a file: give --logfile, not --syslog")
        return None
    name = twistd.get("logfile") or ""
    if name == "-" or (not name and twistd.get("nodaemon")):
        return file_observer(sys.stdout, log_format)
    out = logfile.LogFile.fromFullPath(name or "twistd.log")
    if not signal.getsignal(signal.SIGUSR1):  # as twistd does for its own log file

        def rotate(signum: int, frame: object) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(out.rotate)

        signal.signal(signal.SIGUSR1, rotate)
    return file_observer(out, log_format)


class TwistdLogging(service.MultiService):
    """The top service ``twistd ftpd`` gets: it hands twistd's application our
    observer (the documented ``ILogObserver`` component), so ``--log-format`` and
    the cheaper session-event lines hold under twistd too."""

    def __init__(self, observer: ILogObserver | None) -> None:
        super().__init__()
        self.observer = observer

    def setServiceParent(self, parent: Any) -> None:  # noqa: N802 - Twisted's name
        if self.observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.observer)
        super().setServiceParent(parent)


def twistd_service(options: Any) -> TwistdLogging:
    """The top service for ``makeService``: the plugin's options, with twistd's
    own as their parent (none when called outside twistd)."""
    try:
        observer = twistd_observer(options.parent, options["log-format"], options["log-file"])
    except (OSError, ValueError) as e:
        raise SystemExit(f"twistd ftpd: cannot log: {e}") from None
    return TwistdLogging(observer)
