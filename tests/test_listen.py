"""Where the server listens (--listen, --implicit-tls-listen, the --port/--interface
shorthand), when it binds (before dropping privileges), and what it says at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import usage
from zope.interface import implementer

from tests.harness import cheap_hash, write_users
from twisted_ftpd import listen, privileges
from twisted_ftpd.config import Options, ServerConfig
from twisted_ftpd.control.factory import FTPFactory, ImplicitTLSFactory
from twisted_ftpd.service import FTPService
from twisted_ftpd.startup import users_file_warnings


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


# -- options ------------------------------------------------------------------------------


def test_listen_is_repeatable_and_kept_in_order() -> None:
    config = parse("--listen", "tcp:2121:interface=127.0.0.1", "--listen",
                   r"tcp6:2121:interface=\:\:1").to_config()
    assert config.listen == ("tcp:2121:interface=127.0.0.1", r"tcp6:2121:interface=\:\:1")


def test_no_listen_means_the_port_shorthand() -> None:
    config = parse().to_config()
    assert (config.listen, config.implicit_tls_listen) == ((), ())
    assert listen.control_listeners(config.listen, config.port, config.interface) == [
        [r"tcp6:52305:interface=\:\:", "tcp:52305"]]
    assert listen.implicit_listeners((), None, "") == []


def test_the_shorthand_with_an_interface_is_one_description() -> None:
    assert listen.shorthand(21, "::1") == [r"tcp:21:interface=\:\:1"]
    assert listen.shorthand(990, "192.0.2.7") == ["tcp:990:interface=192.0.2.7"]
    assert listen.implicit_listeners((), 990, "192.0.2.7") == [["tcp:990:interface=192.0.2.7"]]


def test_implicit_tls_listen_needs_a_certificate(pem: str) -> None:
    with pytest.raises(usage.UsageError, match="--implicit-tls-listen needs --tls-cert"):
        parse("--implicit-tls-listen", "tcp:990")
    config = parse("--tls-cert", pem, "--implicit-tls-listen", "tcp:990",
                   "--implicit-tls-listen", "tcp:9990").to_config()
    assert config.implicit_tls_listen == ("tcp:990", "tcp:9990")


@pytest.mark.parametrize(("args", "message"), [
    (["--listen", "tcp:21", "--port", "2121"], "--listen replaces --port and --interface"),
    (["--listen", "tcp:21", "--interface", "::1"], "--listen replaces --port and --interface"),
    (["--implicit-tls-listen", "tcp:990", "--implicit-tls-port", "990"],
     "--implicit-tls-listen replaces --implicit-tls-port"),
])
def test_a_description_and_its_shorthand_do_not_mix(pem: str, args: list[str],
                                                    message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse("--tls-cert", pem, *args)


@pytest.mark.parametrize(("description", "reason"), [
    ("bogus:21", "not 'bogus'"),
    ("21", "FTP is served on tcp:, tcp6: or systemd: endpoints, not '21'"),
    ("tcp:http", "invalid literal"),
    ("tcp:21:colour=blue", "colour"),
    ("unix:/tmp/ftp.sock", "not 'unix'"),
    ("ssl:990", "not 'ssl' (FTPS comes from --tls-cert)"),
    ("systemd:domain=INET:index=0", "no such socket was passed by systemd"),
    ("systemd:domain=INET:name=ftp", "no such socket was passed by systemd"),
    ("systemd:domain=INET", "exactly one of descriptor index or name"),
])
def test_bad_descriptions_are_one_line_usage_errors(description: str, reason: str) -> None:
    with pytest.raises(usage.UsageError) as raised:
        parse("--listen", description)
    message = str(raised.value)
    assert message.startswith(f"--listen {description!r}: "), message
    assert reason in message and "\n" not in message


def test_the_help_lists_each_repeatable_option_once() -> None:
    assert Options().longOpt.count("listen=") == 1
    text = Options().getUsage()
    assert text.count("--listen=") == 1 and text.count("--implicit-tls-listen=") == 1


# -- binding ------------------------------------------------------------------------------


@implementer(IListeningPort)
class FakePort:
    """A listening port that knows the address it was bound to."""

    def __init__(self, address: IPv4Address | IPv6Address) -> None:
        self.address = address

    def startListening(self) -> None:  # noqa: N802 - Twisted interface name
        raise AssertionError("bound by listenTCP already")

    def stopListening(self) -> None:  # noqa: N802
        self.address = None  # type: ignore[assignment]

    def getHost(self) -> IPv4Address | IPv6Address:  # noqa: N802
        return self.address


class Reactor(MemoryReactorClock):
    """Records every listenTCP, as MemoryReactorClock does, and reports its address."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,  # noqa: N802
                  interface: str = "") -> FakePort:
        super().listenTCP(port, factory, backlog, interface)
        if ":" in interface:
            return FakePort(IPv6Address("TCP", interface, port))
        return FakePort(IPv4Address("TCP", interface or "0.0.0.0", port))


