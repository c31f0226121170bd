"""Control and passive data connections behind a load balancer's PROXY protocol, in
memory: nothing is said and nothing decided before the header names the client, and
every decision is then made on that client's address, never the balancer's."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage

from tests.harness import LOCAL, Harness, RecordingTransport, Session, held_harness, logged_in
from tests.integration.haproxy import Node, config_text
from twisted_ftpd.config import Options
from twisted_ftpd.control.factory import ImplicitTLSFactory
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.proxy_protocol import (
    Balancers,
    ProxyHeaderReceiver,
    ProxyListeningFactory,
    header_kind,
    listening,
)

BALANCER = "198.51.100.10"
CLIENT = "203.0.113.9"
OTHER = "203.0.113.50"


def v1(client: str = CLIENT, port: int = 40001, dest: str = "198.51.100.1") -> bytes:
    family = "TCP6" if ":" in client else "TCP4"
    return f"PROXY {family} {client} {dest} {port} 21\r\n".encode()


def v2(client: str = CLIENT, port: int = 40001, dest: str = "198.51.100.1",
       local: bool = False) -> bytes:
    addresses = ipaddress.ip_address(client).packed + ipaddress.ip_address(dest).packed
    body = addresses + struct.pack("!HH", port, 21)
    family = 0x11 if len(addresses) == 8 else 0x21
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 if local else 0x21, family])
            + struct.pack("!H", len(body)) + body)


def balanced(h: Harness, **kwargs: Any) -> ProxyListeningFactory:
    return ProxyListeningFactory(h.factory, Balancers([f"{BALANCER}/32"]), h.reactor,
                                 h.config.proxy_header_timeout, **kwargs)


def arrive(factory: Any, sender: str = BALANCER,
           transport_class: type[StringTransport] = StringTransport,
           ) -> tuple[ProxyHeaderReceiver, StringTransport]:
    """A TCP connection from ``sender`` to a PROXY listener (nothing sent yet)."""
    address = IPv6Address if ":" in sender else IPv4Address
    receiver = factory.buildProtocol(address("TCP", sender, 33000))
    transport = transport_class(hostAddress=IPv4Address("TCP", LOCAL, 2121),
                                peerAddress=address("TCP", sender, 33000))
    receiver.makeConnection(transport)
    return receiver, transport


def through(h: Harness, header: bytes | None = None, client: str = CLIENT,
            ) -> tuple[Session, ProxyHeaderReceiver]:
    """A control session that came through the balancer for ``client``."""
    receiver, transport = arrive(balanced(h))
    receiver.dataReceived(header if header is not None else v1(client))
    assert h.protocols and h.protocols[-1].transport is receiver
    return Session(h, h.protocols[-1], transport), receiver


def messages(logged: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(event) for event in logged]


def test_nothing_is_said_or_built_before_the_header(tmp_path: Path) -> None:
    h = Harness(tmp_path, proxy_from=(f"{BALANCER}/32",))
    receiver, transport = arrive(balanced(h))
    receiver.dataReceived(v1()[:10])
    assert transport.value() == b"" and not h.factory.sessions and not h.protocols
    receiver.dataReceived(v1()[10:])
    assert transport.value().startswith(b"220 ")
    assert h.protocols[0].peer_host == CLIENT


IPV6 = "2001:db8::9"


@pytest.mark.parametrize(("header", "client"), [
    (v1(), CLIENT), (v2(), CLIENT), (v1(IPV6, dest="2001:db8::1"), IPV6),
    (v2(IPV6, dest="2001:db8::1"), IPV6)], ids=["v1", "v2", "v1-ipv6", "v2-ipv6"])
def test_the_header_names_the_session_s_client(tmp_path: Path, header: bytes,
                                               client: str) -> None:
    h = Harness(tmp_path)
    with capturedLogs() as logged:
        receiver, transport = arrive(balanced(h))
        for i in range(len(header)):  # a byte at a time: the header may come in pieces
            receiver.dataReceived(header[i:i + 1])
    s = Session(h, h.protocols[0], transport)
    assert s.greeting[0].startswith("220")
    assert s.proto.peer_host == client and receiver.getPeer().host == client
    assert s.proto.local_host == LOCAL  # the node's own address, for passive ports
    connects = [e for e in logged if e.get("ftpd_event") == "connect"]
    assert [e["peer"] for e in connects] == [client]


def test_commands_after_the_header_in_the_same_read_are_served(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    receiver, transport = arrive(balanced(h))
    receiver.dataReceived(v1() + b"USER alice\r\n")
    assert transport.value().split(b"\r\n")[1].startswith(b"331")


@pytest.mark.parametrize("header", [v2(local=True), b"PROXY UNKNOWN\r\n",
                                    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"],
                         ids=["v2-local", "v1-unknown", "v1-unknown-with-addresses"])
def test_a_header_naming_nobody_is_the_balancer_itself(tmp_path: Path, header: bytes) -> None:
    s, _ = through(Harness(tmp_path), header + b"NOOP\r\n")
    assert s.proto.peer_host == BALANCER and s.greeting[0].startswith("220")
    assert s.greeting[1].startswith("200")  # what followed the header is served


def test_per_address_limits_count_the_real_clients(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_connections_per_ip=1)
    first, _ = through(h, client=CLIENT)
    other, _ = through(h, client=OTHER)
    again, _ = through(h, client=CLIENT)
    assert first.greeting[0].startswith("220") and other.greeting[0].startswith("220")
    assert again.greeting[0].startswith("421 Too many connections from your address")
    assert h.factory.limits.count(CLIENT) == 1 and h.factory.limits.count(BALANCER) == 0


def test_bans_and_failed_logins_are_the_real_client_s(tmp_path: Path) -> None:
    h = Harness(tmp_path, ban_after=1)
    s, _ = through(h)
    s.send("USER alice")
    replies = s.send("PASS wrong")
    h.reactor.advance(h.config.login_delay)
    assert (replies + s.take())[-1].startswith("421")
    assert h.factory.limits.bans.banned(CLIENT) and not h.factory.limits.bans.banned(BALANCER)
    banned, _ = through(h)
    assert banned.greeting == ["421 Too many failed logins from your address; try again later."]
    elsewhere, _ = through(h, client=OTHER)
    assert elsewhere.greeting[0].startswith("220")


def test_the_password_queue_is_fair_by_the_real_client_s_address(tmp_path: Path) -> None:
    h, runner = held_harness(tmp_path)
    (checker,) = h.factory.portal.checkers.values()
    checker.queue.workers = 1
    busy = h.connect(peer=OTHER)  # its check holds the one worker
    busy.send("USER alice")
    busy.send("PASS secret")
    s, _ = through(h)
    s.send("USER alice")
    s.send("PASS secret")
    runner.run_calls_of(checker._look_up)  # the users.db reads, before the queue
    assert checker.queue.waiting_from(CLIENT) == 1
    assert checker.queue.waiting_from(BALANCER) == 0
    runner.flush()
    assert busy.take()[-1].startswith("230") and s.take()[-1].startswith("230")


def test_a_balancer_that_sends_no_header_is_dropped_after_the_timeout(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    receiver, transport = arrive(balanced(h))
    with capturedLogs() as logged:
        h.reactor.advance(h.config.proxy_header_timeout - 0.1)
        assert not transport.disconnecting
        h.reactor.advance(0.1)
    assert transport.disconnecting and transport.value() == b"" and not h.protocols
    assert any("sent no PROXY header within 5 s" in m and BALANCER in m
               for m in messages(logged))
    assert not h.reactor.getDelayedCalls()


def test_a_health_check_that_closes_at_once_is_neither_logged_nor_a_session(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    receiver, transport = arrive(balanced(h))
    with capturedLogs() as logged:
        receiver.connectionLost(None)
    assert logged == [] and not h.protocols and not h.reactor.getDelayedCalls()


@pytest.mark.parametrize("first", [b"USER alice\r\n", b"PROXY TCP4 not-an-ip 198.51.100.1 1 21\r\n",
                                   b"PROXY TCP4 203.0.113.9\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x99"
                                   + b"\x11\x00\x0c" + bytes(12)],
                         ids=["ftp", "bad-address", "short", "bad-version"])
def test_a_balancer_without_a_valid_header_is_dropped(tmp_path: Path, first: bytes) -> None:
    h = Harness(tmp_path)
    receiver, transport = arrive(balanced(h))
    with capturedLogs() as logged:
        receiver.dataReceived(first)
    assert transport.disconnecting and transport.value() == b"" and not h.protocols
    assert any(f"from the balancer {BALANCER}" in m for m in messages(logged))
    assert not h.reactor.getDelayedCalls()


def test_anyone_else_is_served_directly_under_its_own_address(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    receiver, transport = arrive(balanced(h), sender=OTHER)
    s = Session(h, h.protocols[0], transport)
    assert s.greeting[0].startswith("220") and s.proto.peer_host == OTHER
    receiver.dataReceived(b"PRO")  # could still be a header's start: held
    assert s.take() == []
    receiver.dataReceived(b"T P\r\nUSER alice\r\n")  # served as ever
    assert [line[:3] for line in s.take()] == ["503", "331"]  # PROT before AUTH; USER


@pytest.mark.parametrize("header", [v1(), v2()], ids=["v1", "v2"])
def test_a_header_from_anyone_else_is_a_forgery_and_drops_it(tmp_path: Path,
                                                            header: bytes) -> None:
    h = Harness(tmp_path)
    receiver, transport = arrive(balanced(h), sender=OTHER)
    transport.clear()  # its banner: it is served as a direct client until it forges
    with capturedLogs() as logged:
        receiver.dataReceived(header + b"USER alice\r\n")
    assert transport.disconnecting and transport.value() == b""
    assert h.protocols[0].peer_host == OTHER
    assert any(OTHER in m and "not one of the balancers" in m for m in messages(logged))


def test_header_kinds() -> None:
    assert [header_kind(b) for b in (b"", b"PROX", b"PROXY ", b"PROT", b"\r\n\r", v2()[:12],
                                     b"\r\n\r\n\x00\r\nQUIZ")] == [
        None, None, "v1", "", None, "v2", ""]


def test_implicit_ftps_starts_tls_after_the_header(tmp_path: Path, pem: str) -> None:
    """The header is plain bytes ahead of TLS (HAProxy's send-proxy); TLS starts only
    once it is read, and whatever followed it goes through the TLS layer."""
    h = Harness(tmp_path, tls_cert=pem)

    class Layer:  # what startTLS puts between a socket and its protocol
        def __init__(self) -> None:
            self.received: list[bytes] = []

        def dataReceived(self, data: bytes) -> None:  # noqa: N802
            self.received.append(data)

    class Socket(RecordingTransport):
        protocol: Any = None

        def startTLS(self, contextFactory: object, normal: bool = True) -> None:  # noqa: N802
            super().startTLS(contextFactory, normal)
            self.protocol = Layer()

    factory = ProxyListeningFactory(ImplicitTLSFactory(h.factory), Balancers([BALANCER]),
                                    h.reactor)
    receiver, transport = arrive(factory, transport_class=Socket)
    assert isinstance(transport, Socket)
    transport.protocol = receiver
    assert transport.tls_starts == []
    receiver.dataReceived(v1() + b"\x16\x03\x01client-hello")
    assert len(transport.tls_starts) == 1
    assert transport.protocol.received == [b"\x16\x03\x01client-hello"]
    assert h.protocols[0].peer_host == CLIENT
    receiver.handshakeCompleted()  # the TLS layer below tells us; the session must hear it
    assert h.protocols[0].tls.secure and h.protocols[0].tls.deadline is None


# -- data connections -------------------------------------------------------------------------


def proxied_login(tmp_path: Path, **options: Any) -> tuple[Harness, Session]:
    h = Harness(tmp_path, proxy_from=(f"{BALANCER}/32",), masquerade_address="198.51.100.1",
                **options)
    s, _ = through(h)
    s.login()
    return h, s


def data_from(s: Session, sender: str) -> tuple[Any, StringTransport]:
    _, factory, _, _ = s.harness.reactor.tcpServers[-1]
    proto = factory.buildProtocol(IPv4Address("TCP", sender, 50000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", sender, 50000))
    if proto is not None:
        proto.makeConnection(transport)
    return proto, transport


def test_pasv_listens_here_and_announces_the_balancer(tmp_path: Path) -> None:
    h, s = proxied_login(tmp_path, passive_ports=(50000, 50000))
    assert s.send("PASV") == ["227 Entering Passive Mode (198,51,100,1,195,80)."]
    port, _, _, interface = h.reactor.tcpServers[-1]
    assert (port, interface) == (50000, LOCAL)


def test_passive_data_through_the_balancer_carries_the_client_s_header(tmp_path: Path) -> None:
    h, s = proxied_login(tmp_path)
    h.put("f.txt", b"hello")
    s.pasv()
    assert s.send("RETR f.txt")[0].startswith("150")
    receiver, transport = data_from(s, BALANCER)
    assert isinstance(receiver, ProxyHeaderReceiver) and transport.value() == b""
    receiver.dataReceived(v2())
    assert transport.value() == b"hello"
    assert isinstance(receiver.wrappedProtocol, DataProtocol)
    receiver.wrappedProtocol.connectionLost()
    assert s.take() == ["226 Transfer complete."]


def test_a_data_header_naming_someone_else_is_refused_and_the_port_waits(tmp_path: Path) -> None:
    h, s = proxied_login(tmp_path)
    h.put("f.txt", b"hello")
    s.pasv()
    s.send("RETR f.txt")
    thief, thief_transport = data_from(s, BALANCER)
    with capturedLogs() as logged:
        thief.dataReceived(v1(OTHER))
    assert thief_transport.disconnecting and thief_transport.value() == b""
    assert any(OTHER in m and "control peer is " + CLIENT in m for m in messages(logged))
    receiver, transport = data_from(s, BALANCER)
    receiver.dataReceived(v1())
    assert transport.value() == b"hello"
    receiver.wrappedProtocol.connectionLost()
    assert s.take() == ["226 Transfer complete."]


def test_a_data_connection_from_the_balancer_without_header_times_out(tmp_path: Path) -> None:
    h, s = proxied_login(tmp_path, data_timeout=30.0)
    s.pasv()
    _, transport = data_from(s, BALANCER)
    h.reactor.advance(h.config.proxy_header_timeout)
    assert transport.disconnecting
    h.reactor.advance(30.0)
    assert s.send("LIST")[0].startswith("425")


def test_tls_mode_refuses_clear_data_from_the_balancer(tmp_path: Path, pem: str) -> None:
    h, s = proxied_login(tmp_path, tls_cert=pem, proxy_data="tls")
    s.pasv()
    with capturedLogs() as logged:
        proto, _ = data_from(s, BALANCER)
    assert proto is None
    assert s.send("LIST") == ["425 Can't open data connection: through the balancer, data "
                              "connections need TLS (PROT P)."]
    assert any("only a TLS data connection" in m for m in messages(logged))


def test_tls_mode_takes_the_balancer_s_tls_connection_for_the_client_s(tmp_path: Path,
                                                                       pem: str) -> None:
    h = Harness(tmp_path, proxy_from=(BALANCER,), tls_cert=pem, proxy_data="tls")
    receiver, transport = arrive(balanced(h), transport_class=RecordingTransport)
    receiver.dataReceived(v1())
    s = Session(h, h.protocols[0], transport)
    s.send("AUTH TLS")
    s.proto.handshakeCompleted()
    s.login()
    s.codes("PBSZ 0", "PROT P")
    s.pasv()
    s.data_transport = RecordingTransport
    proto, data_transport = s.open_passive(peer=BALANCER)
    assert isinstance(proto, DataProtocol)
    assert isinstance(data_transport, RecordingTransport)
    assert data_transport.tls_starts == [(s.proto.tls.options, True)]


def test_port_goes_to_the_real_client_only(tmp_path: Path) -> None:
    _, s = proxied_login(tmp_path)
    assert s.codes("PORT 203,0,113,9,200,10") == [200]
    assert s.codes("PORT 198,51,100,10,200,10") == [501]


def test_a_direct_session_keeps_direct_data(tmp_path: Path) -> None:
    """A client served around the balancer connects its data directly too."""
    h, s = logged_in(tmp_path, peer=OTHER, proxy_from=(BALANCER,))
    h.put("f.txt", b"hi")
    s.pasv()
    s.send("RETR f.txt")
    proto, transport = data_from(s, OTHER)
    assert isinstance(proto, DataProtocol) and transport.value() == b"hi"
    proto.connectionLost()
    assert s.take() == ["226 Transfer complete."]


# -- options ------------------------------------------------------------------------------------


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_proxy_options() -> None:
    config = parse("--listen", "haproxy:tcp:2121", "--proxy-from", "10.0.0.7",
                   "--proxy-from", "192.0.2.0/24").to_config()
    assert config.proxy_from == ("10.0.0.7/32", "192.0.2.0/24")
    assert config.proxy_data == "header"
    assert parse().to_config().proxy_from == ()
    alternatives, factory = listening(["haproxy:tcp:2121"], object(), config, None)
    assert alternatives == ["tcp:2121"] and isinstance(factory, ProxyListeningFactory)
    assert factory.balancers.trusts("::ffff:10.0.0.7")
    plain = object()
    assert listening(["tcp:21"], plain, config, None) == (["tcp:21"], plain)


@pytest.mark.parametrize(("args", "message"), [
    (["--listen", "haproxy:tcp:21"], "needs --proxy-from"),
    (["--proxy-from", "10.0.0.7"], "--proxy-from needs a PROXY listener"),
    (["--listen", "haproxy:tcp:21", "--proxy-from", "10.0.0.300"], "not an IP address"),
    (["--listen", "haproxy:haproxy:tcp:21"], "one PROXY layer is enough"),
    (["--listen", "haproxy:ssl:990"], "'haproxy:ssl:990': FTP is served on tcp:"),
    (["--listen", "haproxy:tcp:21", "--proxy-from", "10.0.0.7", "--proxy-data", "tls"],
     "--proxy-data tls needs --tls-cert"),
    (["--listen", "haproxy:tcp:21", "--proxy-from", "10.0.0.7", "--proxy-data", "both"],
     "expected one of header, tls"),
])
def test_proxy_option_errors(args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


def test_tls_mode_needs_session_reuse(pem: str) -> None:
    with pytest.raises(usage.UsageError, match="cannot be combined with --no-tls-session"):
        parse("--listen", "haproxy:tcp:21", "--proxy-from", "10.0.0.7", "--tls-cert", pem,
              "--proxy-data", "tls", "--no-tls-session-reuse")


def test_the_config_file_takes_the_balancers(tmp_path: Path) -> None:
    path = tmp_path / "ftpd.toml"
    path.write_text('listen = ["haproxy:tcp:2121"]\nproxy-from = ["10.0.0.7", "10.1.0.0/16"]\n'
                    'proxy-data = "header"\n')
    config = parse("--config", str(path)).to_config()
    assert config.proxy_from == ("10.0.0.7/32", "10.1.0.0/16")
    assert config.listen == ("haproxy:tcp:2121",)


def test_the_readme_shows_the_haproxy_configurations_the_tests_run() -> None:
    """The README's HAProxy configurations are config_text's, for its example addresses."""
    single = config_text("203.0.113.5:21", [Node("n1", "10.0.0.2", 2121, (50000, 50099))],
                         {"n1": ["203.0.113.5:50000-50099"]}, "send-proxy-v2", "send-proxy-v2")
    multi = config_text("127.0.0.1:2121", [Node("a", "127.0.0.2", 2121, (50000, 50009)),
                                           Node("b", "127.0.0.3", 2121, (50010, 50019))],
                        {"a": ["127.0.0.1:50000-50009"], "b": ["127.0.0.1:50010-50019"]},
                        "send-proxy-v2", "send-proxy-v2")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for text in (single, multi):
        assert "".join(f"    {line}\n" if line else "\n" for line in text.splitlines()) in readme
