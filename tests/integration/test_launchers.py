"""The two ways to run the server from a shell, ``python server.py`` and ``twistd ftpd``,
take the same options, serve real clients, and refuse bad options cleanly."""

from __future__ import annotations

import ftplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import write_users
from tests.helpers import SERVER_PY, TWISTD
from tests.integration.tls_helpers import free_port, start_process, stop_process

pytestmark = pytest.mark.integration


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    write_users(tmp_path / "users.db", {"alice": ("secret", "elradfmwMT")}, "elr")
    yield tmp_path


def exercise(port: int, root: Path) -> None:
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=30)
        assert ftp.getwelcome() == "220-Hello\n220 from the test"
        ftp.login("alice", "secret")
        ftp.mkd("made")
        ftp.quit()
    assert (root / "made").is_dir()


@pytest.mark.parametrize("launcher", ["server.py", "twistd"])
def test_launcher_serves_with_the_documented_options(site: Path, launcher: str) -> None:
    port = free_port()
    options = ["--port", str(port), "--interface", "127.0.0.1", "--root", str(site / "files"),
               "--users", str(site / "users.db"), "--banner", "Hello\\nfrom the test",
               "--passive-ports", "40000-40100"]
    if launcher == "server.py":
        command = [*SERVER_PY, *options]
    else:
        command = [*TWISTD, "-n", "--pidfile=", "--logfile=-", "ftpd", *options]
    proc = start_process(command, site)
    try:
        assert (site / "files").is_dir()  # the root is created when missing
        exercise(port, site / "files")
    finally:
        stop_process(proc)


@pytest.mark.parametrize("bad", [
    ["--port", "http"],
    ["--port", "70000"],
    ["--passive-ports", "5000"],
    ["--passive-ports", "6000-5000"],
    ["--masquerade-address", "example"],
    ["--interface", "not-an-ip"],
    ["--no-such-option"],
])
def test_server_py_rejects_bad_options_in_one_line(tmp_path: Path, bad: list[str]) -> None:
    result = subprocess.run([*SERVER_PY, *bad], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_twistd_rejects_bad_options_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run([*TWISTD, "-n", "--pidfile=", "ftpd", "--port", "http"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "port" in result.stdout + result.stderr


def test_server_py_reports_a_busy_port_without_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*SERVER_PY, "--port", str(port), "--interface", "127.0.0.1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot start" in result.stderr


LAUNCHERS = {
    "server.py": SERVER_PY,
    "twistd": [*TWISTD, "ftpd"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_help_opens_with_a_usage_line(tmp_path: Path, launcher: str) -> None:
    result = subprocess.run([*LAUNCHERS[launcher], "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()[:2]
    expected = "Usage: server.py [options]" if launcher == "server.py" else "ftpd [options]"
    assert first.startswith("Usage: ") and first.endswith(expected), first
    assert "FTP" in second, second


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_version_names_twisted_ftpd(tmp_path: Path, launcher: str) -> None:
    import twisted_ftpd

    result = subprocess.run([*LAUNCHERS[launcher], "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"twisted-ftpd {twisted_ftpd.__version__}"), result.stdout
    assert "Twisted" in result.stdout
