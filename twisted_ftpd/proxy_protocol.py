# -*- test-case-name: tests.test_proxy_protocol -*-
"""Clients behind a load balancer: HAProxy's PROXY protocol, v1 and v2, on control
connections (``--listen haproxy:tcp:21``) and on passive data connections.

Only the balancers (``--proxy-from``) may say who the client is. A connection from
one of them must start with a PROXY header, and nothing of it reaches the FTP
protocol before the header is read: the session is built for the real client's
address, so its banner, limits, bans, logs and data-connection checks all see
that address and never the balancer's. Anyone else on a PROXY listener is served
directly, under its own address, as on a plain listener; a PROXY header from it
is a forgery and ends the connection.

Twisted's own wrapper (``twisted.protocols.haproxy.proxyEndpoint``) is not used
as it stands: it believes every sender, drops a header split over two reads,
and cannot tell the protocol behind it when the header has been read, so that
protocol's ``connectionMade`` sees the balancer's address (twisted#12501). Its
v1 and v2 parsers are what this module reads headers with.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IHandshakeListener, IProtocol, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.haproxy import _info
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin, WrappingFactory
from zope.interface import directlyProvides, implementer, providedBy

from twisted_ftpd import listen
from twisted_ftpd.protocol.addresses import normalize
from twisted_ftpd.protocol.errors import DataConnectionError

log = Logger()

#: Seconds a balancer has to send its header; HAProxy sends it at once.
HEADER_TIMEOUT = 5.0
#: ``--proxy-data``: passive data connections from a balancer carry a PROXY header
#: too, or ("tls") carry none and are proven by resuming the login's TLS session.
DATA_MODES = ("header", "tls")

_V1_SIGNATURE = V1Parser.PROXYSTR + b" "
_V2_SIGNATURE = V2Parser.PREFIX


def parse_network(text: str) -> str:
    """``--proxy-from``: a balancer's address or network, in canonical form."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network (CIDR)") from None


def parse_data_mode(text: str) -> str:
    if text not in DATA_MODES:
        raise ValueError(f"expected one of {', '.join(DATA_MODES)}, got {text!r}")
    return text


def check_options(options: Any) -> None:
    """The PROXY options make sense together (ValueError otherwise)."""
    descriptions = [*options["listen"], *options["implicit-tls-listen"]]
    proxied = [d for d in descriptions if listen.behind_proxy(d)[1]]
    if proxied and not options["proxy-from"]:
        raise ValueError(f"{proxied[0]!r} needs --proxy-from: the balancers' addresses, "
                         "the only ones whose PROXY headers are believed")
    if options["proxy-from"] and not proxied:
        raise ValueError("--proxy-from needs a PROXY listener: --listen "
                         f"{listen.PROXY_PREFIX}:tcp:PORT")
    if options["proxy-data"] == "tls":
        if options["tls-cert"] is None or not options["proxy-from"]:
            raise ValueError("--proxy-data tls needs --tls-cert and --proxy-from")
        if options["no-tls-session-reuse"]:
            raise ValueError("--proxy-data tls relies on TLS session reuse: it cannot be "
                             "combined with --no-tls-session-reuse")


class Balancers:
    """The addresses whose PROXY headers are believed."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(normalize(host))
        except ValueError:
            return False  # not an IP connection (a UNIX socket): nobody to trust
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=8)
def _balancers(networks: tuple[str, ...]) -> Balancers:
    return Balancers(networks)


def header_kind(data: bytes) -> str | None:
    """``"v1"``/``"v2"`` when ``data`` starts with a PROXY header's signature, ``""``
    when it cannot be one, None while it is too short to tell."""
    for kind, signature in (("v1", _V1_SIGNATURE), ("v2", _V2_SIGNATURE)):
        shown = data[:len(signature)]
        if signature.startswith(shown):
            return kind if len(shown) == len(signature) else None
    return ""


def _client_address(info: Any, balancer: IAddress) -> IAddress:
    """The client a parsed header names; the balancer itself for headers that name
    nobody (v2 LOCAL, as in health checks; v1 UNKNOWN; UNIX sockets)."""
    source = getattr(info, "source", None)
    host = getattr(source, "host", None)
    if host is None:
        return balancer
    try:
        address = ipaddress.ip_address(host)  # the v1 parser takes any text as an address
    except ValueError:
        raise InvalidProxyHeader() from None
    kind = IPv4Address if address.version == 4 else IPv6Address
    return kind("TCP", str(address), source.port)


def _feed(parser: V1Parser | V2Parser, data: bytes) -> tuple[Any, bytes | None]:
    """``parser.feed``, and a v1 ``PROXY UNKNOWN`` header (the spec allows nothing or
    anything after the word), which Twisted's parser refuses unless text follows."""
    if isinstance(parser, V1Parser):
        line, crlf, rest = (parser.buffer + data).partition(V1Parser.NEWLINE)
        if crlf and line.split(b" ")[1:2] == [V1Parser.UNKNOWN_PROTO] and len(line) <= 107:
            parser.buffer = b""
            return _info.ProxyInfo(line, None, None), rest
    return parser.feed(data)


