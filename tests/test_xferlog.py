"""The xferlog line, field by field against xferlog(5) as vsftpd and ProFTPD write it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import error

from tests.harness import Harness, close
from twisted_ftpd.events import EventLog
from twisted_ftpd.reporting import Reporting
from twisted_ftpd.xferlog import XferLog, format_line

# 2026-01-05 14:03:09 UTC, a Monday: a single-digit day, which ctime pads with a space.
WHEN = 1767621789.0


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """current-time is local time, as in every xferlog; these tests run in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def transfer(**changes: Any) -> dict[str, Any]:
    event = {"log_time": WHEN, "session": "0000abcd", "peer": "192.0.2.7", "user": "alice",
             "direction": "download", "path": "/dir/f.bin", "bytes": 1000, "seconds": 1.2,
             "rate": 833.3, "tls": False, "completed": True, "reason": None, "mode": "binary"}
    event.update(changes)
    return event


def fields(event: dict[str, Any]) -> list[str]:
    """The 14 fields: current-time is the first five blank-separated words."""
    words = format_line(event).split()
    assert len(words) == 5 + 13, words
    return [" ".join(words[:5]), *words[5:]]


def test_a_whole_line_as_vsftpd_writes_it() -> None:
    assert format_line(transfer()) == (
        "Mon Jan  5 14:03:09 2026 1 192.0.2.7 1000 /dir/f.bin b _ o r alice ftp 0 * c")


def test_current_time_is_ctime_of_the_end_of_the_transfer() -> None:
    stamp = fields(transfer(log_time=WHEN + 86400 * 10))[0]
    assert stamp == "Thu Jan 15 14:03:09 2026"
    assert time.strptime(stamp, "%a %b %d %H:%M:%S %Y")[:6] == (2026, 1, 15, 14, 3, 9)


@pytest.mark.parametrize("seconds,shown", [(0.0, "1"), (0.2, "1"), (1.4, "1"), (1.5, "2"),
                                           (100.6, "101")])
def test_transfer_time_is_whole_seconds_and_never_0(seconds: float, shown: str) -> None:
    assert fields(transfer(seconds=seconds))[1] == shown


@pytest.mark.parametrize("peer", ["203.0.113.9", "2001:db8::1"])
def test_remote_host_is_the_address(peer: str) -> None:
    assert fields(transfer(peer=peer))[2] == peer


def test_file_size_is_the_bytes_transferred() -> None:
    assert fields(transfer(bytes=0))[3] == "0"
    assert fields(transfer(bytes=5 * 2**40))[3] == str(5 * 2**40)


@pytest.mark.parametrize("path,shown", [
    ("/dir/f.bin", "/dir/f.bin"),
    ("/my docs/a b.txt", "/my_docs/a_b.txt"),  # spaces would shift every later field
    ("/tab\there", "/tab_here"),
    ("/new\nline\rx\x00", "/new_line_x_"),
    ("/é ü 文件", "/é_ü_文件"),
])
def test_filename_is_one_field(path: str, shown: str) -> None:
    assert fields(transfer(path=path))[4] == shown


@pytest.mark.parametrize("mode,shown", [("binary", "b"), ("ascii", "a")])
def test_transfer_type(mode: str, shown: str) -> None:
    assert fields(transfer(mode=mode))[5] == shown


def test_special_action_flag_is_none() -> None:
    assert fields(transfer())[6] == "_"


@pytest.mark.parametrize("direction,shown", [("download", "o"), ("upload", "i")])
def test_direction(direction: str, shown: str) -> None:
    assert fields(transfer(direction=direction))[7] == shown


@pytest.mark.parametrize("user,mode", [("alice", "r"), ("anonymous", "a"), ("ftp", "a")])
def test_access_mode_and_username(user: str, mode: str) -> None:
    assert fields(transfer(user=user))[8:10] == [mode, user]


def test_username_is_one_field() -> None:
    assert fields(transfer(user="al ice"))[9] == "al_ice"


