"""Socket activation: both launchers serve on listening sockets handed over the way systemd
does it (fd 3 onwards, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID of the server itself), with
``--listen systemd:domain=INET:index=0`` and ``--implicit-tls-listen systemd:...:name=``;
and a socket that is not what the description says stops the server in one line."""

from __future__ import annotations

import ftplib
import io
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import write_users
from tests.helpers import SERVER_PY, TWISTD
from tests.integration.conftest import (
    CLI_TIMEOUT,
    FTP_TIMEOUT,
    close_quietly,
    require_binary,
    run_cli,
)
from tests.integration.tls_helpers import (
    SAFETY_TIMEOUT,
    free_port,
    make_tls_files,
    ok,
    start_logged,
    stop_process,
)

pytestmark = pytest.mark.integration

LAUNCHERS = {
    "server.py": SERVER_PY,
    "twistd": [*TWISTD, "-n",
               "--pidfile=", "--logfile=-", "ftpd"],
}

# What systemd does between fork and exec: the sockets become fds 3, 4...; the variables
# count and name them and say which process they are for (this one: it execs the server).
ACTIVATE = """
import os, sys
names, fds, command = sys.argv[1], [int(fd) for fd in sys.argv[2].split(",")], sys.argv[3:]
for target, fd in enumerate(fds, start=3):
    os.dup2(fd, target)
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names, LISTEN_PID=str(os.getpid()))
os.execv(command[0], command)
"""


def listening_socket(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0) if family == socket.AF_INET else ("::1", 0))
    sock.listen()
    return sock


def activated(names: list[str], sockets: list[socket.socket], command: list[str],
              site: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``command`` with ``sockets`` passed as systemd passes them, named ``names``."""
    fds = [sock.fileno() for sock in sockets]
    # The fds are well above 4 (the test runner has many open), so dup2 onto 3 and 4 is safe.
    assert min(fds) > 2 + len(fds)
    launcher = [sys.executable, "-c", ACTIVATE, ":".join(names), ",".join(map(str, fds)),
                *command]
    try:
        return start_logged(launcher, site, pass_fds=tuple(fds))
    finally:
        for sock in sockets:  # the server holds its own copies
            sock.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    write_users(tmp_path / "users.db", {"alice": ("secret", "elradfmwMT")}, None)
    (tmp_path / "users.db").chmod(0o600)
    return tmp_path


def options(site: Path) -> list[str]:
    return ["--root", str(site / "root"), "--users", str(site / "users.db")]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_serves_on_sockets_passed_by_systemd(site: Path, launcher: str) -> None:
    tls = make_tls_files(site)
    plain, implicit = listening_socket(), listening_socket()
    port, tls_port = plain.getsockname()[1], implicit.getsockname()[1]
    command = [*LAUNCHERS[launcher], "--listen", "systemd:domain=INET:index=0",
               "--implicit-tls-listen", "systemd:domain=INET:name=ftps",
               "--tls-cert", str(tls.path), *options(site)]
    proc, log = activated(["ftp", "ftps"], [plain, implicit], command, site)
    try:
        assert f"on 127.0.0.1:{port}; implicit FTPS on 127.0.0.1:{tls_port} as " in log
        with ftplib.FTP() as ftp:
            ftp.connect("127.0.0.1", port, timeout=FTP_TIMEOUT)
            ftp.login("alice", "secret")
            ftp.storbinary("STOR activated.txt", io.BytesIO(b"socket activation\n"))
            close_quietly(ftp)
        assert (site / "root" / "activated.txt").read_bytes() == b"socket activation\n"
        (site / "ca.pem").write_bytes(tls.cert_pem)
        listing = ok(run_cli([require_binary("curl"), "-sS", "--cacert", str(site / "ca.pem"),
                              "--user", "alice:secret", "--list-only",
                              f"ftps://127.0.0.1:{tls_port}/"], site / "home"))
        assert listing.split() == ["activated.txt"]
    finally:
        stop_process(proc)


def test_a_socket_of_another_family_is_refused_in_one_line(site: Path) -> None:
    command = [*LAUNCHERS["server.py"], "--listen", "systemd:domain=INET6:index=0",
               *options(site)]
    launcher = [sys.executable, "-c", ACTIVATE, "ftp"]
    sock = listening_socket()
    with sock:
        result = subprocess.run([*launcher, str(sock.fileno()), *command], cwd=site,
                                pass_fds=(sock.fileno(),), capture_output=True, text=True,
                                timeout=CLI_TIMEOUT)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "descriptor 3 is an INET socket (use domain=INET)" in result.stderr


def test_systemd_socket_activate(site: Path) -> None:
    """systemd's own tool starts the server at the first connection (it needs --fdname:
    Twisted reads the sockets only with LISTEN_FDNAMES, which systemd always sets)."""
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed (package systemd)")
    port = free_port()
    proc = subprocess.Popen(
        [tool, "--listen", f"127.0.0.1:{port}", "--fdname=ftp", *LAUNCHERS["server.py"],
         "--listen", "systemd:domain=INET:name=ftp", *options(site)],
        cwd=site, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Listening on ...": the port is bound
        assert f"127.0.0.1:{port}" in line, line
        with ftplib.FTP() as ftp:  # the server starts now and answers this connection
            ftp.connect("127.0.0.1", port, timeout=SAFETY_TIMEOUT)
            ftp.login("alice", "secret")
            assert ftp.nlst() == []
            close_quietly(ftp)
    finally:
        stop_process(proc)
