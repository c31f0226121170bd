"""The log's formats and files."""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from constantly import NamedConstant
from constantly import Names as Names_
from twisted.application import service
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    eventAsJSON,
    eventFromJSON,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python import usage
from twisted.python.failure import Failure

from twisted_ftpd import logs
from twisted_ftpd.config import Options
from twisted_ftpd.events import FIELDS, FORMATS, EventLog


def test_json_is_one_object_per_line_from_twisteds_observer() -> None:
    out = io.StringIO()
    events = EventLog(forward=logs.file_observer(out, "json"))
    events.emit("connect", session="0000abcd", peer="192.0.2.7")
    events.emit("logout", session="0000abcd", peer="192.0.2.7", user="alice")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\x1e" not in out.getvalue()
    first, second = (json.loads(line) for line in lines)
    assert (first["ftpd_event"], first["session"], first["peer"]) == (
        "connect", "0000abcd", "192.0.2.7")
    assert (second["ftpd_event"], second["user"]) == ("logout", "alice")
    assert first["log_level"]["name"] == "info" and "log_time" in first


def test_text_lines_escape_names_that_are_not_utf8() -> None:
    out = io.StringIO()
    events = EventLog(forward=logs.file_observer(out, "text"))
    events.emit("delete", session="s", peer="p", user="alice", path="/caf\udce9")
    line = out.getvalue()
    assert line.endswith("'alice' from p deleted '/caf\\udce9'\n")
    line.encode("utf-8")  # what the log file's encoder must accept