def test_service_and_authentication_fields() -> None:
    assert fields(transfer(tls=True))[10:13] == ["ftp", "0", "*"]


@pytest.mark.parametrize("completed,shown", [(True, "c"), (False, "i")])
def test_completion_status(completed: bool, shown: str) -> None:
    assert fields(transfer(completed=completed, reason=None if completed else "426 x"))[13] \
        == shown


# -- the file --------------------------------------------------------------------------------


def test_only_transfers_are_written_a_line_each(tmp_path: Path) -> None:
    path = tmp_path / "xferlog"
    xferlog = XferLog(str(path))
    xferlog.open()
    events = EventLog(forward=None)
    events.observe(xferlog)
    events.emit("connect", session="s", peer="192.0.2.7")
    fields_of = {k: v for k, v in transfer().items() if k != "log_time"}
    events.emit("transfer", **fields_of)
    events.emit("transfer", **{**fields_of, "direction": "upload", "completed": False,
                               "reason": "aborted by ABOR"})
    lines = path.read_text().splitlines()  # each line is out before the next event
    xferlog.close()
    assert [line.split()[11] + line[-1] for line in lines] == ["oc", "ii"]


def test_names_that_are_not_utf8_keep_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "xferlog"
    xferlog = XferLog(str(path))
    xferlog.open()
    xferlog(transfer(path="/caf\udce9", ftpd_event="transfer"))
    xferlog.close()
    assert b" /caf\xe9 b _ o " in path.read_bytes()


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "xferlog"
    path.write_text("an older line\n")
    xferlog = XferLog(str(path))
    xferlog.open()
    xferlog.open()  # once only
    xferlog(transfer(ftpd_event="transfer"))
    xferlog.close()
    assert path.read_text().splitlines()[0] == "an older line"
    assert len(path.read_text().splitlines()) == 2


def test_a_sessions_transfers(tmp_path: Path) -> None:
    path = tmp_path / "xferlog"
    h = Harness(tmp_path)
    xferlog = XferLog(str(path))
    xferlog.open()
    h.factory.events.observe(xferlog)
    s = h.connect()
    s.login()
    h.put("report 1.csv", b"a,b\n1,2\n")
    s.send("TYPE I")
    s.download("RETR report 1.csv")
    s.send("TYPE A")
    s.upload("STOR up.txt", b"x\r\n")
    xferlog.close()
    down, up = (line.split() for line in path.read_text().splitlines())
    assert down[5:] == ["1", "192.0.2.7", "8", "/report_1.csv", "b", "_", "o", "r", "alice",
                        "ftp", "0", "*", "c"]
    assert up[5:] == ["1", "192.0.2.7", "3", "/up.txt", "a", "_", "i", "r", "alice", "ftp",
                      "0", "*", "c"]


# -- with the service -------------------------------------------------------------------------


def test_reporting_keeps_the_xferlog_open_until_the_last_session_has_settled(
        tmp_path: Path) -> None:
    path = tmp_path / "xferlog"
    h = Harness(tmp_path)
    reporting = Reporting(replace(h.config, xferlog=str(path)), h.factory, h.reactor)
    reporting.start()
    reporting.start()  # once only
    s = h.connect()
    s.login()
    h.put("f", b"abc")
    proto, _ = s.start("RETR f")
    assert reporting.stop().called  # no metrics port to wait for
    assert reporting.xferlog is not None and reporting.xferlog._file is not None
    s.lose()  # the session goes first; its transfer is cut after
    assert reporting.xferlog._file is not None
    close(proto, error.ConnectionAborted())
    assert reporting.xferlog._file is None
    (line,) = path.read_text().splitlines()
    assert line.endswith(" o r alice ftp 0 * i")


def test_reporting_without_xferlog_or_metrics_does_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    reporting = Reporting(h.config, h.factory, h.reactor)
    reporting.start()
    assert (reporting.xferlog, reporting.metrics, reporting.metrics_port) == (None, None, None)
    assert reporting.stop().called
