"""``--workers 2`` as real processes on 127.0.0.1: connections land on both workers (the
JSON log names the worker of every event), each worker hands out passive ports from its
own part of the range only, a file uploaded through one is downloaded through the other
(and the parent writes both to the one xferlog),
SIGTERM stops every worker cleanly (a running download finishes first; a second SIGTERM
ends the grace) and the parent exits 0, and a worker killed with SIGKILL is reported and
started again, unless workers keep dying, which stops the server with status 1."""

from __future__ import annotations

import ftplib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import write_users
from tests.helpers import TWISTD
from tests.integration.conftest import (
    FTP_TIMEOUT,
    close_quietly,
    require_binary,
    run_cli,
    sparse_file,
)
from tests.integration.test_socket_activation import ACTIVATE, listening_socket
from tests.integration.tls_helpers import SAFETY_TIMEOUT, free_port, make_tls_files, ok
from twisted_ftpd.config import split_passive_ports
from twisted_ftpd.workers import RESTART_BURST

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAUNCHERS = {
    "server.py": [sys.executable, str(REPO / "server.py")],
    "twisted-ftpd": [str(Path(sys.executable).with_name("twisted-ftpd"))],
    "twistd": [*TWISTD, "-n", "--pidfile=", "--logfile=-", "ftpd"],
}
CLIENTS = 24  # from 24 addresses: all on one of two workers by chance is 1 in 2**23


class Pool:
    """A ``--workers 2`` server process whose JSON log is read as it comes."""

    def __init__(self, tmp: Path, launcher: str = "server.py", *options: str,
                 inherited: socket.socket | None = None, listen_given: bool = False) -> None:
        """With ``inherited``, the server gets that socket as systemd passes it; with
        ``listen_given``, ``options`` say where it listens."""
        self.root = tmp / "files"
        self.root.mkdir(parents=True, exist_ok=True)
        write_users(tmp / "users.db", {"alice": ("secret", "elradfmw")}, "elr")
        base = random.randrange(42000, 60000)  # apart from other tests' passive ports
        self.passive = (base, base + 19)
        command = [*LAUNCHERS[launcher], "--root", str(self.root), "--users",
                   str(tmp / "users.db"), "--workers", "2", "--passive-ports",
                   f"{base}-{base + 19}", "--log-format", "json",
                   "--max-connections-per-ip", "0", *options]
        fds: tuple[int, ...] = ()
        if listen_given:
            self.port = 0
        elif inherited is None:
            self.port = free_port()
            command += ["--port", str(self.port), "--interface", "127.0.0.1"]
        else:
            self.port = inherited.getsockname()[1]
            fds = (inherited.fileno(),)
            command = [sys.executable, "-c", ACTIVATE, "ftp", str(fds[0]), *command,
                       "--listen", "systemd:domain=INET:name=ftp"]
        self.proc = subprocess.Popen(command, cwd=tmp, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, pass_fds=fds)
        self.events: list[dict[str, Any]] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda e: "twisted-ftpd serving" in e.get("log_format", ""))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"log_format": line}
            with self._seen:
                self.events.append(event)
                self._seen.notify_all()
        with self._seen:
            self.events.append({"log_format": "<exited>"})
            self._seen.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], count: int = 1
                 ) -> list[dict[str, Any]]:
        """The first ``count`` logged events that ``match``, once they are all there."""
        with self._seen:
            found = self._seen.wait_for(
                lambda: len([e for e in self.events if match(e)]) >= count
                or self.events[-1:] == [{"log_format": "<exited>"}], timeout=SAFETY_TIMEOUT)
            matching = [e for e in self.events if match(e)]
        assert found and len(matching) >= count, "\n".join(map(str, self.events[-20:]))
        return matching[:count]

    def worker_pids(self) -> dict[int, int]:
        """worker number → pid of its latest process, from the log."""
        return {e["worker"]: e["worker_pid"] for e in list(self.events) if "worker_pid" in e}

    def login(self, address: str, user: str = "anonymous", password: str = "x") -> ftplib.FTP:
        ftp = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=(address, 0))
        ftp.connect("127.0.0.1", self.port)
        ftp.login(user, password)
        return ftp

    def spread(self, clients: int = CLIENTS, first: int = 10, **login: str
               ) -> tuple[list[ftplib.FTP], dict[str, int]]:
        """``clients`` sessions from 127.0.0.<first>..., and the worker of each address."""
        addresses = [f"127.0.0.{first + i}" for i in range(clients)]
        sessions = [self.login(address, **login) for address in addresses]
        connects = self.wait_for(
            lambda e: e.get("ftpd_event") == "connect" and e["peer"] in addresses, clients)
        return sessions, {e["peer"]: e["worker"] for e in connects}

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=SAFETY_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[list[Pool]]:
    started: list[Pool] = []
    yield started
    for pool in started:
        pool.stop()


