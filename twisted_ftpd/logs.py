# -*- test-case-name: tests.test_logs,tests.integration.test_logs -*-
"""Where the log goes: text or JSON lines, to stdout or a file, under server.py or twistd.

Both formats are twisted.logger's own (``formatEventAsClassicLogText`` and
``eventAsJSON``); this module chooses the file, and writes session events' lines
more cheaply than Twisted's formatters would, in the same format, character for
character. Passive data ports log nothing (``data.ports``).
"""

from __future__ import annotations

import functools
import json
import math
import signal
import sys
from string import Formatter
from typing import IO, Any

from twisted.application import service
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    eventAsJSON,
    formatEventAsClassicLogText,
    formatTime,
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


# What eventAsJSON writes for each log level: learnt from Twisted, not copied.
_JSON_LEVELS = {level: json.loads(eventAsJSON({"log_level": level}))["log_level"]
                for level in LogLevel.iterconstants()}
_UNPERSISTABLE = {"unpersistable": True}  # eventAsJSON's stand-in for other objects


@functools.lru_cache(maxsize=64)
def _flattening(log_format: str) -> tuple[tuple[str, str, str, bool], ...] | None:
    """What Twisted's ``flattenEvent`` adds for ``log_format``, worked out once per
    format: (flattened key, structured key, field, repr?) in its order. None if a
    field is more than a plain name (then Twisted's own code runs)."""
    plan = []
    seen: dict[str, int] = {}

    def key(name: str, spec: str, conversion: str) -> str:
        text = f"{name}!{conversion}:{spec}"
        seen[text] = seen.get(text, 0) + 1
        return text if seen[text] == 1 else f"{text}/{seen[text]}"

    try:
        parsed = list(Formatter().parse(log_format))
    except ValueError:
        return None
    flattened_keys = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            return None
        conversion = "r" if conversion == "r" else "s"
        flattened, structured = key(name, spec or "", conversion), key(name, spec or "", "")
        if flattened not in flattened_keys:
            flattened_keys.add(flattened)
            plan.append((flattened, structured, name, conversion == "r"))
    return tuple(plan)


class _NotAtHand(Exception):
    """A value only Twisted's own JSON code knows how to write (a Failure, say)."""


def _json_default(value: object) -> object:
    """eventAsJSON's way with the values of session events that JSON has no type for."""
    if isinstance(value, Logger):  # every event's log_logger
        return _UNPERSISTABLE
    if isinstance(value, bytes):
        return value.decode("charmap")
    found = _JSON_LEVELS.get(value) if isinstance(value, type(LogLevel.info)) else None
    if found is None:
        raise _NotAtHand()
    return dict(found)


def _json_line(event: dict[str, Any]) -> str:
    """``eventAsJSON(event)`` and a newline. A session event's fields are flattened
    from a plan made once per format (Twisted re-parses the format every time, most
    of its 40 µs an event, three events a login)."""
    plan = None
    log_format = event.get("log_format")
    if (isinstance(log_format, str) and is_event(event) and "log_flattened" not in event
            and "log_failure" not in event):
        plan = _flattening(log_format)
    if plan is None:
        return eventAsJSON(event) + "\n"
    try:
        fields: dict[str, Any] = {}
        for flattened, structured, name, use_repr in plan:
            value = event[name]
            fields[flattened] = repr(value) if use_repr else str(value)
            fields[structured] = value
    except KeyError:
        return eventAsJSON(event) + "\n"
    if fields:
        event["log_flattened"] = fields  # as flattenEvent leaves it, for later observers
    try:
        return json.dumps(event, default=_json_default, skipkeys=True) + "\n"
    except _NotAtHand:
        # Twisted's code keeps the flattened fields it finds, so the line is the same.
        return eventAsJSON(event) + "\n"


def file_observer(out: IO[Any], log_format: str) -> ILogObserver:
    """Every event to ``out`` as a text line or, for "json", one JSON object per line
    (Twisted's ``jsonFileLogObserver`` with no record separator)."""
    if log_format == "json":
        observer = FileLogObserver(out, _json_line)
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
