"""Unit tests for control-line parsing and Telnet stripping in twisted_ftpd.protocol.parser."""

from __future__ import annotations

import pytest

from twisted_ftpd.protocol.parser import Command, parse, strip_telnet

IAC, IP, DM, WILL, WONT, DO, DONT = b"\xff", b"\xf4", b"\xf2", b"\xfb", b"\xfc", b"\xfd", b"\xfe"


def parsed(raw: bytes) -> Command:
    """``parse(raw)`` of a line that must hold a command."""
    command = parse(raw)
    assert command is not None
    return command


@pytest.mark.parametrize(
    "raw",
    [
        b"NOOP",  # line as framed from a bare LF
        b"NOOP\r",  # line as framed from CRLF when only LF was stripped
        b"NOOP\r\r",
    ],
)
def test_line_endings(raw: bytes) -> None:
    assert parse(raw) == Command("NOOP", "")


def test_crlf_with_argument() -> None:
    assert parse(b"RETR file.txt\r") == Command("RETR", "file.txt")


@pytest.mark.parametrize(
    "raw",
    [
        IAC + IP + IAC + DM + b"ABOR",
        IAC + IP + IAC + DM + b"ABOR\r",
        IAC + IP + b"ABOR",
        IAC + DM + b"ABOR",
        IAC + IP + IAC + DM + b"abor\r",
    ],
)
def test_telnet_interrupt_before_abor(raw: bytes) -> None:
    assert parse(raw) == Command("ABOR", "")


def test_exact_synch_sequence_from_brief() -> None:
    assert parse(b"\xff\xf4\xff\xf2ABOR") == Command("ABOR", "")


@pytest.mark.parametrize("option_command", [WILL, WONT, DO, DONT])
def test_option_negotiation_triples_are_dropped(option_command: bytes) -> None:
    # The option byte (here 0x01 ECHO, and 'A' to prove it is swallowed) is part of the triple.
    assert strip_telnet(IAC + option_command + b"\x01NOOP") == b"NOOP"
    assert strip_telnet(b"NO" + IAC + option_command + b"AOP") == b"NOOP"
    assert parse(IAC + option_command + b"\x01" + b"USER bob\r") == Command("USER", "bob")


def test_several_option_triples() -> None:
    raw = IAC + WILL + b"\x01" + IAC + DO + b"\x03" + b"SYST"
    assert parse(raw) == Command("SYST", "")


def test_truncated_telnet_sequences_at_end_do_not_raise() -> None:
    assert strip_telnet(b"NOOP" + IAC) == b"NOOP"
    assert strip_telnet(b"NOOP" + IAC + WILL) == b"NOOP"


def test_iac_iac_is_literal_ff() -> None:
    assert strip_telnet(b"a" + IAC + IAC + b"b") == b"a\xffb"
    assert strip_telnet(IAC + IAC + IAC + IAC) == b"\xff\xff"


def test_iac_iac_in_argument_is_recoverable_ff_byte() -> None:
    command = parsed(b"RETR a" + IAC + IAC + b"b\r")
    assert command.verb == "RETR"
    assert command.arg_is_clean is False
    assert command.arg.encode("utf-8", "surrogateescape") == b"a\xffb"


def test_strip_telnet_without_iac_is_identity() -> None:
    line = b"STOR some file\r"
    assert strip_telnet(line) is line


@pytest.mark.parametrize(
    ("raw", "verb"),
    [(b"noop", "NOOP"), (b"NoOp", "NOOP"), (b"user bob", "USER"), (b"xcwd /", "XCWD")],
)
def test_verb_is_upper_cased(raw: bytes, verb: str) -> None:
    assert parsed(raw).verb == verb


def test_argument_case_is_preserved() -> None:
    assert parse(b"user BoB") == Command("USER", "BoB")


@pytest.mark.parametrize(
    ("raw", "arg"),
    [
        (b"STOR my file.txt", "my file.txt"),
        (b"STOR a  b", "a  b"),
        (b"STOR trailing ", "trailing "),
        (b"STOR trailing  \r", "trailing  "),
        (b"STOR  leading", " leading"),
        (b"PASS  ", " "),
        (b"MKD -rf", "-rf"),
    ],
)
def test_argument_keeps_inner_and_trailing_spaces(raw: bytes, arg: str) -> None:
    assert parsed(raw).arg == arg


def test_leading_spaces_before_verb_are_ignored() -> None:
    assert parse(b"   CWD /x") == Command("CWD", "/x")


@pytest.mark.parametrize(
    "raw", [b"", b"\r", b" ", b"   \r", b"\r\r", IAC + IP + IAC + DM, IAC + IP + IAC + DM + b"\r"]
)
def test_blank_line_is_none(raw: bytes) -> None:
    assert parse(raw) is None


@pytest.mark.parametrize(
    "raw_arg",
    [b"caf\xe9", b"\x80", b"\xc3", b"ok\xfe\xfdbad", b"\xed\xa0\x80"],
)
def test_non_utf8_argument(raw_arg: bytes) -> None:
    # 0xFD/0xFE only follow IAC as Telnet commands; here they are plain bytes.
    command = parsed(b"RETR " + raw_arg + b"\r")
    assert command.verb == "RETR"
    assert command.arg_is_clean is False
    assert command.arg.encode("utf-8", "surrogateescape") == raw_arg


def test_utf8_argument_is_clean() -> None:
    raw_arg = "日本語 ü".encode()
    command = parse(b"STOR " + raw_arg)
    assert command == Command("STOR", "日本語 ü")
    assert command.arg_is_clean is True
    assert command.arg.encode("utf-8") == raw_arg


def test_empty_argument_is_clean() -> None:
    command = parsed(b"PWD")
    assert command.arg == ""
    assert command.arg_is_clean is True


def test_non_utf8_verb_does_not_raise() -> None:
    command = parsed(b"\xe9\xe9 x")
    assert command.verb.encode("utf-8", "surrogateescape") == b"\xe9\xe9"
    assert command.arg == "x"


def test_command_is_frozen() -> None:
    command = Command("NOOP", "")
    with pytest.raises(AttributeError):
        command.verb = "QUIT"  # type: ignore[misc]
