"""ABOR (RFC 959 4.1.3) and STAT, both answered while a transfer holds the session."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from twisted.internet import error
from twisted.internet.testing import StringTransport

from tests.harness import Harness, Session, hidden, logged_in
from twisted_ftpd.data.channel import DataProtocol

ABORTED = "426 Connection closed; transfer aborted."
ABOR_OK = "226 ABOR successful; data connection closed."
TELNET_ABOR = b"\xff\xf4\xff\xf2ABOR\r\n"  # IAC IP IAC DM, then ABOR


def record_stop_listening(s: Session) -> list[bool]:
    """Make the pending passive listener record its stopListening calls."""
    port = s.proto.data.pending.port
    calls: list[bool] = []
    original = port.stopListening

    def stop() -> object:
        calls.append(True)
        return original()

    port.stopListening = stop
    return calls


def send_abor(s: Session, telnet: bool) -> list[str]:
    return s.send(TELNET_ABOR if telnet else "ABOR")


def abort_transfer(s: Session, proto: DataProtocol, transport: StringTransport,
                   telnet: bool = False) -> None:
    """ABOR while a transfer runs: no reply until the data connection is gone, then
    426 for the transfer and 226 for ABOR."""
    assert send_abor(s, telnet) == []  # both replies wait for the data connection to go
    assert transport.disconnected  # abortConnection, not a flushing loseConnection
    # ConnectionAborted is what the reactor reports after an abort.
    assert s.finish(proto, error.ConnectionAborted()) == [ABORTED, ABOR_OK]


def retr_works(h: Harness, s: Session) -> None:
    h.put("again", b"again")
    replies, data = s.download("RETR again")
    assert replies[1:] == ["226 Transfer complete."] and data == b"again"


# -- ABOR without a transfer ------------------------------------------------------------------


def test_abor_with_nothing_running_is_225(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("ABOR") == ["225 No transfer to abort."]
    assert s.codes("NOOP") == [200]


def test_abor_closes_a_pending_passive_listener(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    s.pasv()
    stopped = record_stop_listening(s)
    assert s.send("ABOR") == ["225 No transfer to abort."]
    assert stopped == [True]
    assert s.proto.data.pending is None
    late, _ = s.open_passive()  # the old listener accepts nobody any more
    assert late is None
    assert s.codes("RETR f") == [425]


def test_abor_needs_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("ABOR") == [530]


# -- ABOR during a transfer ------------------------------------------------------------------


@pytest.mark.parametrize("telnet", [False, True], ids=["plain", "telnet"])
def test_abor_during_retr_is_426_then_226(tmp_path: Path, telnet: bool) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x" * 1000)
    proto, transport = s.start("TYPE I", "RETR f", codes=[200, 150])
    assert not transport.disconnected
    abort_transfer(s, proto, transport, telnet)
    assert s.proto.data.transfer is None and s.proto.data.pending is None
    assert s.codes("NOOP") == [200]
    retr_works(h, s)


def test_abor_split_telnet_synch_works(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x" * 1000)
    proto, transport = s.start("RETR f")
    s.proto.dataReceived(b"\xff\xf4")  # IAC IP alone (Session.send would add CRLF)
    assert s.take() == []
    assert s.send(b"\xff\xf2ABOR\r\n") == []  # then IAC DM with the command
    assert transport.disconnected
    assert s.finish(proto, error.ConnectionAborted()) == [ABORTED, ABOR_OK]


@pytest.mark.parametrize("telnet", [False, True], ids=["plain", "telnet"])
@pytest.mark.parametrize(("kind", "old", "sent", "kept"), [
    ("I", None, b"partial", b"partial"),  # a new file keeps the partial data
    ("A", b"precious", b"half of the repl", b"precious"),  # an existing file is kept
], ids=["new-file-keeps-the-partial-data", "existing-file-is-kept"])
def test_abor_during_stor(tmp_path: Path, telnet: bool, kind: str, old: bytes | None,
                          sent: bytes, kept: bytes) -> None:
    h, s = logged_in(tmp_path)
    if old is not None:
        h.put("f", old)
    proto, transport = s.start(f"TYPE {kind}", "STOR f", codes=[200, 150])
    proto.dataReceived(sent)
    abort_transfer(s, proto, transport, telnet)
    assert (h.root / "f").read_bytes() == kept
    assert os.listdir(h.root) == ["f"]
    assert s.codes("NOOP") == [200]


def test_abor_outcome_does_not_depend_on_how_the_close_is_reported(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"precious")
    proto, _ = s.start("STOR f")
    proto.dataReceived(b"half")
    assert s.send("ABOR") == []
    assert s.finish(proto) == [ABORTED, ABOR_OK]  # closed with ConnectionDone
    assert (h.root / "f").read_bytes() == b"precious"


@pytest.mark.parametrize("telnet", [False, True], ids=["plain", "telnet"])
def test_abor_while_retr_waits_for_the_passive_connection(tmp_path: Path,
                                                          telnet: bool) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    s.pasv()
    stopped = record_stop_listening(s)
    assert s.codes("RETR f") == [150]
    assert send_abor(s, telnet) == [ABORTED, ABOR_OK]
    assert stopped == [True]
    late, _ = s.open_passive()
    assert late is None
    assert s.codes("NOOP") == [200]
    retr_works(h, s)


def test_abor_while_stor_waits_for_the_passive_connection(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"precious")
    s.pasv()
    assert s.codes("STOR f") == [150]
    assert s.send("ABOR") == [ABORTED, ABOR_OK]
    assert (h.root / "f").read_bytes() == b"precious"
    assert hidden(h.root) == []


@pytest.mark.parametrize("line", ["LIST", "NLST", "MLSD"])
def test_abor_during_a_listing(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    proto, transport = s.start(line)
    abort_transfer(s, proto, transport)
    assert s.codes("NOOP") == [200]


def test_abor_while_an_active_connection_is_dialed(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    assert s.codes("PORT 192,0,2,7,200,10", "RETR f") == [200, 150]
    assert h.reactor.tcpClients[-1][:2] == ("192.0.2.7", 200 * 256 + 10)
    assert s.send("ABOR") == [ABORTED, ABOR_OK]
    assert s.codes("NOOP") == [200]


def test_transfer_finished_before_abor_gives_226_then_225(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    assert s.download("RETR f")[0][1:] == ["226 Transfer complete."]
    assert s.send("ABOR") == ["225 No transfer to abort."]


# -- STAT -----------------------------------------------------------------------------------


LS_LINE = re.compile(
    r"^ [-dl][-rwxsStT]{9} +\d+ \S+ +\S+ +\d+ \w{3} [ \d]\d (?: \d{4}|\d\d:\d\d) (.+)$")


def test_stat_without_argument_describes_the_session(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    reply = s.send("STAT")
    assert reply[0].startswith("211-") and reply[-1].startswith("211 ")
    assert len(reply) > 2
    body = "\n".join(reply)
    assert "alice" in re.findall(r"Logged in as (\S+)", body)
    assert "TYPE: ASCII" in body
    assert "Directory: /" in body
    assert s.codes("CWD d", "TYPE I") == [250, 200]
    body = "\n".join(s.send("STAT"))
    assert "TYPE: BINARY" in body and "Directory: /d" in body


def test_stat_body_lines_cannot_end_the_reply(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    reply = s.send("STAT")
    assert [line for line in reply if line[:4] == "211 "] == [reply[-1]]


def test_stat_of_a_directory_lists_it_on_the_control_channel(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("d/a.txt", b"hello")
    h.put("d/b.txt", b"")
    s.pasv()
    reply = s.send("STAT d")
    assert reply[0] == "213-Status of /d:"
    assert reply[-1] == "213 End of status."
    body = reply[1:-1]
    assert all(line.startswith(" ") for line in body)
    assert [LS_LINE.match(line).group(1) for line in body] == ["a.txt", "b.txt"]
    assert s.proto.data.pending is not None  # no data connection was used


def test_stat_of_a_file_is_one_line(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f.txt", b"12345")
    reply = s.send("STAT f.txt")
    assert reply[0] == "213-Status of /f.txt:" and reply[-1] == "213 End of status."
    assert len(reply) == 3
    m = LS_LINE.match(reply[1])
    assert m and m.group(1) == "f.txt" and " 5 " in reply[1]


def test_stat_of_a_missing_path_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("STAT missing") == ["550 /missing: No such file or directory."]


def test_stat_of_a_path_needs_l(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, "er")
    h.put("f", b"x")
    assert s.send("STAT f") == ["550 Permission denied."]
    assert s.codes("STAT") == [211]


def test_stat_needs_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("STAT") == [530]


def test_stat_during_retr_reports_the_bytes_sent_at_once(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"y" * 1234)
    proto, transport = s.start("TYPE I", "RETR f", codes=[200, 150])
    sent = len(transport.value())
    assert sent == 1234
    assert s.send("STAT") == [f"213 Status: {sent} bytes transferred."]
    assert s.send("STAT f") == [f"213 Status: {sent} bytes transferred."]
    assert s.finish(proto) == ["226 Transfer complete."]
    assert s.codes("STAT") == [211]  # the transfer is over


def test_stat_during_stor_reports_the_bytes_received(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    proto, _ = s.start("TYPE I", "STOR f", codes=[200, 150])
    proto.dataReceived(b"a" * 100)
    assert s.send("STAT") == ["213 Status: 100 bytes transferred."]
    proto.dataReceived(b"b" * 50)
    assert s.send("STAT") == ["213 Status: 150 bytes transferred."]
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "f").read_bytes() == b"a" * 100 + b"b" * 50


def test_stat_while_waiting_for_the_data_connection_is_0_bytes(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"abc")
    s.pasv()
    assert s.codes("RETR f") == [150]
    assert s.send("STAT") == ["213 Status: 0 bytes transferred."]
    proto, _ = s.open_passive()
    assert s.finish(proto) == ["226 Transfer complete."]