class NoIPv6Reactor(Reactor):
    """A host without IPv6: listening on ``::`` fails."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,  # noqa: N802
                  interface: str = "") -> FakePort:
        if ":" in interface:
            raise error.CannotListenError(interface, port, OSError("no IPv6"))
        return super().listenTCP(port, factory, backlog, interface)


def make_service(tmp_path: Path, reactor: MemoryReactorClock | None = None,
                 **config: Any) -> tuple[FTPService, MemoryReactorClock]:
    users = tmp_path / "users.db"
    write_users(users, {"alice": ("secret", "elr")}, None, hasher=cheap_hash)
    users.chmod(0o600)
    reactor = reactor or Reactor()
    settings = ServerConfig(root=str(tmp_path / "root"), users=str(users), **config)
    return FTPService(settings, reactor), reactor


def bound(reactor: MemoryReactorClock) -> list[tuple[int, str, type]]:
    return [(port, interface, type(factory))
            for port, factory, _backlog, interface in reactor.tcpServers]


def test_ports_are_bound_by_privileged_start_and_only_once(tmp_path: Path) -> None:
    server, reactor = make_service(tmp_path, port=21)
    server.privilegedStartService()
    assert bound(reactor) == [(21, "::", FTPFactory)]
    assert not (tmp_path / "root").exists()  # made later, by the user that will serve
    server.startService()
    assert bound(reactor) == [(21, "::", FTPFactory)]
    assert (tmp_path / "root").is_dir()
    server.stopService()
    assert server.port is None


def test_start_service_alone_binds_too(tmp_path: Path) -> None:
    server, reactor = make_service(tmp_path, port=2121, interface="127.0.0.1")
    server.startService()
    assert bound(reactor) == [(2121, "127.0.0.1", FTPFactory)]
    assert server.port is not None and server.port.getHost().port == 2121
    server.stopService()


def test_without_ipv6_the_shorthand_falls_back_to_ipv4(tmp_path: Path) -> None:
    server, reactor = make_service(tmp_path, NoIPv6Reactor(), port=2121)
    server.startService()
    assert bound(reactor) == [(2121, "", FTPFactory)]
    server.stopService()


def test_every_description_is_bound_with_its_factory(tmp_path: Path, pem: str) -> None:
    server, reactor = make_service(
        tmp_path, listen=("tcp:2121:interface=127.0.0.1", r"tcp6:2121:interface=\:\:1"),
        implicit_tls_listen=("tcp:9990:interface=127.0.0.1",), tls_cert=pem)
    server.startService()
    assert bound(reactor) == [(2121, "127.0.0.1", FTPFactory), (2121, "::1", FTPFactory),
                              (9990, "127.0.0.1", ImplicitTLSFactory)]
    assert len(server.ports) == 2 and server.implicit_port is server.implicit_ports[0]
    server.stopService()
    assert server.ports == [] and server.implicit_ports == []


def test_a_port_that_cannot_be_bound_releases_the_others(tmp_path: Path) -> None:
    server, reactor = make_service(tmp_path, NoIPv6Reactor(),
                                   listen=("tcp:2121", r"tcp6:2121:interface=\:\:1"))
    with pytest.raises(error.CannotListenError):
        server.privilegedStartService()
    assert server.ports == [] and not server.running


def test_privileges_are_dropped_after_every_port_is_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, reactor = make_service(tmp_path, listen=("tcp:21", "tcp:2121"),
                                   user="nobody", group="nogroup")
    seen: list[tuple[privileges.Account, int]] = []
    monkeypatch.setattr(privileges, "switch_to",
                        lambda account: seen.append((account, len(reactor.tcpServers))))
    server.privilegedStartService()
    assert seen == [(privileges.resolve("nobody", "nogroup"), 2)]
    server.startService()
    assert len(seen) == 1  # once only
    server.stopService()


def test_a_failed_switch_leaves_nothing_listening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, reactor = make_service(tmp_path, listen=("tcp:21",), user="nobody")

    def refuse(account: privileges.Account) -> None:
        raise privileges.PrivilegeError("--user nobody needs root")

    monkeypatch.setattr(privileges, "switch_to", refuse)
    with pytest.raises(privileges.PrivilegeError):
        server.privilegedStartService()
    assert server.ports == []


# -- start-up log -------------------------------------------------------------------------


def test_start_up_names_root_users_file_and_addresses(tmp_path: Path, pem: str) -> None:
    server, _ = make_service(tmp_path, listen=("tcp:2121:interface=127.0.0.1",),
                             implicit_tls_listen=("tcp:9990:interface=127.0.0.1",),
                             tls_cert=pem)
    with capturedLogs() as events:
        server.startService()
    serving = [e for e in events if "twisted-ftpd serving" in e["log_format"]]
    assert len(serving) == 1
    assert serving[0]["root"] == str((tmp_path / "root").resolve())
    assert serving[0]["users"] == str((tmp_path / "users.db").resolve())
    assert serving[0]["addresses"] == "127.0.0.1:2121; implicit FTPS on 127.0.0.1:9990"
    assert serving[0]["user"] == privileges.running_as()
    server.stopService()


def test_start_up_warns_at_once_about_a_readable_users_file(tmp_path: Path) -> None:
    server, _ = make_service(tmp_path)
    (tmp_path / "users.db").chmod(0o644)
    with capturedLogs() as events:
        server.startService()
    warnings = [e["warning"] for e in events if "warning" in e]
    assert any("readable by group/others (mode 0644)" in w for w in warnings), warnings
    server.stopService()


def test_users_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    assert users_file_warnings(str(path)) == [
        f"users file {path} does not exist: nobody can log in until it appears"]
    write_users(path, {"alice": ("secret", "elr")}, "elr", hasher=cheap_hash)
    path.chmod(0o640)
    [warning] = users_file_warnings(str(path))
    assert "readable by group/others (mode 0640)" in warning and f"chmod 600 {path}" in warning
    path.chmod(0o600)
    assert users_file_warnings(str(path)) == []
    path.write_text("anonymous::elr:\n")  # no password hashes to hide
    path.chmod(0o644)
    assert users_file_warnings(str(path)) == []
    path.write_text("alice:only-two-fields\n")
    [warning] = users_file_warnings(str(path))
    assert warning.startswith(f"{path}, line 1: ") and "nobody can log in" in warning
    assert "cannot be read" in users_file_warnings(str(tmp_path))[0]


def warnings_logged(events: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]


def test_serving_as_root_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    server, _ = make_service(tmp_path)
    with capturedLogs() as events:
        server.startService()
    assert warnings_logged(events) == [
        "serving as root: give --user (or twistd's --uid/--gid) to drop privileges"]
    server.stopService()


def test_in_process_servers_need_no_users_file_and_warn_of_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.cred.portal import Portal

    monkeypatch.setattr(os, "geteuid", lambda: 0)  # test suites often run as root
    server = FTPService(ServerConfig(port=0, interface="127.0.0.1", root=str(tmp_path),
                                     users=os.devnull), MemoryReactorClock(), portal=Portal(None))
    with capturedLogs() as events:
        server.startService()
    assert warnings_logged(events) == []
    assert [e["users"] for e in events if "users" in e] == ["none"]
    server.stopService()


def test_control_ports_listen_with_a_deep_backlog(tmp_path: Path) -> None:
    """Hundreds of clients connecting at once are queued, not reset after a minute."""
    server, reactor = make_service(tmp_path, port=21, interface="127.0.0.1",
                                   listen=("tcp:2121:interface=127.0.0.1:backlog=7",
                                           "tcp:2122:interface=127.0.0.1"))
    server.privilegedStartService()
    assert [(port, backlog) for port, _f, backlog, _i in reactor.tcpServers] == [
        (2121, 7), (2122, listen.CONTROL_BACKLOG)]
    assert listen.with_backlog("tcp:21") == "tcp:21:backlog=511"
    assert listen.with_backlog("systemd:domain=INET:index=0") == "systemd:domain=INET:index=0"