def start(pools: list[Pool], tmp: Path, *args: str, **kwargs: Any) -> Pool:
    pool = Pool(tmp, *args, **kwargs)
    pools.append(pool)
    return pool


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_sessions_spread_over_both_workers_with_disjoint_passive_ports(
        tmp_path: Path, pools: list[Pool], launcher: str) -> None:
    pool = start(pools, tmp_path, launcher)
    sessions, worker_of = pool.spread()
    assert set(worker_of.values()) == {0, 1}
    pids = pool.worker_pids()
    assert len(set(pids.values())) == 2
    assert all(parent_of(pid) == pool.proc.pid for pid in pids.values())

    parts = split_passive_ports(pool.passive, 2)
    for ftp in sessions:
        worker = worker_of[ftp.sock.getsockname()[0]]
        low, high = parts[worker]
        _, port = ftp.makepasv()
        assert low <= port <= high, (worker, port, parts)
        ftp.quit()


def test_an_upload_through_one_worker_is_downloaded_through_the_other(
        tmp_path: Path, pools: list[Pool]) -> None:
    pool = start(pools, tmp_path, "server.py", "--xferlog", str(tmp_path / "xferlog"))
    sessions, worker_of = pool.spread(user="alice", password="secret")
    by_worker = {worker_of[ftp.sock.getsockname()[0]]: ftp for ftp in sessions}
    by_worker[0].storbinary("STOR shared.bin", io.BytesIO(b"from worker 0\n" * 1000))
    received: list[bytes] = []
    by_worker[1].retrbinary("RETR shared.bin", received.append)
    assert b"".join(received) == b"from worker 0\n" * 1000
    for ftp in sessions:
        ftp.quit()
    assert pool.stop() == 0
    # The parent writes both workers' transfers to the one xferlog.
    lines = (tmp_path / "xferlog").read_text().splitlines()
    assert [line.split()[8:12] for line in lines] == [
        ["/shared.bin", "b", "_", "i"], ["/shared.bin", "b", "_", "o"]]


@pytest.mark.parametrize("target", ["parent", "process group"])
def test_sigterm_lets_a_download_finish_then_stops_every_worker(
        tmp_path: Path, pools: list[Pool], target: str) -> None:
    pool = start(pools, tmp_path, "server.py", "--shutdown-grace", "120")
    sparse_file(pool.root / "big.bin")
    sessions, worker_of = pool.spread()
    busy = sessions[0]
    busy.voidcmd("TYPE I")
    data = busy.transfercmd("RETR big.bin")
    received = len(data.recv(65536))  # the transfer is running
    pids = pool.worker_pids()
    # systemd (KillMode=control-group) and the terminal's Ctrl-C signal the whole group:
    # the workers must not take that and the parent's stop for a second signal.
    if target == "parent":
        os.kill(pool.proc.pid, signal.SIGTERM)
    else:
        os.killpg(pool.proc.pid, signal.SIGTERM)
    for idle in sessions[1:]:
        with pytest.raises(ftplib.error_temp, match="^421 Server shutting down"):
            idle.getresp()
    while chunk := data.recv(1 << 20):
        received += len(chunk)
    data.close()
    assert received == 64 << 20
    assert busy.voidresp().startswith("226")
    assert pool.proc.wait(timeout=SAFETY_TIMEOUT) == 0
    assert not any(alive(pid) for pid in pids.values())
    for ftp in sessions:
        close_quietly(ftp)


def test_a_second_sigterm_ends_the_grace_in_every_worker(
        tmp_path: Path, pools: list[Pool]) -> None:
    pool = start(pools, tmp_path, "server.py", "--shutdown-grace", "600")
    sparse_file(pool.root / "big.bin")
    sessions, _ = pool.spread(clients=2)
    stalled = sessions[0]
    stalled.voidcmd("TYPE I")
    data = stalled.transfercmd("RETR big.bin")
    data.recv(65536)  # then stop reading: the transfer cannot finish
    os.kill(pool.proc.pid, signal.SIGTERM)
    pool.wait_for(lambda e: e.get("log_format", "").startswith("Shutting down: waiting"))
    os.kill(pool.proc.pid, signal.SIGTERM)
    with pytest.raises(ftplib.error_temp, match="^421 Server shutting down"):
        stalled.getresp()
    assert pool.proc.wait(timeout=SAFETY_TIMEOUT) == 0
    data.close()
    for ftp in sessions:
        close_quietly(ftp)


