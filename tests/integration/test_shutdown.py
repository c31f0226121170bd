"""SIGTERM to a real server process (server.py and twistd) in the middle of real ftplib
transfers: new connections are refused, running downloads finish within
``--shutdown-grace``, then every session is told 421; interrupted uploads leave no
``.part`` file, a new name keeps what arrived (REST+STOR resumes it), an overwrite
keeps the old file."""

from __future__ import annotations

import ftplib
import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import write_users
from tests.helpers import SERVER_PY, TWISTD
from tests.integration.conftest import FTP_TIMEOUT, close_quietly, sparse_file
from tests.integration.tls_helpers import SAFETY_TIMEOUT, free_port, start_process, stop_process

pytestmark = pytest.mark.integration

LAUNCHERS = {
    "server.py": SERVER_PY,
    "twisted-ftpd": [str(Path(sys.executable).with_name("twisted-ftpd"))],  # console script
    "twistd": [*TWISTD, "-n", "--pidfile=", "--logfile=-", "ftpd"],
}
# More than any loopback socket buffers hold: once sendall returns, the server has read
# (and will keep) most of it.
UPLOAD = os.urandom(1 << 20) * 32


class Site:
    """A server process on 127.0.0.1 serving ``root`` to alice."""

    def __init__(self, tmp: Path, launcher: str = "server.py", *options: str) -> None:
        self.launcher = launcher
        self.root = tmp / "files"
        self.root.mkdir(parents=True, exist_ok=True)
        write_users(tmp / "users.db", {"alice": ("secret", "elradfmwMT")}, None)
        self.port = free_port()
        self.proc = start_process(
            [*LAUNCHERS[launcher], "--port", str(self.port), "--interface", "127.0.0.1",
             "--root", str(self.root), "--users", str(tmp / "users.db"), *options], tmp)

    def login(self) -> ftplib.FTP:
        ftp = ftplib.FTP(timeout=FTP_TIMEOUT)
        ftp.connect("127.0.0.1", self.port)
        ftp.login("alice", "secret")
        ftp.voidcmd("TYPE I")
        return ftp

    def terminate(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)

    def wait_for_log(self, text: str) -> None:
        """Read the server's log until a line holds ``text`` (an event, not a clock)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if text in line:
                return
        raise AssertionError(f"the server exited without logging {text!r}")

    def exited_cleanly(self) -> bool:
        """Exited by itself; twistd re-raises the signal it stopped for, as daemons do."""
        status = self.proc.wait(timeout=SAFETY_TIMEOUT)
        return status == (-signal.SIGTERM if self.launcher == "twistd" else 0)

    def hidden(self) -> list[str]:
        return [name for name in os.listdir(self.root) if name.startswith(".")]


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[list[Site]]:
    started: list[Site] = []
    yield started
    for site in started:
        stop_process(site.proc)


def site(sites: list[Site], tmp: Path, *args: str) -> Site:
    started = Site(tmp, *args)
    sites.append(started)
    return started


def expect_421(ftp: ftplib.FTP) -> None:
    with pytest.raises(ftplib.error_temp, match="^421 Server shutting down"):
        ftp.getresp()


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_running_download_finishes_then_421_and_new_connections_are_refused(
        tmp_path: Path, sites: list[Site], launcher: str) -> None:
    server = site(sites, tmp_path, launcher, "--shutdown-grace", "120")
    sparse_file(server.root / "big.bin")
    busy, idle = server.login(), server.login()
    data = busy.transfercmd("RETR big.bin")
    received = len(data.recv(65536))  # the transfer is running
    server.terminate()
    expect_421(idle)  # an idle session goes at once
    server.wait_for_log("Stopped listening")
    with pytest.raises(ConnectionRefusedError):  # the listener is closed
        socket.create_connection(("127.0.0.1", server.port), timeout=FTP_TIMEOUT)
    while chunk := data.recv(1 << 20):
        received += len(chunk)
    data.close()
    assert received == 64 << 20
    assert busy.voidresp().startswith("226")
    expect_421(busy)
    # It exits as soon as the last session is gone, long before the 120 s are up.
    assert server.exited_cleanly()
    close_quietly(busy)
    close_quietly(idle)


def test_after_the_grace_period_a_stalled_download_is_told_421(
        tmp_path: Path, sites: list[Site]) -> None:
    server = site(sites, tmp_path, "server.py", "--shutdown-grace", "1")
    sparse_file(server.root / "big.bin")
    ftp = server.login()
    data = ftp.transfercmd("RETR big.bin")
    data.recv(65536)  # then stop reading: the transfer cannot finish
    server.terminate()
    expect_421(ftp)
    assert server.exited_cleanly()
    data.close()
    close_quietly(ftp)


def stop_during_upload(server: Site, name: str) -> None:
    """SIGTERM the server halfway through ``STOR name``: the session gets 421 and the
    server exits cleanly."""
    ftp = server.login()
    data = ftp.transfercmd(f"STOR {name}")
    data.sendall(UPLOAD[: len(UPLOAD) // 2])
    server.terminate()
    expect_421(ftp)
    assert server.exited_cleanly()
    data.close()
    close_quietly(ftp)


def test_an_interrupted_new_upload_is_kept_under_its_name_and_resumes(
        tmp_path: Path, sites: list[Site]) -> None:
    server = site(sites, tmp_path, "server.py", "--shutdown-grace", "0")
    stop_during_upload(server, "new.bin")

    kept = (server.root / "new.bin").read_bytes()
    assert 0 < len(kept) <= len(UPLOAD) // 2 and UPLOAD.startswith(kept)
    assert server.hidden() == []  # no .part file

    again = site(sites, tmp_path / "again", "server.py")
    os.replace(server.root / "new.bin", again.root / "new.bin")
    with again.login() as ftp:
        ftp.storbinary("STOR new.bin", io.BytesIO(UPLOAD[len(kept):]), rest=len(kept))
    assert (again.root / "new.bin").read_bytes() == UPLOAD


def test_an_interrupted_overwrite_keeps_the_old_file(tmp_path: Path, sites: list[Site]) -> None:
    server = site(sites, tmp_path, "server.py", "--shutdown-grace", "0")
    (server.root / "report.csv").write_bytes(b"the old report\n")
    stop_during_upload(server, "report.csv")
    assert (server.root / "report.csv").read_bytes() == b"the old report\n"
    assert server.hidden() == []


def test_an_upload_that_ends_within_the_grace_period_is_stored_whole(
        tmp_path: Path, sites: list[Site]) -> None:
    server = site(sites, tmp_path, "server.py", "--shutdown-grace", "120")
    ftp = server.login()
    data = ftp.transfercmd("STOR whole.bin")
    data.sendall(UPLOAD[: len(UPLOAD) // 2])
    server.terminate()
    server.wait_for_log("Shutting down: waiting up to 120")
    data.sendall(UPLOAD[len(UPLOAD) // 2:])
    data.close()
    assert ftp.voidresp().startswith("226")
    expect_421(ftp)
    assert server.exited_cleanly()
    close_quietly(ftp)
    assert (server.root / "whole.bin").read_bytes() == UPLOAD
    assert server.hidden() == []


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_second_sigterm_ends_the_grace_period(tmp_path: Path, sites: list[Site],
                                                launcher: str) -> None:
    server = site(sites, tmp_path, launcher, "--shutdown-grace", "600")
    sparse_file(server.root / "big.bin")
    ftp = server.login()
    data = ftp.transfercmd("RETR big.bin")
    data.recv(65536)
    server.terminate()
    server.wait_for_log("Shutting down: waiting up to 600")
    server.terminate()
    expect_421(ftp)
    assert server.exited_cleanly()
    data.close()
    close_quietly(ftp)


def test_bad_shutdown_grace_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run([*LAUNCHERS["server.py"], "--shutdown-grace", "-1"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--shutdown-grace" in result.stderr
