"""Unit tests for PORT/EPRT parsing, PASV replies and bounce checks (protocol.addresses)."""

from __future__ import annotations

import pytest

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.addresses import (
    check_active_target,
    is_ipv6,
    normalize,
    parse_eprt,
    parse_port,
    pasv_reply_address,
    same_host,
)
from twisted_ftpd.protocol.errors import (
    AddressError,
    ForeignAddress,
    FTPError,
    PrivilegedPort,
    UnsupportedProtocol,
)

# --- error classes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "reply"),
    [
        (AddressError, 501, replies.BAD_ARGUMENT),
        (ForeignAddress, 501, replies.FOREIGN_ADDRESS),
        (PrivilegedPort, 504, replies.PRIVILEGED_PORT),
        (UnsupportedProtocol, 522, replies.PROTOCOL_NOT_SUPPORTED),
    ],
)
def test_error_replies(cls: type[AddressError], code: int, reply: replies.Reply) -> None:
    error = cls()
    assert isinstance(error, AddressError)
    assert isinstance(error, FTPError)
    assert error.reply() == reply
    assert error.reply().code == code


# --- PORT --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("127,0,0,1,4,1", ("127.0.0.1", 1025)),
        ("192,168,1,2,195,80", ("192.168.1.2", 50000)),
        ("10,0,0,1,255,255", ("10.0.0.1", 65535)),
        ("0,0,0,0,0,0", ("0.0.0.0", 0)),
        ("255,255,255,255,0,21", ("255.255.255.255", 21)),
        ("  127,0,0,1,4,1  ", ("127.0.0.1", 1025)),
        ("127,000,0,01,4,1", ("127.0.0.1", 1025)),
    ],
)
def test_parse_port_good(arg: str, expected: tuple[str, int]) -> None:
    assert parse_port(arg) == expected


@pytest.mark.parametrize(
    "arg",
    [
        "",
        "127,0,0,1,4",  # too few
        "127,0,0,1,4,1,0",  # too many
        "127,0,0,1,4,1,",  # trailing comma
        "127.0.0.1,4,1",  # dotted host
        "256,0,0,1,4,1",  # > 255 in host
        "127,0,0,1,256,1",  # > 255 in port
        "127,0,0,1,4,300",
        "-1,0,0,1,4,1",  # negative
        "127,0,0,1,-4,1",
        "a,b,c,d,e,f",  # letters
        "127,0,0,x,4,1",
        "0x7f,0,0,1,4,1",
        "127 0 0 1 4 1",  # spaces instead of commas
        "127,0,0,1,4 1",
        "1 27,0,0,1,4,1",  # space inside a number
        "127,,0,1,4,1",  # empty field
        "127,0,0,1,4.5,1",
    ],
)
def test_parse_port_bad(arg: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_port(arg)
    assert type(info.value) is AddressError
    assert info.value.reply().code == 501


# --- EPRT --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("|1|132.235.1.2|6275|", ("132.235.1.2", 6275)),
        ("|2|1080::8:800:200C:417A|5282|", ("1080::8:800:200c:417a", 5282)),
        ("|2|::1|2000|", ("::1", 2000)),
        ("!1!127.0.0.1!2000!", ("127.0.0.1", 2000)),
        ("!2!::1!2000!", ("::1", 2000)),
        ("#1#10.0.0.1#1#", ("10.0.0.1", 1)),
        ("~2~fe80::1~65535~", ("fe80::1", 65535)),
        ("  |1|127.0.0.1|2000|  ", ("127.0.0.1", 2000)),
    ],
)
def test_parse_eprt_good(arg: str, expected: tuple[str, int]) -> None:
    assert parse_eprt(arg) == expected


def test_parse_eprt_ipv4_mapped_normalizes_to_ipv4() -> None:
    host, port = parse_eprt("|2|::ffff:127.0.0.1|2000|")
    assert normalize(host) == "127.0.0.1"
    assert port == 2000


def test_parse_eprt_scope_id() -> None:
    host, port = parse_eprt("|2|fe80::1%eth0|2000|")
    assert port == 2000
    assert normalize(host) == "fe80::1"


@pytest.mark.parametrize("proto", ["0", "3", "6", "x", "11", "01"])
def test_parse_eprt_unsupported_protocol(proto: str) -> None:
    with pytest.raises(UnsupportedProtocol) as info:
        parse_eprt(f"|{proto}|127.0.0.1|2000|")
    assert info.value.reply().code == 522


