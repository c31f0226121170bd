"""Command-line options and the ServerConfig they produce."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
from twisted.python import usage

import twisted_ftpd
from tests.harness import Harness
from twisted_ftpd.config import DEFAULT_BANNER, Options, ServerConfig


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_defaults() -> None:
    config = parse().to_config()
    assert config.port == 52305
    assert config.root == "./ftproot"
    assert config.users == "./users.db"
    assert config.interface == ""
    assert config.banner == DEFAULT_BANNER
    assert config.passive_ports is None
    assert config.masquerade_address is None
    assert config == ServerConfig()


def test_options_are_carried_into_the_config() -> None:
    config = parse("--port", "2121", "--interface", "127.0.0.1", "--root", "/srv/ftp",
                   "--users", "/etc/ftp.db", "--passive-ports", "60000-60010",
                   "--masquerade-address", "203.0.113.5", "--idle-timeout", "60",
                   "--data-timeout", "5").to_config()
    assert config.port == 2121
    assert config.interface == "127.0.0.1"
    assert config.root == "/srv/ftp"
    assert config.users == "/etc/ftp.db"
    assert config.passive_ports == (60000, 60010)
    assert config.passive_port_candidates() == list(range(60000, 60011))
    assert config.masquerade_address == "203.0.113.5"
    assert config.idle_timeout == 60.0 and config.data_timeout == 5.0


def test_short_options() -> None:
    config = parse("-p", "2121", "-i", "::1", "-r", "r", "-u", "u", "-b", "hi").to_config()
    assert (config.port, config.interface, config.root, config.users, config.banner) == (
        2121, "::1", "r", "u", "hi")


def test_port_zero_is_allowed() -> None:
    assert parse("--port", "0").to_config().port == 0


def test_single_port_passive_range() -> None:
    config = parse("--passive-ports", "1024-1024").to_config()
    assert config.passive_port_candidates() == [1024]


def test_no_passive_range_means_any_port() -> None:
    assert ServerConfig().passive_port_candidates() == [0]


@pytest.mark.parametrize("value", ["-1", "65536", "70000", "abc", "", "21.5"])
def test_bad_port(value: str) -> None:
    with pytest.raises(usage.UsageError):
        parse("--port", value)


@pytest.mark.parametrize("value", ["2000-1000", "80-2000", "1023-1024", "5000", "a-b",
                                   "60000-70000", "5000-", "-5000", "1000-2000-3000", ""])
def test_bad_passive_ports(value: str) -> None:
    with pytest.raises(usage.UsageError):
        parse("--passive-ports", value)


@pytest.mark.parametrize("value", ["ftp.example.com", "::1", "2001:db8::5", "256.1.1.1",
                                   "1.2.3", ""])
def test_bad_masquerade_address(value: str) -> None:
    with pytest.raises(usage.UsageError):
        parse("--masquerade-address", value)


@pytest.mark.parametrize("value", ["localhost", "not-an-ip", "1.2.3.4.5", "::g"])
def test_bad_interface(value: str) -> None:
    with pytest.raises(usage.UsageError):
        parse("--interface", value)


@pytest.mark.parametrize("value", ["0.0.0.0", "::", "::1", "192.0.2.1"])
def test_good_interface(value: str) -> None:
    assert parse("--interface", value).to_config().interface == value


@pytest.mark.parametrize(("option", "value"), [("--idle-timeout", "0"),
                                               ("--idle-timeout", "-5"),
                                               ("--data-timeout", "0"),
                                               ("--data-timeout", "x")])
def test_bad_timeouts(option: str, value: str) -> None:
    with pytest.raises(usage.UsageError):
        parse(option, value)


@pytest.mark.parametrize(("option", "lowest"), [("--max-connections", 0),
                                                ("--ban-after", 0),
                                                ("--hook-concurrency", 1)])
def test_counts_below_their_minimum_are_refused(option: str, lowest: int) -> None:
    assert getattr(parse(option, str(lowest)).to_config(), option[2:].replace("-", "_")) == lowest
    for bad in (str(lowest - 1), "2.5", "many"):
        with pytest.raises(usage.UsageError):
            parse(option, bad)


def test_unknown_option() -> None:
    with pytest.raises(usage.UsageError):
        parse("--no-such-option")


def test_banner_backslash_n_makes_two_lines(tmp_path: Path) -> None:
    config = parse("--banner", "a\\nb").to_config()
    assert config.banner == "a\nb"
    s = Harness(tmp_path, banner=config.banner).connect()
    assert s.greeting == ["220-a", "220 b"]


def test_config_is_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(AttributeError):
        config.port = 21  # type: ignore[misc]


# -- --help and --version -------------------------------------------------------------------


def test_help_starts_with_a_usage_line_and_a_description(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/server.py"])
    with pytest.raises(SystemExit) as exit_:
        parse("--help")
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Usage: server.py [options]"
    assert "FTP" in lines[1] and not lines[1].startswith(("Options", " "))
    assert lines[2] == "Options:"


def test_help_under_twistd_names_twistd_and_the_plugin() -> None:
    from twisted.scripts.twistd import ServerOptions

    config = ServerOptions()
    config.parseOptions(["ftpd"])
    lines = str(config.subOptions).splitlines()
    assert lines[0].endswith("twistd [options] ftpd [options]")
    assert "FTP" in lines[1]


def test_version_names_twisted_ftpd_and_twisted(capsys: pytest.CaptureFixture[str]) -> None:
    from twisted import copyright

    with pytest.raises(SystemExit) as exit_:
        parse("--version")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"twisted-ftpd {twisted_ftpd.__version__}")
    assert copyright.version in out


def test_version_matches_the_installed_package_metadata() -> None:
    assert importlib.metadata.version("twisted-ftpd") == twisted_ftpd.__version__


# -- several nodes: users from PostgreSQL, shared state in Redis ---------------------------


def test_shared_state_and_a_database_of_users() -> None:
    config = parse("--users", "postgresql://ftpd@db.internal/ftp",
                   "--shared-state", "redis://127.0.0.1:6379/0",
                   "--shared-state-ttl", "12").to_config()
    assert config.users == "postgresql://ftpd@db.internal/ftp"
    assert (config.shared_state, config.shared_state_ttl) == ("redis://127.0.0.1:6379/0", 12.0)
    assert parse().to_config().shared_state is None  # per node unless asked


@pytest.mark.parametrize("args", [
    ("--shared-state", "127.0.0.1:6379"),
    ("--shared-state", "http://127.0.0.1/"),
    ("--shared-state-ttl", "0.5"),
    ("--shared-state-ttl", "inf"),
])
def test_bad_shared_state(args: tuple[str, str]) -> None:
    with pytest.raises(usage.UsageError):
        parse(*args)
