"""Control-channel input: the greeting, line framing, Telnet bytes, over-long lines,
undecodable bytes and pipelining."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.harness import LOCAL, PEER, Harness, Session, logged_in
from twisted_ftpd.control.lines import CommandLineReceiver
from twisted_ftpd.protocol.parser import MAX_LINE_LENGTH, Command


def feed(s: Session, data: bytes) -> list[str]:
    """Deliver raw bytes as one read (no line ending added); the replies written."""
    s.proto.dataReceived(data)
    return s.take()


def write_raw_name(directory: Path, name: bytes, data: bytes) -> None:
    with open(os.path.join(os.fsencode(directory), name), "wb") as f:
        f.write(data)


class NoDelayTransport(StringTransport):
    """A StringTransport that records setTcpNoDelay calls."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.nodelay_calls: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay_calls.append(enabled)


# -- greeting --------------------------------------------------------------------


def test_greeting_is_220(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.greeting == ["220 twisted-ftpd ready."]


def test_multi_line_banner(tmp_path: Path) -> None:
    s = Harness(tmp_path, banner="a\nb").connect()
    assert s.greeting == ["220-a", "220 b"]


def test_three_line_banner_continuation_lines_cannot_end_the_reply(tmp_path: Path) -> None:
    s = Harness(tmp_path, banner="first\n220 sneaky\nlast").connect()
    assert s.greeting[0] == "220-first"
    assert s.greeting[-1] == "220 last"
    assert [line for line in s.greeting if line.startswith("220 ")] == ["220 last"]


def test_control_transport_requests_tcp_nodelay(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    proto = h.factory.buildProtocol(IPv4Address("TCP", PEER, 40000))
    transport = NoDelayTransport(hostAddress=IPv4Address("TCP", LOCAL, 52305),
                                 peerAddress=IPv4Address("TCP", PEER, 40000))
    proto.makeConnection(transport)
    assert transport.nodelay_calls == [True]
    assert transport.value().startswith(b"220 ")


def test_data_transport_requests_tcp_nodelay(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    _, factory, _, _ = h.reactor.tcpServers[-1]
    proto = factory.buildProtocol(IPv4Address("TCP", PEER, 50000))
    transport = NoDelayTransport(peerAddress=IPv4Address("TCP", PEER, 50000))
    proto.makeConnection(transport)
    assert transport.nodelay_calls == [True]


# -- framing ----------------------------------------------------------------------


def test_crlf_and_bare_lf_both_end_a_command(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(b"NOOP\r\n", b"NOOP\n", b"SYST\n") == [200, 200, 215]


def test_line_split_across_reads_is_answered_once_complete(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert feed(s, b"NO") == []
    assert feed(s, b"OP\r") == []
    assert feed(s, b"\n") == ["200 NOOP ok."]


def test_telnet_interrupt_prefix_is_ignored(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(b"\xff\xf4\xff\xf2NOOP\r\n") == [200]


@pytest.mark.parametrize("blank", [b"\r\n", b"\n", b"   \r\n", b"\xff\xf1\r\n"])
def test_blank_line_is_answered_500(tmp_path: Path, blank: bytes) -> None:
    s = Harness(tmp_path).connect()
    assert feed(s, blank) == ["500 Syntax error, command unrecognized."]
    assert s.codes("NOOP") == [200]


def test_blank_lines_keep_their_place_in_a_pipeline(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(b"NOOP\r\n\r\nSYST\r\n") == [200, 500, 215]


def test_pipelined_commands_are_answered_in_order(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert s.codes(b"NOOP\r\nSYST\r\nFOO\r\nUSER alice\r\nPASS secret\r\nPWD\r\n") == [
        200, 215, 500, 331, 230, 257]


def test_pipelined_commands_after_a_failed_login_wait_for_its_reply(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert s.send(b"USER alice\r\nPASS wrong\r\nNOOP\r\nSYST\r\n") == [
        "331 Password required for alice."]
    h.reactor.advance(h.config.login_delay)
    assert [line[:3] for line in s.take()] == ["530", "200", "215"]


# -- over-long lines ----------------------------------------------------------------


def test_overlong_line_gets_one_500_and_session_goes_on(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    reply = s.send(b"A" * (MAX_LINE_LENGTH + 100) + b"\r\n")
    assert reply == ["500 Command line too long."]
    assert s.codes("NOOP") == [200]


def test_line_of_exactly_max_length_is_not_too_long(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    # MAX_LINE_LENGTH bytes before the LF, the CR included.
    line = b"NOOP " + b"x" * (MAX_LINE_LENGTH - 6) + b"\r\n"
    assert s.codes(line) == [501]  # NOOP takes no argument: parsed, not refused as long


def test_overlong_line_in_several_chunks_gets_one_500(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    replies = []
    replies += feed(s, b"A" * 5000)
    replies += feed(s, b"B" * 5000)
    replies += feed(s, b"C" * 9000)
    replies += feed(s, b"D" * 10 + b"\r\n")
    assert replies == ["500 Command line too long."]
    assert s.codes("NOOP") == [200]


def test_overlong_line_whose_tail_is_itself_long_gets_one_500(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    replies = feed(s, b"A" * 9000)
    replies += feed(s, b"B" * 9000 + b"\r\nNOOP\r\n")
    h.reactor.advance(0)
    replies += s.take()
    assert [r[:3] for r in replies] == ["500", "200"]


def test_overlong_line_with_the_newline_in_the_next_chunk(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert feed(s, b"A" * (MAX_LINE_LENGTH + 1)) == ["500 Command line too long."]
    # The LF ends the refused line: nothing more for it, and the next line is a command.
    assert s.send(b"\r\nSYST\r\n") == ["215 UNIX Type: L8"]


def test_commands_after_an_overlong_line_in_the_same_chunk_run_in_order(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    replies = s.send(b"NOOP\r\n" + b"A" * 9000 + b"\r\nSYST\r\nNOOP\r\nFOO\r\n")
    h.reactor.advance(0)
    replies += s.take()
    assert [r[:3] for r in replies] == ["200", "500", "215", "200", "500"]
    assert replies[1] == "500 Command line too long."


def test_overlong_line_then_session_end_leaves_no_delayed_call(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    s.send(b"A" * 9000 + b"\r\nNOOP\r\n")
    s.proto.connectionLost()
    assert h.reactor.getDelayedCalls() == []


# -- undecodable bytes ----------------------------------------------------------------


def test_non_utf8_commands_get_5xx_replies_and_never_raise(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    for raw in (b"CWD \xff\xfe\r\n", b"STOR \xe9t\xe9\r\n", b"\xe9\xe9\r\n",
                b"DELE \xc3\x28\r\n", b"RMD \x80\r\n"):
        reply = s.send(raw)
        assert len(reply) == 1 and reply[0][0] == "5", (raw, reply)
    assert s.codes("NOOP") == [200]
    assert os.listdir(h.root) == []


def test_line_of_only_undecodable_bytes_gets_a_5xx_reply(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    reply = s.send(b"\xff\xfe\xfd\r\n")
    assert len(reply) == 1 and reply[0][0] == "5", reply
    assert s.codes("NOOP") == [200]


def test_non_utf8_stor_is_refused_before_150(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.send(b"STOR \xe9t\xe9\r\n") == ["553 File name not allowed."]
    assert os.listdir(h.root) == []


def test_mkd_with_non_utf8_name_is_553_and_creates_nothing(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.send(b"MKD \xe9t\xe9\r\n") == ["553 File name not allowed."]
    assert os.listdir(h.root) == []


def test_rnto_to_non_utf8_name_is_553(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("a.txt", b"x")
    assert s.codes("RNFR a.txt", b"RNTO \xe9\r\n") == [350, 553]
    assert os.listdir(h.root) == ["a.txt"]


def test_existing_non_utf8_file_can_be_retrieved_and_deleted(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    name = b"\xe9t\xe9.bin"
    write_raw_name(h.root, name, b"latin-1 named")
    assert s.codes("TYPE I") == [200]
    assert s.send(b"SIZE " + name + b"\r\n") == ["213 13"]
    s.pasv()
    assert s.codes(b"RETR " + name + b"\r\n") == [150]
    proto, transport = s.open_passive()
    assert transport.value() == b"latin-1 named"
    assert s.finish(proto) == ["226 Transfer complete."]
    assert s.send(b"DELE " + name + b"\r\n") == ["250 File removed."]
    assert os.listdir(h.root) == []


def test_existing_non_utf8_name_is_listed_with_its_own_bytes(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    name = b"\xe9t\xe9"
    write_raw_name(h.root, name, b"")
    proto, transport = s.start("NLST")
    assert transport.value() == name + b"\r\n"
    assert s.finish(proto) == ["226 Transfer complete."]


def test_commands_after_an_overlong_line_are_not_overtaken_by_the_next_read(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    replies = feed(s, b"A" * 9000 + b"\r\nNOOP\r\n")
    replies += feed(s, b"SYST\r\n")  # arrives before the clock moves at all
    h.reactor.advance(0)
    replies += s.take()
    assert [r[:3] for r in replies] == ["500", "200", "215"]


class _ClosingReceiver(CommandLineReceiver):
    """Records verbs; QUIT ends the connection at once, as the session's close does
    when its last reply went straight to the socket."""

    def __init__(self) -> None:
        self.verbs: list[str] = []

    def command_received(self, command: Command) -> None:
        self.verbs.append(command.verb)
        if command.verb == "QUIT":
            self.gone = True


def test_lines_after_the_one_that_closed_the_session_are_not_parsed() -> None:
    receiver = _ClosingReceiver()
    receiver.makeConnection(StringTransport())
    receiver.dataReceived(b"USER a\r\nQUIT\r\nNOOP\r\n" + b"x" * (MAX_LINE_LENGTH + 10)
                          + b"\r\nPWD\r\n")
    assert receiver.verbs == ["USER", "QUIT"]