def test_a_killed_worker_is_reported_and_started_again(
        tmp_path: Path, pools: list[Pool]) -> None:
    pool = start(pools, tmp_path)
    sessions, _ = pool.spread(clients=4)
    killed = pool.worker_pids()[0]
    os.kill(killed, signal.SIGKILL)
    pool.wait_for(lambda e: e.get("log_format", "").startswith("worker {index} (pid {pid})")
                  and e.get("pid") == killed and "signal 9" in e.get("how", ""))
    again = pool.wait_for(lambda e: e.get("log_format", "").startswith(
        "worker {index} started again"))[0]
    assert again["index"] == 0 and again["pid"] != killed
    for ftp in sessions:
        close_quietly(ftp)

    more, worker_of = pool.spread(first=100)
    assert set(worker_of.values()) == {0, 1}
    assert pool.worker_pids()[0] == again["pid"]
    for ftp in more:
        ftp.quit()
    assert pool.stop() == 0


def test_a_worker_that_keeps_dying_stops_the_server_with_status_1(
        tmp_path: Path, pools: list[Pool]) -> None:
    pool = start(pools, tmp_path)
    pid = pool.worker_pids()[1]
    for restarts in range(1, RESTART_BURST + 1):
        os.kill(pid, signal.SIGKILL)
        pid = pool.wait_for(lambda e: e.get("log_format", "").startswith(
            "worker {index} started again") and e["index"] == 1, restarts)[-1]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert pool.proc.wait(timeout=SAFETY_TIMEOUT) == 1
    pool.wait_for(lambda e: "stopping the server" in e.get("log_format", ""))


def test_workers_share_a_socket_passed_by_systemd_and_serve_ftps(
        tmp_path: Path, pools: list[Pool]) -> None:
    """One inherited socket for both workers; the TLS key the parent read serves both,
    on the control port and on an implicit-FTPS port of SO_REUSEPORT sockets."""
    tls = make_tls_files(tmp_path)
    tls.path.chmod(0o600)
    implicit_port = free_port()
    with listening_socket() as inherited:
        pool = start(pools, tmp_path, "server.py", "--tls-cert", str(tls.path),
                     "--implicit-tls-port", str(implicit_port), inherited=inherited)
    sessions, _ = pool.spread(clients=4)
    (tmp_path / "ca.pem").write_bytes(tls.cert_pem)
    pool.root.joinpath("hello.txt").write_bytes(b"over TLS\n")
    urls = [f"ftp://127.0.0.1:{pool.port}/hello.txt",
            f"ftps://127.0.0.1:{implicit_port}/hello.txt"] * 2
    for url in urls:
        fetched = ok(run_cli([require_binary("curl"), "-sS", "--ssl-reqd", "--cacert",
                              str(tmp_path / "ca.pem"), "--user", "alice:secret", url],
                             tmp_path / "home"))
        assert fetched == "over TLS\n"
    for ftp in sessions:
        ftp.quit()


def test_a_haproxy_listener_stays_behind_the_proxy_layer_in_every_worker(
        tmp_path: Path, pools: list[Pool]) -> None:
    port = free_port()
    pool = start(pools, tmp_path, "server.py", "--listen",
                 f"haproxy:tcp:{port}:interface=127.0.0.1", "--proxy-from", "127.0.0.1/32",
                 listen_given=True)
    pool.port = port
    clients = []
    for i in range(CLIENTS):  # PROXY v1 headers naming clients behind the balancer
        sock = socket.create_connection(("127.0.0.1", port), timeout=FTP_TIMEOUT)
        sock.sendall(f"PROXY TCP4 203.0.113.{i + 1} 127.0.0.1 {5000 + i} {port}\r\n".encode())
        assert sock.makefile("rb").readline().startswith(b"220")
        clients.append(sock)
    connects = pool.wait_for(lambda e: e.get("ftpd_event") == "connect", CLIENTS)
    assert {e["peer"] for e in connects} == {f"203.0.113.{i + 1}" for i in range(CLIENTS)}
    assert {e["worker"] for e in connects} == {0, 1}
    for sock in clients:
        sock.close()