@pytest.mark.parametrize(
    "arg",
    [
        "|1|::1|2000|",  # IPv4 protocol, IPv6 address
        "|2|127.0.0.1|2000|",  # IPv6 protocol, IPv4 address
        "|1|::ffff:127.0.0.1|2000|",
    ],
)
def test_parse_eprt_family_mismatch(arg: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_eprt(arg)
    assert info.value.reply().code == 501


@pytest.mark.parametrize(
    "arg",
    [
        "",
        "|",
        "||||",
        "|1|127.0.0.1|0|",  # port 0
        "|1|127.0.0.1|65536|",  # port too large
        "|1|127.0.0.1|-1|",
        "|1|127.0.0.1|port|",
        "|1|127.0.0.1||",
        "|1||2000|",  # no address
        "|1|localhost|2000|",  # names are not addresses
        "|1|256.0.0.1|2000|",
        "|1|127.0.0.1|2000",  # missing closing delimiter
        "1|127.0.0.1|2000|",  # missing opening delimiter
        "|1|127.0.0.1|2000|x",
        "|1|127.0.0.1|2000||",
        "1127.0.0.112000|1",  # a digit may not be the delimiter
        "\x7f1\x7f127.0.0.1\x7f2000\x7f",  # DEL is outside 33..126
        "é1é127.0.0.1é2000é",
        "|1|127.0.0.1!2000|",
    ],
)
def test_parse_eprt_bad(arg: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_eprt(arg)
    assert not isinstance(info.value, UnsupportedProtocol)
    assert info.value.reply().code == 501


# --- bounce protection -------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "peer"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", "::ffff:127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("::1", "0:0:0:0:0:0:0:1"),
        ("FE80::1", "fe80::1%eth0"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_check_active_target_accepts_peer(host: str, peer: str) -> None:
    assert check_active_target(host, 1024, peer) is None
    assert check_active_target(host, 65535, peer) is None


@pytest.mark.parametrize(
    ("host", "peer"),
    [
        ("10.0.0.2", "10.0.0.1"),
        ("127.0.0.2", "127.0.0.1"),
        ("127.0.0.1", "::1"),
        ("::1", "127.0.0.1"),
        ("192.0.2.1", "::ffff:127.0.0.1"),
        ("localhost", "127.0.0.1"),
    ],
)
def test_check_active_target_refuses_foreign_host(host: str, peer: str) -> None:
    with pytest.raises(ForeignAddress) as info:
        check_active_target(host, 2000, peer)
    assert info.value.reply() == replies.FOREIGN_ADDRESS
    assert info.value.reply().code == 501


def test_foreign_host_reported_before_privileged_port() -> None:
    with pytest.raises(ForeignAddress):
        check_active_target("10.0.0.2", 25, "10.0.0.1")


@pytest.mark.parametrize("port", [0, 1, 20, 21, 25, 80, 1023])
def test_check_active_target_refuses_privileged_port(port: int) -> None:
    with pytest.raises(PrivilegedPort) as info:
        check_active_target("127.0.0.1", port, "::ffff:127.0.0.1")
    assert info.value.reply() == replies.PRIVILEGED_PORT
    assert info.value.reply().code == 504


def test_parsed_port_feeds_bounce_check() -> None:
    host, port = parse_port("192,0,2,7,0,25")
    with pytest.raises(ForeignAddress):
        check_active_target(host, port, "::ffff:127.0.0.1")
    with pytest.raises(PrivilegedPort):
        check_active_target(host, port, "192.0.2.7")


# --- PASV reply --------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 0x1234, "127,0,0,1,18,52"),
        ("192.168.1.5", 50000, "192,168,1,5,195,80"),
        ("10.0.0.1", 65535, "10,0,0,1,255,255"),
        ("10.0.0.1", 256, "10,0,0,1,1,0"),
        ("10.0.0.1", 255, "10,0,0,1,0,255"),
        ("::ffff:192.168.1.5", 50000, "192,168,1,5,195,80"),
        ("::ffff:127.0.0.1", 1025, "127,0,0,1,4,1"),
    ],
)
def test_pasv_reply_address(host: str, port: int, text: str) -> None:
    assert pasv_reply_address(host, port) == text


@pytest.mark.parametrize("port", [1024, 1025, 21000, 50000, 65535])
def test_pasv_reply_round_trips_through_parse_port(port: int) -> None:
    assert parse_port(pasv_reply_address("::ffff:203.0.113.9", port)) == ("203.0.113.9", port)


def test_pasv_reply_renders_in_227() -> None:
    wire = replies.PASSIVE(pasv_reply_address("127.0.0.1", 50000)).render()
    assert wire == b"227 Entering Passive Mode (127,0,0,1,195,80).\r\n"


# --- normalize / is_ipv6 / same_host -----------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::FFFF:7F00:1", "127.0.0.1"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("FE80::0001", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%2", "fe80::1"),
        ("FE80::1%eth0", "fe80::1"),
        ("example.com", "example.com"),
        ("", ""),
    ],
)
def test_normalize(host: str, expected: str) -> None:
    assert normalize(host) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("2001:db8::1", True),
    ],
)
def test_is_ipv6(host: str, expected: bool) -> None:
    assert is_ipv6(host) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        ("::1", "0::1", True),
        ("fe80::1%eth0", "fe80::1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1", "::1", False),
    ],
)
def test_same_host(a: str, b: str, expected: bool) -> None:
    assert same_host(a, b) is expected
