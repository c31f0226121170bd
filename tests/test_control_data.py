"""Data-connection set-up over the control channel: PASV, EPSV, PORT, EPRT, timeouts,
and the transfer parameters TYPE, MODE, STRU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure

from tests.harness import LOCAL, PEER, close, logged_in
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.control.cmd_data import passive_candidates
from twisted_ftpd.data.passive_range import PORT_WAIT

PASV_REPLY = re.compile(r"^227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)\.$")


def pasv_address(reply: str) -> tuple[str, int]:
    m = PASV_REPLY.match(reply)
    assert m, reply
    n = [int(x) for x in m.groups()]
    return ".".join(map(str, n[:4])), n[4] * 256 + n[5]


# -- PASV / EPSV -------------------------------------------------------------------------


def test_pasv_listens_on_the_control_connection_address(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, passive_ports=(50000, 50000))
    reply = s.send("PASV")
    assert len(reply) == 1
    _, port = pasv_address(reply[0])
    listen_port, _, _, interface = h.reactor.tcpServers[-1]
    assert (port, listen_port, interface) == (50000, 50000, LOCAL)


def test_pasv_uses_a_port_from_the_configured_range(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, passive_ports=(50010, 50012))
    for _ in range(5):
        _, port = pasv_address(s.send("PASV")[0])
        assert 50010 <= port <= 50012
        assert h.reactor.tcpServers[-1][0] == port


def test_masquerade_address_in_227(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path, masquerade_address="203.0.113.5", passive_ports=(50000, 50000))
    reply = s.send("PASV")
    assert reply == ["227 Entering Passive Mode (203,0,113,5,195,80)."]
    assert pasv_address(reply[0]) == ("203.0.113.5", 50000)


def test_epsv_reply(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, passive_ports=(50001, 50001))
    assert s.send("EPSV") == ["229 Entering Extended Passive Mode (|||50001|)."]
    assert s.send("EPSV 1") == ["229 Entering Extended Passive Mode (|||50001|)."]
    assert h.reactor.tcpServers[-1][3] == LOCAL


def test_epsv_2_on_ipv4_is_522(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("EPSV 2") == ["522 Network protocol not supported, use (1,2)."]


@pytest.mark.parametrize(("command", "code"), [("EPSV 3", 522), ("EPSV foo", 501)],
                         ids=["unknown protocol", "garbage"])
def test_epsv_refuses_an_unknown_protocol_and_garbage(tmp_path: Path, command: str,
                                                      code: int) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes(command) == [code]


def test_epsv_all_locks_out_other_setups(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.send("EPSV ALL") == ["200 EPSV ALL accepted."]
    assert s.codes("PASV", "PORT 192,0,2,7,4,1", "EPRT |1|192.0.2.7|5000|") == [503] * 3
    assert h.reactor.tcpServers == [] and s.proto.data.pending is None
    assert s.codes("EPSV") == [229]
    h.put("f", b"epsv")
    assert s.codes("RETR f") == [150]
    proto, transport = s.open_passive()
    assert transport.value() == b"epsv"
    assert s.finish(proto) == ["226 Transfer complete."]


def test_pasv_on_ipv6_is_425_and_epsv_works(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, peer="2001:db8::7", local="2001:db8::1")
    assert s.send("PASV") == ["425 PASV is IPv4 only; use EPSV on this connection."]
    assert h.reactor.tcpServers == []
    assert s.codes("EPSV", "EPSV 2", "EPSV 1") == [229, 229, 522]
    assert h.reactor.tcpServers[-1][3] == "2001:db8::1"
    h.put("f", b"over v6")
    assert s.codes("RETR f") == [150]
    proto, transport = s.open_passive(peer="2001:db8::7")
    assert proto is not None and transport.value() == b"over v6"
    assert s.finish(proto) == ["226 Transfer complete."]


def test_ipv4_mapped_control_connection_is_ipv4(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, peer="::ffff:192.0.2.7", local="::ffff:192.0.2.1")
    assert s.codes("PASV") == [227]
    assert h.reactor.tcpServers[-1][3] == "192.0.2.1"
    assert s.codes("EPSV 2", "EPSV 1") == [522, 229]
    assert s.codes("PORT 192,0,2,7,4,1", "EPRT |1|192.0.2.7|5000|") == [200, 200]


def test_passive_connection_from_another_host_is_refused(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"mine")
    s.pasv()
    stranger, _ = s.open_passive(peer="198.51.100.9")
    assert stranger is None
    assert s.codes("RETR f") == [150]
    stranger, _ = s.open_passive(peer="198.51.100.9")
    assert stranger is None
    proto, transport = s.open_passive()
    assert proto is not None
    assert transport.value() == b"mine"
    assert s.finish(proto) == ["226 Transfer complete."]


def test_passive_port_accepts_only_one_connection(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    s.pasv()
    first, _ = s.open_passive()
    second, _ = s.open_passive()
    assert first is not None and second is None


def test_new_pasv_replaces_the_previous_listener(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    s.pasv()
    old_factory = h.reactor.tcpServers[-1][1]
    s.pasv()
    assert old_factory.buildProtocol(IPv4Address("TCP", PEER, 1)) is None
    assert s.codes("RETR f") == [150]
    proto, transport = s.open_passive()
    assert transport.value() == b"data"
    close(proto)


def test_pasv_without_connection_times_out(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    s.pasv()
    h.reactor.advance(h.config.data_timeout)
    reply = s.send("RETR f")
    assert reply[-1].startswith("425 "), reply
    assert [r[:3] for r in reply] in (["425"], ["150", "425"])
    assert s.codes("NOOP") == [200]
    assert s.proto.data.transfer is None and s.proto.data.pending is None


def test_retr_waiting_for_a_passive_connection_times_out(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    s.pasv()
    assert s.codes("RETR f") == [150]
    h.reactor.advance(h.config.data_timeout)
    reply = s.take()
    assert len(reply) == 1 and reply[0].startswith("425 ")
    assert s.codes("NOOP") == [200]
    late, _ = s.open_passive()
    assert late is None


# -- PORT / EPRT -------------------------------------------------------------------------


def test_port_to_the_control_peer_connects_on_retr(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"active data")
    assert s.send("PORT 192,0,2,7,4,1") == ["200 Active data connection established."]
    assert h.reactor.tcpClients == []  # dialled only when a transfer needs it
    assert s.codes("RETR f") == [150]
    host, port, _, timeout, bind = h.reactor.tcpClients[-1]
    assert (host, port) == ("192.0.2.7", 1025)
    assert timeout == h.config.data_timeout
    assert bind == (LOCAL, 0)
    proto, transport = s.open_active()
    assert transport.value() == b"active data"
    assert s.finish(proto) == ["226 Transfer complete."]


def test_eprt_to_the_control_peer(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.send("EPRT |1|192.0.2.7|6000|") == ["200 Active data connection established."]
    assert s.codes("RETR f") == [150]
    assert h.reactor.tcpClients[-1][:2] == ("192.0.2.7", 6000)


def test_eprt_ipv6(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, peer="2001:db8::7", local="2001:db8::1")
    h.put("f", b"x")
    assert s.codes("EPRT |2|2001:db8::7|6000|", "RETR f") == [200, 150]
    host, port, _, _, bind = h.reactor.tcpClients[-1]
    assert (host, port, bind) == ("2001:db8::7", 6000, ("2001:db8::1", 0))


@pytest.mark.parametrize("line", ["PORT 192,0,2,8,4,1", "PORT 10,0,0,1,200,200",
                                  "EPRT |1|198.51.100.1|5000|", "EPRT |2|::1|5000|"])
def test_active_connection_to_another_host_is_501(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    assert s.send(line) == ["501 Data connection to a foreign address refused."]
    assert s.proto.data.pending is None
    h.put("f", b"x")
    assert s.codes("RETR f") == [425]
    assert h.reactor.tcpClients == []


@pytest.mark.parametrize("line", ["PORT 192,0,2,7,0,21", "PORT 192,0,2,7,3,255",
                                  "EPRT |1|192.0.2.7|22|"])
def test_active_connection_to_a_privileged_port_is_504(tmp_path: Path, line: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.send(line) == ["504 Data connection to a privileged port refused."]
    assert s.proto.data.pending is None


def test_active_port_1024_is_allowed(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes("PORT 192,0,2,7,4,0") == [200]


@pytest.mark.parametrize("line", ["PORT 192,0,2,7,4", "PORT 192,0,2,7,4,1,1",
                                  "PORT a,b,c,d,e,f", "PORT 192,0,2,7,256,1",
                                  "PORT 192,0,2,-7,4,1", "PORT 192.0.2.7:1025",
                                  "EPRT 192.0.2.7", "EPRT |1|192.0.2.7|", "EPRT |1|nothost|5000|",
                                  "EPRT |1|192.0.2.7|0|", "EPRT |1|192.0.2.7|70000|",
                                  "EPRT |2|192.0.2.7|5000|", "EPRT |1|2001:db8::7|5000|"])
def test_malformed_active_address_is_501(tmp_path: Path, line: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes(line) == [501]
    assert s.proto.data.pending is None


def test_eprt_unknown_protocol_is_522(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("EPRT |3|192.0.2.7|5000|") == [
        "522 Network protocol not supported, use (1,2)."]


def test_eprt_with_another_delimiter(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("EPRT !1!192.0.2.7!5000!") == [200]


def test_active_connection_refused_is_425_after_150(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("PORT 192,0,2,7,4,1", "RETR f") == [200, 150]
    factory = h.reactor.tcpClients[-1][2]
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    reply = s.take()
    assert len(reply) == 1 and reply[0].startswith("425 "), reply
    assert s.codes("NOOP") == [200]
    assert s.proto.data.pending is None and s.proto.data.transfer is None


def test_active_connect_timeout_is_425(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("PORT 192,0,2,7,4,1", "RETR f") == [200, 150]
    h.reactor.advance(h.config.data_timeout - 1)
    assert s.take() == []
    h.reactor.advance(1)
    reply = s.take()
    assert len(reply) == 1 and reply[0].startswith("425 "), reply
    assert s.codes("NOOP") == [200]
    # A connection that finally succeeds afterwards is dropped, not used.
    proto, transport = s.open_active()
    assert transport.disconnecting
    assert transport.value() == b""


def test_active_stor(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("PORT 192,0,2,7,4,1", "STOR up") == [200, 150]
    proto, _ = s.open_active()
    proto.dataReceived(b"uploaded actively")
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "up").read_bytes() == b"uploaded actively"


def test_port_replaces_a_passive_listener(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    factory = h.reactor.tcpServers[-1][1]
    assert s.codes("PORT 192,0,2,7,4,1") == [200]
    assert factory.buildProtocol(IPv4Address("TCP", PEER, 1)) is None


# -- TYPE / MODE / STRU -------------------------------------------------------------------


@pytest.mark.parametrize(("line", "reply"), [
    ("TYPE I", "200 Type set to I."),
    ("TYPE i", "200 Type set to I."),
    ("TYPE L 8", "200 Type set to I."),
    ("TYPE A", "200 Type set to A."),
    ("TYPE A N", "200 Type set to A."),
    ("TYPE E", "504 Command not implemented for that parameter."),
    ("TYPE A T", "504 Command not implemented for that parameter."),
    ("TYPE L 7", "504 Command not implemented for that parameter."),
    ("TYPE X", "501 Syntax error in parameters or arguments."),
    ("MODE S", "200 Mode set to S."),
    ("MODE B", "504 Command not implemented for that parameter."),
    ("MODE Q", "501 Syntax error in parameters or arguments."),
    ("STRU F", "200 Structure set to F."),
    ("STRU R", "504 Command not implemented for that parameter."),
    ("STRU X", "501 Syntax error in parameters or arguments."),
])
def test_transfer_parameters(tmp_path: Path, line: str, reply: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.send(line) == [reply]


def test_type_shows_in_the_150_reply(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    s.pasv()
    assert s.send("RETR f") == ["150 Opening ASCII mode data connection for /f."]
    proto, _ = s.open_passive()
    assert s.finish(proto) == ["226 Transfer complete."]
    s.pasv()
    assert s.codes("TYPE I") == [200]
    assert s.send("RETR f") == ["150 Opening BINARY mode data connection for /f."]


def test_pasv_when_no_port_is_free_is_425(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, passive_ports=(50000, 50002))

    def refuse(port, factory, backlog=50, interface=""):  # type: ignore[no-untyped-def]
        raise error.CannotListenError(interface, port, OSError("in use"))

    h.reactor.listenTCP = refuse  # type: ignore[method-assign]
    reply = s.send("PASV")
    assert len(reply) == 1 and reply[0].startswith("425 "), reply
    assert s.codes("NOOP") == [200]


def test_a_passive_range_is_listed_once_and_as_the_config_says() -> None:
    config = ServerConfig(passive_ports=(61000, 61010))
    first = passive_candidates(config)
    assert list(first) == config.passive_port_candidates()
    assert passive_candidates(ServerConfig(passive_ports=(61000, 61010))) is first
    assert list(passive_candidates(ServerConfig())) == [0]


def exclusive_ports(h) -> set[int]:  # type: ignore[no-untyped-def]
    """Make the MemoryReactor bind as the kernel does: a port listened on is taken
    until its listener has stopped. Returns the set of taken ports."""
    taken: set[int] = set()
    listen = h.reactor.listenTCP

    def exclusive(port, factory, backlog=50, interface=""):  # type: ignore[no-untyped-def]
        if port in taken:
            raise error.CannotListenError(interface, port, OSError("in use"))
        taken.add(port)
        listening = listen(port, factory, backlog, interface)
        stop = listening.stopListening
        listening.stopListening = lambda: (taken.discard(port), stop())[1]
        return listening

    h.reactor.listenTCP = exclusive
    return taken


def test_pasv_waits_for_a_port_our_own_listeners_hold(tmp_path: Path) -> None:
    h, first = logged_in(tmp_path, passive_ports=(50000, 50000))
    h.put("f", b"data")
    exclusive_ports(h)
    second = h.connect()
    second.login()
    first.pasv()
    assert second.send("EPSV") == []  # the one port is first's: second waits for it
    assert first.send("RETR f")[0].startswith("150")
    first.open_passive()  # connected: first's listener closes, and second gets the port
    assert second.take() == ["229 Entering Extended Passive Mode (|||50000|)."]
    assert h.leftover_timers() == []


def test_a_second_pasv_of_one_session_gets_the_port_of_its_first(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, passive_ports=(50000, 50000))
    exclusive_ports(h)
    assert pasv_address(s.send("PASV")[0])[1] == 50000
    assert s.send("EPSV") == ["229 Entering Extended Passive Mode (|||50000|)."]


def test_a_waiting_pasv_gives_up_with_425(tmp_path: Path) -> None:
    h, first = logged_in(tmp_path, passive_ports=(50000, 50000))
    exclusive_ports(h)
    second = h.connect()
    second.login()
    first.pasv()  # and never connects
    assert second.send("PASV") == []
    h.reactor.advance(PORT_WAIT)
    assert second.take() == ["425 Can't open data connection: no free passive port."]
    assert second.codes("NOOP") == [200]


def test_a_client_leaving_while_its_pasv_waits_leaves_nothing_behind(tmp_path: Path) -> None:
    h, first = logged_in(tmp_path, passive_ports=(50000, 50000))
    exclusive_ports(h)
    second = h.connect()
    second.login()
    first.pasv()
    assert second.send("PASV") == []
    second.lose()
    assert h.factory.services.passive_range.waiting == 0
    assert h.hung_sessions() == []
    first.lose()
    assert h.leftover_timers() == []


def test_a_pasv_does_not_try_the_ports_our_listeners_hold(tmp_path: Path) -> None:
    h, first = logged_in(tmp_path, passive_ports=(50000, 50001))
    exclusive_ports(h)
    tried: list[int] = []
    listen = h.reactor.listenTCP

    def recording(port, factory, backlog=50, interface=""):  # type: ignore[no-untyped-def]
        tried.append(port)
        return listen(port, factory, backlog, interface)

    h.reactor.listenTCP = recording
    held = pasv_address(first.send("PASV")[0])[1]
    second = h.connect()
    second.login()
    tried.clear()
    assert pasv_address(second.send("PASV")[0])[1] == tried[0] != held
    assert second.send("EPSV") != [] and tried.count(held) == 0  # its own went first