@implementer(IHandshakeListener)
class ProxyHeaderReceiver(ProtocolWrapper, TimeoutMixin):
    """Stands between one accepted connection and the protocol that serves it.

    From a balancer it reads the PROXY header, then calls ``connect`` with the
    client's address and makes the protocol it returns (None: drop the connection)
    the one that gets everything after the header. From anyone else ``connect``
    gets the connection's own address at once, and only the first bytes are
    watched for a forged header. As the protocol's transport, ``getPeer`` is the
    client, and ``getHost`` stays this machine's own address (where passive ports
    listen and active connections start), not the balancer's the header names.
    """

    def __init__(self, factory: Any, connect: Callable[[IAddress], IProtocol | None],
                 balancers: Balancers, clock: IReactorTime, timeout: float,
                 what: str) -> None:
        super().__init__(factory, None)  # type: ignore[arg-type]
        self._connect = connect
        self._balancers = balancers
        self._header_timeout = timeout
        self.callLater = clock.callLater  # TimeoutMixin's timer source
        self._what = what  # "control connection", for the log
        self._parser: V1Parser | V2Parser | None = None
        self._buffer = b""
        self._reading_header = False  # from a balancer, until its header is read
        self._sniffing = False  # from anyone else, until the first bytes rule a header out
        self.client: IAddress | None = None

    def logPrefix(self) -> str:  # noqa: N802 - Twisted interface name
        return "ProxyHeaderReceiver"

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        # As ProtocolWrapper's, less connecting the protocol: there is none yet.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)

    def connectionMade(self) -> None:  # noqa: N802
        peer = self.transport.getPeer()
        if self._balancers.trusts(peer.host):
            self._reading_header = True
            self.setTimeout(self._header_timeout)
        else:
            self._sniffing = True
            self._start(peer)

    @property
    def bufferSize(self) -> int:  # noqa: N802 - the transport attribute data connections set
        return self.transport.bufferSize

    @bufferSize.setter
    def bufferSize(self, size: int) -> None:  # noqa: N802
        self.transport.bufferSize = size

    def handshakeCompleted(self) -> None:  # noqa: N802
        # startTLS puts the TLS layer below us: its news is for the protocol above.
        if IHandshakeListener.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.handshakeCompleted()

    def getPeer(self) -> IAddress:  # noqa: N802
        return self.client if self.client is not None else self.transport.getPeer()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._reading_header:
            self._read_header(data)
        elif self._sniffing:
            self._sniff(data)
        elif self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(data)

    def _read_header(self, data: bytes) -> None:
        if self._parser is None:
            self._buffer += data
            kind = header_kind(self._buffer)
            # The v2 parser wants the fixed part (16 bytes) whole.
            if kind is None or (kind == "v2" and len(self._buffer) < 16):
                return
            if not kind:
                self._drop("sent no PROXY header", self._buffer)
                return
            self._parser = V1Parser() if kind == "v1" else V2Parser()
            data, self._buffer = self._buffer, b""
        try:
            info, rest = _feed(self._parser, data)
            if info is None:
                return
            client = _client_address(info, self.transport.getPeer())
        except (InvalidProxyHeader, ValueError):
            self._drop("sent an invalid PROXY header")
            return
        self._reading_header = False
        self.setTimeout(None)
        self.client = client
        self._start(client)
        if rest and self.wrappedProtocol is not None:
            self._pass_on(rest)

    def _sniff(self, data: bytes) -> None:
        self._buffer += data
        kind = header_kind(self._buffer)
        if kind is None:
            return
        if kind:
            log.warn("Dropped a {what} from {peer}: it sent a PROXY header, but is not "
                     "one of the balancers (--proxy-from)", what=self._what,
                     peer=normalize(self.transport.getPeer().host))
            self.transport.abortConnection()
            return
        self._sniffing = False
        early, self._buffer = self._buffer, b""
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(early)

    def _start(self, client: IAddress) -> None:
        protocol = self._connect(client)
        if protocol is None:
            self.transport.loseConnection()
            return
        self.wrappedProtocol = protocol
        protocol.makeConnection(self)

    def _pass_on(self, rest: bytes) -> None:
        # The protocol may have started TLS on connecting (implicit FTPS, PROT P data):
        # the bytes after the header are then TLS records, and go through that layer,
        # which startTLS put between the socket and us as the socket's protocol.
        layer = getattr(self.transport, "protocol", self)
        (layer if layer is not None else self).dataReceived(rest)

    def _drop(self, why: str, start: bytes = b"") -> None:
        self._reading_header = False
        self.setTimeout(None)
        log.warn("Dropped a {what} from the balancer {peer}: it {why}{start}",
                 what=self._what, peer=normalize(self.transport.getPeer().host), why=why,
                 start=f" (it began {start[:16]!r})" if start else "")
        self.transport.abortConnection()

    def timeoutConnection(self) -> None:  # noqa: N802
        self._drop(f"sent no PROXY header within {self._header_timeout:g} s")

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.setTimeout(None)
        protocol, self.wrappedProtocol = self.wrappedProtocol, None
        if protocol is not None:
            protocol.connectionLost(reason)


