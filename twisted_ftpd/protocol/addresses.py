# -*- test-case-name: tests.test_protocol_addresses -*-
"""Data-connection addresses: PORT/EPRT parsing, PASV/EPSV replies, bounce checks.

A data connection must belong to the control connection's peer: an active
connection to any other host (the FTP bounce attack, RFC 2577) or to a
privileged port is refused. IPv4-mapped IPv6 addresses (what a dual-stack
listener reports for IPv4 clients) compare equal to their IPv4 form. The errors
raised here (``AddressError`` and its subclasses) are in ``protocol.errors``.
"""

from __future__ import annotations

import functools
import ipaddress

from twisted_ftpd.protocol.errors import (
    AddressError,
    ForeignAddress,
    PrivilegedPort,
    UnsupportedProtocol,
)


# Remembered: every session event and limit check asks again about the same few peers.
@functools.lru_cache(maxsize=4096)
def normalize(host: str) -> str:
    """Canonical text of an IP address; IPv4-mapped IPv6 becomes plain IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def is_ipv6(host: str) -> bool:
    return ":" in normalize(host)


def parse_port(arg: str) -> tuple[str, int]:
    """``h1,h2,h3,h4,p1,p2`` → (host, port) (RFC 959)."""
    parts = arg.strip().split(",")
    if len(parts) != 6:
        raise AddressError()
    fields = [p.strip() for p in parts]
    if not all(f.isascii() and f.isdigit() and len(f) <= 3 for f in fields):
        raise AddressError()
    numbers = [int(f) for f in fields]
    if any(not 0 <= n <= 255 for n in numbers):
        raise AddressError()
    host = ".".join(str(n) for n in numbers[:4])
    return host, numbers[4] * 256 + numbers[5]


def parse_eprt(arg: str) -> tuple[str, int]:
    """``|1|132.235.1.2|6275|`` or ``|2|::1|6275|`` → (host, port) (RFC 2428)."""
    arg = arg.strip()
    if len(arg) < 5:
        raise AddressError()
    delim = arg[0]
    if not 33 <= ord(delim) <= 126 or delim.isdigit():
        raise AddressError()
    parts = arg.split(delim)
    if len(parts) != 5 or parts[0] or parts[4]:
        raise AddressError()
    proto, host, port_text = parts[1:4]
    if proto not in ("1", "2"):
        raise UnsupportedProtocol()
    if not (port_text.isascii() and port_text.isdigit()):
        raise AddressError()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise AddressError() from None
    port = int(port_text)
    if (proto == "1") != (address.version == 4) or not 0 < port < 65536:
        raise AddressError()
    return str(address), port


def check_active_target(host: str, port: int, peer_host: str) -> None:
    """Refuse active connections anywhere but the control peer's unprivileged ports."""
    if normalize(host) != normalize(peer_host):
        raise ForeignAddress()
    if port < 1024:
        raise PrivilegedPort()


def pasv_reply_address(host: str, port: int) -> str:
    """The ``h1,h2,h3,h4,p1,p2`` text of a 227 reply."""
    return ",".join([*normalize(host).split("."), str(port >> 8), str(port & 0xFF)])


def same_host(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)