SAMPLE_FIELDS: dict[str, Any] = {
    "session": "0000abcd", "peer": "192.0.2.7", "user": "al\nice", "method": "password",
    "result": "ok", "reason": "550 No.\nreally", "direction": "download", "path": "/caf\udce9",
    "bytes": 1234, "seconds": 0.25, "rate": 4936.0, "tls": False, "completed": False,
    "mode": "binary", "to": "/b", "permissions": "0644", "command": "STOR", "code": 534,
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_session_event_text_is_exactly_twisteds(name: str) -> None:
    """Session events take a faster formatter than Twisted's, with the same output
    (a newline in a field included)."""
    captured: list[dict[str, Any]] = []
    EventLog(forward=captured.append).emit(name, **{f: SAMPLE_FIELDS[f] for f in FIELDS[name]})
    [event] = captured
    ours = logs._classic_text(event, logs._Timestamps())
    theirs = formatEventAsClassicLogText(
        event, lambda when: formatTime(when, logs._Timestamps.FORMAT))
    assert ours == theirs.encode("utf-8", "backslashreplace").decode("utf-8")


def emitted(name: str, **changes: Any) -> dict[str, Any]:
    captured: list[dict[str, Any]] = []
    fields = {f: SAMPLE_FIELDS[f] for f in FIELDS[name]} | changes
    EventLog(forward=captured.append).emit(name, **fields)
    return captured[0]


@pytest.mark.parametrize("name", sorted(FIELDS))
@pytest.mark.parametrize("completed", [False, True])
def test_session_event_json_is_exactly_twisteds(name: str, completed: bool) -> None:
    """Session events' JSON lines take a faster path than Twisted's eventAsJSON,
    with the same output, and leave the event flattened as Twisted's would."""
    ours = emitted(name, **({"completed": completed} if name == "transfer" else {}))
    theirs = dict(ours)
    assert logs._json_line(ours) == eventAsJSON(theirs) + "\n"
    assert ours == theirs  # log_flattened included, for the observers after this one


def test_every_session_event_takes_the_fast_json_path(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    formats = [*FORMATS.values(), FORMATS["transfer"] + ", complete",
               FORMATS["transfer"] + ", incomplete: {reason}"]
    assert all(logs._flattening(text) is not None for text in formats)
    events = [emitted(name) for name in FIELDS] + [emitted("transfer", completed=True)]

    def slow(event: Any) -> str:
        raise AssertionError("Twisted's own eventAsJSON was used")

    monkeypatch.setattr(logs, "eventAsJSON", slow)
    for event in events:
        json.loads(logs._json_line(event))


@pytest.mark.parametrize("log_format", [
    "{a} and {a} again, {a!r}, {b:>6} and {b!r:>8}",  # repeated fields: Twisted's /2 keys
    "{a!a} {b!s}",
    "{a.real} {b[0]}",  # more than plain names: Twisted's own code
    "no fields at all",
])
def test_any_format_of_a_session_event_gives_twisteds_json(log_format: str) -> None:
    def event() -> dict[str, Any]:
        return {"a": 7, "b": "xy", "log_format": log_format, "ftpd_event": "login",
                "log_level": LogLevel.warn, "log_logger": Logger(), "log_time": 1.5,
                "raw": b"\xff", "log_namespace": "twisted_ftpd.events"}

    ours = event()
    theirs = dict(ours)
    assert logs._json_line(ours) == eventAsJSON(theirs) + "\n"
    assert ours == theirs


@pytest.mark.parametrize(("log_format", "error"), [("{missing}", KeyError),
                                                   (b"{session}", TypeError)])
def test_a_session_event_twisteds_json_refuses_is_refused(log_format: Any,
                                                          error: type[Exception]) -> None:
    event = {"log_format": log_format, "ftpd_event": "login", "log_level": LogLevel.info}
    with pytest.raises(error):
        eventAsJSON(dict(event))
    with pytest.raises(error):
        logs._json_line(dict(event))


def test_other_events_and_their_failures_go_through_twisteds_json() -> None:
    failure = Failure(ZeroDivisionError("division by zero"))
    event = {"log_format": "it failed", "log_failure": failure, "log_level": LogLevel.error}
    assert logs._json_line(dict(event)) == eventAsJSON(dict(event)) + "\n"
    odd_values = [failure, {1: "a", "1": "b"}, Names.info]  # Names.info is no log level
    for value in odd_values:
        session = emitted("connect") | {"extra": value}
        theirs = dict(session)
        assert logs._json_line(session) == eventAsJSON(theirs) + "\n"
        assert session == theirs
    for already in ({"log_flattened": {"session!s:": "x"}}, {"log_failure": failure},
                    {("a", "tuple"): "key"}):
        session = emitted("connect") | already
        theirs = dict(session)
        assert logs._json_line(session) == eventAsJSON(theirs) + "\n"
        assert session == theirs


class Names(Names_):
    info = NamedConstant()


def test_a_session_events_json_reads_back_with_its_level() -> None:
    """What --workers relies on: the parent reads each worker's lines back."""
    event = eventFromJSON(logs._json_line(emitted("refused")))
    assert event["log_level"] is LogLevel.warn and event["ftpd_event"] == "refused"
    assert event["log_flattened"]["reason!s:"] == SAMPLE_FIELDS["reason"]


def test_timestamps_are_twisteds_and_made_once_a_second() -> None:
    stamp = logs._Timestamps()
    assert stamp(1700000000.9) == formatTime(1700000000.9, logs._Timestamps.FORMAT)
    assert stamp(1700000000.1) is stamp(1700000000.8)  # the same second: the same text
    assert stamp(1700000001.0) == formatTime(1700000001.0, logs._Timestamps.FORMAT)
    assert stamp(None) == formatTime(None)


def test_log_file_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "ftpd.log"
    path.write_text("older line\n")
    observer = logs.foreground_observer("text", str(path))
    EventLog(forward=observer).emit("connect", session="s", peer="192.0.2.7")
    lines = path.read_text().splitlines()
    assert lines[0] == "older line" and lines[1].endswith("[s] connection from 192.0.2.7")


def test_options_take_the_log_format_and_file() -> None:
    options = Options()
    options.parseOptions(["--log-format", "json", "--log-file", "/var/log/ftpd.log"])
    config = options.to_config()
    assert (config.log_format, config.log_file) == ("json", "/var/log/ftpd.log")
    assert Options().to_config().log_format == "text"
    with pytest.raises(usage.UsageError, match="text, json"):
        Options().parseOptions(["--log-format", "xml"])


# -- under twistd -------------------------------------------------------------------------------


@pytest.fixture
def usr1() -> Iterator[None]:
    """Whatever the test installs for SIGUSR1 is undone afterwards."""
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


def emit_to(observer: ILogObserver | None) -> None:
    assert observer is not None
    EventLog(forward=observer).emit("connect", session="s", peer="192.0.2.7")


def test_twistd_logger_or_syslog_keep_twistds_own() -> None:
    assert logs.twistd_observer(None, "json", None) is None  # no twistd
    assert logs.twistd_observer({"logger": object()}, "json", None) is None
    assert logs.twistd_observer({"syslog": True, "logfile": None}, "text", None) is None
    with pytest.raises(ValueError, match="--syslog"):
        logs.twistd_observer({"syslog": True, "logfile": None}, "json", None)


@pytest.mark.parametrize("twistd", [{"logfile": "-"}, {"logfile": None, "nodaemon": True}])
def test_twistd_to_stdout(twistd: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    emit_to(logs.twistd_observer(twistd, "json", None))
    assert json.loads(capsys.readouterr().out)["ftpd_event"] == "connect"


def test_twistd_logfile_is_rotated_on_sigusr1(tmp_path: Path, usr1: None) -> None:
    path = tmp_path / "twistd.log"
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    emit_to(logs.twistd_observer({"logfile": str(path)}, "json", None))
    assert json.loads(path.read_text())["peer"] == "192.0.2.7"
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)


def test_log_file_wins_over_twistds(tmp_path: Path) -> None:
    ours = tmp_path / "ours.log"
    emit_to(logs.twistd_observer({"logfile": str(tmp_path / "theirs.log")}, "text", str(ours)))
    assert "connection from 192.0.2.7" in ours.read_text()
    assert not (tmp_path / "theirs.log").exists()


def test_twistds_application_gets_the_observer() -> None:
    observer = logs.file_observer(io.StringIO(), "json")
    application = service.Application("ftpd")
    logs.TwistdLogging(observer).setServiceParent(application)
    assert application.getComponent(ILogObserver) is observer
    untouched = service.Application("ftpd")
    logs.TwistdLogging(None).setServiceParent(untouched)
    assert untouched.getComponent(ILogObserver) is None


def test_twistd_service_reports_an_unusable_log_file_in_one_line(tmp_path: Path) -> None:
    options = Options()
    options.parent = {"logfile": None, "nodaemon": True}  # as twistd sets it
    options.parseOptions(["--log-file", str(tmp_path / "missing" / "ftpd.log")])
    with pytest.raises(SystemExit, match="cannot log: .*No such file"):
        logs.twistd_service(options)