class ProxyListeningFactory(WrappingFactory):
    """What a ``haproxy:`` listener listens with: every connection first meets a
    ProxyHeaderReceiver, and the server's own factory builds its session only once
    the client's address is known."""

    noisy = False

    def __init__(self, wrapped: ServerFactory, balancers: Balancers, clock: IReactorTime,
                 timeout: float = HEADER_TIMEOUT) -> None:
        super().__init__(wrapped)
        self.balancers, self.clock, self.timeout = balancers, clock, timeout

    def buildProtocol(self, addr: IAddress) -> ProxyHeaderReceiver:  # noqa: N802
        return ProxyHeaderReceiver(self, self.wrappedFactory.buildProtocol, self.balancers,
                                   self.clock, self.timeout, "control connection")


class PassiveProxy:
    """How a passive listener treats connections from a balancer (``--proxy-data``)."""

    def __init__(self, balancers: Balancers, mode: str, clock: IReactorTime,
                 timeout: float = HEADER_TIMEOUT) -> None:
        self.balancers, self.mode, self.clock, self.timeout = balancers, mode, clock, timeout

    def data_protocol(self, addr: IAddress, accept: Callable[[IAddress], Any],
                      fail: Callable[[Exception], None], tls: Any,
                      peer_host: str) -> IProtocol | None:
        """The protocol for a connection to a passive port: ``accept`` checks the
        address (the control peer's or nobody's) and claims the port; ``fail`` ends
        the set-up; ``tls`` is the data connection's DataTLS (None for PROT C)."""
        host = getattr(addr, "host", "")
        if not self.balancers.trusts(host):
            return accept(addr)
        if self.mode == "header":
            return ProxyHeaderReceiver(None, accept, self.balancers, self.clock,
                                       self.timeout, "passive data connection")
        if tls is None or not tls.require_reuse:
            log.warn("Refused a passive data connection from the balancer {balancer}: "
                     "without a PROXY header, only a TLS data connection (PROT P) that "
                     "resumes the login's TLS session is known to be the client's",
                     balancer=normalize(host))
            fail(DataConnectionError("through the balancer, data connections need TLS "
                                     "(PROT P)."))
            return None
        # The balancer speaks for the control peer here; the TLS handshake must then
        # resume this login's own session (DataProtocol refuses it otherwise), which
        # nobody else can.
        kind = IPv6Address if ":" in peer_host else IPv4Address
        return accept(kind("TCP", peer_host, getattr(addr, "port", 0)))


def passive_proxy(config: Any, clock: IReactorTime) -> PassiveProxy | None:
    """The server's PassiveProxy, or None without ``--proxy-from``."""
    if not config.proxy_from:
        return None
    return PassiveProxy(_balancers(tuple(config.proxy_from)), config.proxy_data, clock,
                        config.proxy_header_timeout)


def listening(alternatives: Sequence[str], factory: ServerFactory, config: Any,
              clock: IReactorTime) -> tuple[list[str], ServerFactory]:
    """What ``listen.listen`` gets for one listening socket: ``haproxy:`` descriptions
    lose their prefix, and their factory is put behind the PROXY layer."""
    split = [listen.behind_proxy(description) for description in alternatives]
    if not any(proxied for _, proxied in split):
        return list(alternatives), factory
    return [inner for inner, _ in split], ProxyListeningFactory(
        factory, _balancers(tuple(config.proxy_from)), clock, config.proxy_header_timeout)
