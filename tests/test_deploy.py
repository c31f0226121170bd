"""The systemd units ship with the package, their ExecStart is a command line the server
accepts (given the socket the .socket unit passes), and systemd finds nothing wrong with
them (where systemd-analyze is installed)."""

from __future__ import annotations

import importlib.resources
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet import endpoints
from twisted.python.systemd import ListenFDs

from twisted_ftpd.config import Options

UNITS = ("twisted-ftpd.service", "twisted-ftpd.socket")


def unit(name: str) -> str:
    return (importlib.resources.files("twisted_ftpd") / "deploy" / name).read_text()


def settings(text: str, section: str) -> dict[str, list[str]]:
    """``key -> values`` of one ``[section]``, continuation lines joined, comments left out."""
    body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
    values: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", body).splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def exec_start() -> list[str]:
    [command] = settings(unit("twisted-ftpd.service"), "Service")["ExecStart"]
    return shlex.split(command)


@pytest.fixture
def socket_from_systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """What twisted-ftpd.socket passes: one dual-stack listening socket named ``ftp``.
    (Twisted reads LISTEN_FDS once, when it is imported, so its parser's ListenFDs is
    replaced instead of the environment.)"""
    listening = socket.socket(socket.AF_INET6)
    try:
        listening.bind(("::", 0))
    except OSError as e:
        listening.close()
        pytest.skip(f"no IPv6 here: {e}")
    listening.listen()
    names = settings(unit("twisted-ftpd.socket"), "Socket")["FileDescriptorName"]
    monkeypatch.setattr(endpoints._SystemdParser, "_sddaemon",
                        ListenFDs([listening.fileno()], tuple(names)))
    with listening:
        yield listening


def test_the_units_ship_with_the_package() -> None:
    for name in UNITS:
        assert unit(name).startswith("#"), name


def test_the_socket_and_the_service_belong_together() -> None:
    socket_unit = settings(unit("twisted-ftpd.socket"), "Socket")
    service_unit = settings(unit("twisted-ftpd.service"), "Unit")
    assert socket_unit["ListenStream"] == ["[::]:21"] and socket_unit["BindIPv6Only"] == ["both"]
    assert socket_unit["Service"] == ["twisted-ftpd.service"]
    assert "twisted-ftpd.socket" in service_unit["Requires"]
    assert settings(unit("twisted-ftpd.service"), "Service")["User"] == ["twisted-ftpd"]


@pytest.mark.usefixtures("socket_from_systemd")
def test_exec_start_is_a_command_line_the_server_accepts(tmp_path: Path) -> None:
    program, *args = exec_start()
    assert program.endswith("/twisted-ftpd")
    options = Options()
    options.parseOptions(args)
    config = options.to_config()
    assert config.listen == ("systemd:domain=INET6:name=ftp",)
    assert config.user is None  # systemd's User= switches before the server starts
    assert config.passive_ports == (50000, 50100)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    program = Path(sys.executable).with_name("twisted-ftpd")
    for name in UNITS:  # ExecStart must name a program that exists: this one's
        (tmp_path / name).write_text(unit(name).replace(exec_start()[0], str(program)))
    result = subprocess.run([analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
