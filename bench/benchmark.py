#!/usr/bin/env python3
"""twisted-ftpd side by side with pyftpdlib and vsftpd, on loopback, from C clients.

    python3 bench/benchmark.py [--quick] [--reps 3] [--only retr,logins] [--json FILE]

Each workload runs against every server in turn, interleaved (A B C A B C ...), each run
on a freshly started server, with the files on tmpfs (/dev/shm). Where the machine has
two cores or more, the servers run on all but the last core and the clients on the last
(taskset). The clients are curl (one large transfer) and bench/ftpload.c, a small C load
generator compiled here with gcc (many sessions from one poll() loop): a Python client
would be slower than the servers it measures.

Servers: twisted-ftpd from this checkout; pyftpdlib when it is importable (pip install
pyftpdlib); vsftpd when /usr/sbin/vsftpd exists (apt-get install vsftpd; it must run
as root for anonymous logins); Pure-FTPd with --pure-ftpd BINARY (dpkg -x of its .deb
will do); and in the login and small-file workloads "Twisted floor"
(bench/twisted_floor.py), fixed replies on Twisted's own reactor and TCP transport, the
least any FTP server on Twisted pays for a login (or for a small download, keeping disk
calls off the reactor). Ratios are to pyftpdlib's median in the same run. README.md,
"Performance", says what each workload and anchor compares.

Prints a Markdown table (median, min-max over the repetitions, ratio to pyftpdlib) and
writes every run to a JSON file. Timings drift with what else the machine is doing;
ratios from one run drift much less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD_USER, PASSWORD = "bench", "bench-secret"
ANONYMOUS = ("anonymous", "bench@")
START_TIMEOUT = 30.0  # seconds for a server to greet
RUN_TIMEOUT = 600.0  # for one client run

PYFTPDLIB_SERVER = r"""
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer
port, root, cert, low, high = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
authorizer = DummyAuthorizer()
authorizer.add_user(sys.argv[6], sys.argv[7], root, perm="elradfmw")
authorizer.add_anonymous(root, perm="elradfmw")
handler = TLS_FTPHandler
handler.certfile = cert
handler.authorizer = authorizer
handler.passive_ports = range(int(low), int(high) + 1)
server = FTPServer(("127.0.0.1", int(port)), handler)
server.max_cons = 0
server.max_cons_per_ip = 0
server.serve_forever()
"""

VSFTPD_CONFIG = """\
listen=YES
listen_address=127.0.0.1
listen_port={port}
anonymous_enable=YES
anon_root={root}
no_anon_password=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
write_enable=YES
local_enable={local}
pasv_min_port={low}
pasv_max_port={high}
max_clients=0
max_per_ip=0
xferlog_enable=NO
use_localtime=NO
seccomp_sandbox=NO
background=NO
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=NO
force_anon_data_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
rsa_cert_file={cert}
rsa_private_key_file={cert}
"""


# -- the machine --------------------------------------------------------------------------


def cpu_split(workers: int) -> tuple[list[int], list[int]]:
    """(server cores, client cores): the last core for clients where there are two or
    more; a server of several workers keeps the rest, or all of them on two cores."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or not shutil.which("taskset"):
        return cores, cores
    server = cores[:-1] if len(cores) - 1 >= workers else cores
    return server, cores[-1:]


def pinned(cores: list[int], command: list[str]) -> list[str]:
    if len(cores) == len(os.sched_getaffinity(0)) or not shutil.which("taskset"):
        return command
    return ["taskset", "-c", ",".join(map(str, cores)), *command]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {"cpus": len(os.sched_getaffinity(0)), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


# -- a server's processes: CPU time and memory, from /proc ---------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (vsftpd forks per session, --workers per core)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def own_ticks(pid: int) -> int:
    """utime + stime of one process (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def pss_kib(pid: int) -> int:
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


class Watch:
    """The server's CPU time and peak PSS while in use, sampled every 20 ms over all its
    processes: vsftpd's per-session processes are reaped without adding their time to
    their parent's, so the last sample of each is what counts (a process that lives
    less than 20 ms is missed)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib = pid, 0
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for member in tree(self.pid):
            with contextlib.suppress(OSError, IndexError, ValueError):
                self._last[member] = own_ticks(member)
                self._first.setdefault(member, self._last[member] if not self._thread.is_alive()
                                       else 0)
        self.peak_kib = max(self.peak_kib, pss_kib(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> Watch:
        self._sample()  # the processes there before start from their time then
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu_seconds(self) -> float:
        return sum(self._last[p] - self._first.get(p, 0) for p in self._last) / TICKS

    @property
    def peak_mb(self) -> float:
        return self.peak_kib / 1024


# -- the files served -----------------------------------------------------------------------


@dataclass
class Sizes:
    big: int = GiB  # RETR, STOR, FTPS RETR, peak memory
    medium: int = 10 * MiB  # each of the concurrent sessions' RETR
    small_files: int = 2000  # 4 KiB files in one session
    logins: int = 500  # sequential logins
    sessions: int = 200  # concurrent sessions
    idle: int = 1000  # idle logged-in sessions
    probes: int = 5  # fresh login+RETR during the idle sessions (4 times as many logins
    # during the login flood)
    flood: int = 300  # connections sending wrong passwords


QUICK = Sizes(big=128 * MiB, medium=MiB, small_files=300, logins=60, sessions=50, idle=100,
              probes=3, flood=50)
SMOKE = Sizes(big=2 * MiB, medium=64 * KiB, small_files=10, logins=3, sessions=4, idle=4,
              probes=1, flood=4)


@dataclass
class Site:
    """The served tree on tmpfs, the users file, the certificate, and a passive range."""

    base: Path
    sizes: Sizes
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.base / "root"
        (self.root / "small").mkdir(parents=True)
        upload = self.root / "up"
        upload.mkdir()
        upload.chmod(0o777)  # vsftpd's anonymous uploads run as its ftp user
        write_file(self.root / "big.bin", self.sizes.big)
        write_file(self.root / "medium.bin", self.sizes.medium)
        write_file(self.base / "upload.bin", self.sizes.big)
        block = os.urandom(4 * KiB)
        for i in range(self.sizes.small_files):
            (self.root / "small" / f"f{i:04d}").write_bytes(block)
        self.root.chmod(0o755)
        from twisted_ftpd import cert
        from twisted_ftpd.auth import passwords, userdb

        self.cert = self.base / "cert.pem"
        cert.write_pem(self.cert, *cert.make_self_signed("localhost", alt_names=["127.0.0.1"]))
        self.users = self.base / "users.db"
        record = userdb.UserRecord(PASSWORD_USER, passwords.hash_password(PASSWORD),
                                   "elradfmw", "")
        self.users.write_text(f"anonymous::elradfmw:\n{userdb.format_record(record)}\n")
        self.users.chmod(0o600)


def write_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for offset in range(0, size, MiB):
            f.write(block[: min(MiB, size - offset)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerKind:
    name: str
    command: Callable[[Site, int, tuple[int, int]], list[str]]
    workers: int = 1
    password_logins: bool = True
    note: str = ""
    login: tuple[str, str] = ANONYMOUS  # for every workload but the login ones
    workloads: tuple[str, ...] = ()  # the only workloads it serves; () means all


def twisted_ftpd(workers: int = 1) -> Callable[[Site, int, tuple[int, int]], list[str]]:
    def command(site: Site, port: int, passive: tuple[int, int]) -> list[str]:
        return [sys.executable, str(REPO / "server.py"), "--port", str(port), "--interface",
                "127.0.0.1", "--root", str(site.root), "--users", str(site.users),
                "--passive-ports", f"{passive[0]}-{passive[1]}", "--max-connections", "0",
                "--max-connections-per-ip", "0", "--ban-after", "0", "--tls-cert",
                str(site.cert), "--workers", str(workers)]

    return command


def pyftpdlib(site: Site, port: int, passive: tuple[int, int]) -> list[str]:
    return [sys.executable, "-c", PYFTPDLIB_SERVER, str(port), str(site.root), str(site.cert),
            str(passive[0]), str(passive[1]), PASSWORD_USER, PASSWORD]


def vsftpd(site: Site, port: int, passive: tuple[int, int]) -> list[str]:
    config = site.base / f"vsftpd-{port}.conf"
    config.write_text(VSFTPD_CONFIG.format(port=port, root=site.root, cert=site.cert,
                                           low=passive[0], high=passive[1], local="NO"))
    return ["/usr/sbin/vsftpd", str(config)]


def twisted_floor(site: Site, port: int, passive: tuple[int, int]) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "twisted_floor.py"), str(port), str(site.root),
            f"{passive[0]}-{passive[1]}"]


def pure_ftpd(binary: str) -> Callable[[Site, int, tuple[int, int]], list[str]]:
    """Pure-FTPd (``dpkg -x`` of Debian's package will do): its anonymous root is the
    ``ftp`` account's home, so it serves our root to a PureDB user instead, as uid ftp."""
    pure_pw = shutil.which("pure-pw") or str(Path(binary).parent.parent / "bin" / "pure-pw")

    def command(site: Site, port: int, passive: tuple[int, int]) -> list[str]:
        database = site.base / "pureftpd.pdb"
        if not database.exists():
            # pure-pw's own argon2id hashes take seconds each (t=511), which would make
            # every workload a login benchmark; SHA-512 crypt is what /etc/shadow holds.
            digest = subprocess.run(["openssl", "passwd", "-6", PASSWORD], check=True,
                                    capture_output=True, text=True).stdout.strip()
            ftp = pwd.getpwnam("ftp")
            passwd = site.base / "pureftpd.passwd"
            passwd.write_text(f"{PASSWORD_USER}:{digest}:{ftp.pw_uid}:{ftp.pw_gid}::"
                              f"{site.root}/./::::::::::::\n")
            subprocess.run([pure_pw, "mkdb", str(database), "-f", str(passwd)], check=True,
                           capture_output=True)
        return [binary, "-S", f"127.0.0.1,{port}", "-l", f"puredb:{database}", "-E", "-A",
                "-H", "-c", "5000", "-C", "5000", "-p", f"{passive[0]}:{passive[1]}", "-Y", "1",
                "-2", str(site.cert)]

    return command


def available_servers(names: list[str] | None, workers_variant: bool,
                      pure_ftpd_binary: str | None = None) -> list[ServerKind]:
    kinds = [ServerKind("twisted-ftpd", twisted_ftpd(),
                        note="stored scrypt hashes (users.db)")]
    if workers_variant:
        kinds.append(ServerKind("twisted-ftpd --workers 2", twisted_ftpd(2), workers=2))
    try:
        import pyftpdlib as _  # noqa: F401

        kinds.append(ServerKind("pyftpdlib", pyftpdlib,
                                note="DummyAuthorizer: compares plain-text passwords"))
    except ImportError:
        pass
    kinds.append(ServerKind("Twisted floor", twisted_floor, workloads=FLOOR_WORKLOADS,
                            note="fixed replies on Twisted's reactor and TCP transport "
                                 "(bench/twisted_floor.py): logins and small files only"))
    if os.path.exists("/usr/sbin/vsftpd") and os.geteuid() == 0:
        kinds.append(ServerKind("vsftpd", vsftpd, password_logins=False,
                                note="anonymous only (local users would need PAM accounts)"))
    pure = pure_ftpd_binary or shutil.which("pure-ftpd")
    if pure and os.path.exists(pure) and os.geteuid() == 0:
        kinds.append(ServerKind("Pure-FTPd", pure_ftpd(pure), login=(PASSWORD_USER, PASSWORD),
                                note="a PureDB user (SHA-512 crypt hash) for every workload; "
                                     "no anonymous root of ours"))
    if names:
        kinds = [k for k in kinds if k.name in names]
    return kinds


PASSIVE_PORTS = 400


def server_environment() -> dict[str, str]:
    """The servers' environment: ours, but with bytecode caches as an installed server
    has them. Without them (PYTHONDONTWRITEBYTECODE, as some shells and CI set) a
    Python server compiles its modules at every start, and the memory that leaves
    free is reused by the first sessions: 1000 idle sessions then looked 0.8 KB a
    session smaller than they are."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# What bench/twisted_floor.py serves.
FLOOR_WORKLOADS = ("small_files", "anonymous_logins", "password_logins")


class Running:
    """A started server: its pid, port, and a stop."""

    def __init__(self, kind: ServerKind, site: Site, cores: list[int]) -> None:
        self.kind = kind
        self.port = free_port()
        # A passive range of its own, of PASSIVE_PORTS ports: Pure-FTPd admits half as
        # many clients as its range has ports, and 200 sessions must all get in.
        low = 20000 + (self.port % 100) * PASSIVE_PORTS
        high = low + PASSIVE_PORTS - 1
        self.proc = subprocess.Popen(pinned(cores, kind.command(site, self.port, (low, high))),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     env=server_environment())
        self.pid = self.proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while not self._greets():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{kind.name} did not start")
            time.sleep(0.05)

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                return s.recv(4).startswith(b"220")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


# -- the clients ----------------------------------------------------------------------------


def build_ftpload(directory: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("bench/benchmark.py needs gcc to build bench/ftpload.c "
                         "(apt-get install gcc)")
    binary = directory / "ftpload"
    subprocess.run([gcc, "-O2", "-o", str(binary), str(REPO / "bench" / "ftpload.c")],
                   check=True)
    return binary


@dataclass
class Clients:
    """The clients of one server: on ``cores``, logging in as ``login`` (anonymous, or the
    password user where a server has no anonymous root of ours)."""

    ftpload: Path
    cores: list[int]
    login: tuple[str, str] = ANONYMOUS

    def ftpload_command(self, port: int, *args: str, user: str | None = None,
                        password: str | None = None) -> list[str]:
        return pinned(self.cores, [str(self.ftpload), "-p", str(port), "-u",
                                   user or self.login[0], "-w", password or self.login[1],
                                   *args])

    def load(self, port: int, *args: str, user: str | None = None,
             password: str | None = None) -> dict[str, Any]:
        result = subprocess.run(
            self.ftpload_command(port, *args, user=user, password=password),
            capture_output=True, text=True, timeout=RUN_TIMEOUT)
        lines = result.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"ftpload failed: {result.stderr.strip()[:500]}")
        return json.loads(lines[-1])

    def curl(self, url: str, *args: str) -> float:
        """Seconds for one curl transfer (which must succeed)."""
        start = time.perf_counter()
        result = subprocess.run(pinned(self.cores, ["curl", "-sS", "--fail", "--user",
                                                    ":".join(self.login), *args, url]),
                                capture_output=True, text=True, timeout=RUN_TIMEOUT)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"curl {url}: {result.stderr.strip()[:300]}")
        return seconds


# -- the workloads --------------------------------------------------------------------------

Metrics = dict[str, float]


def retr(server: Running, site: Site, clients: Clients) -> Metrics:
    with Watch(server.pid) as watch:
        seconds = clients.curl(f"ftp://127.0.0.1:{server.port}/big.bin", "-o", os.devnull)
    size = site.sizes.big
    return {"MB/s": size / 1e6 / seconds, "server CPU s/GiB": watch.cpu_seconds / (size / GiB),
            "peak PSS MB": watch.peak_mb}


def stor(server: Running, site: Site, clients: Clients) -> Metrics:
    target = site.root / "up" / "upload.bin"
    with Watch(server.pid) as watch:
        seconds = clients.curl(f"ftp://127.0.0.1:{server.port}/up/upload.bin", "-T",
                               str(site.base / "upload.bin"))
    used = watch.cpu_seconds
    stored = target.stat().st_size
    target.unlink()
    if stored != site.sizes.big:
        raise RuntimeError(f"stored {stored} bytes of {site.sizes.big}")
    return {"MB/s": site.sizes.big / 1e6 / seconds,
            "server CPU s/GiB": used / (site.sizes.big / GiB)}


def ftps_retr(server: Running, site: Site, clients: Clients) -> Metrics:
    with Watch(server.pid) as watch:
        seconds = clients.curl(f"ftp://127.0.0.1:{server.port}/big.bin", "--ssl-reqd",
                               "--insecure", "-o", os.devnull)
    return {"MB/s": site.sizes.big / 1e6 / seconds,
            "server CPU s/GiB": watch.cpu_seconds / (site.sizes.big / GiB)}


def small_files(server: Running, site: Site, clients: Clients) -> Metrics:
    n = site.sizes.small_files
    with Watch(server.pid) as watch:
        result = clients.load(server.port, "-k", str(n), "-f", "small/f%04d")
    return {"files/s": n / result["seconds"], "server CPU µs/file": watch.cpu_seconds / n * 1e6,
            "errors": result["errors"]}


def anonymous_logins(server: Running, site: Site, clients: Clients) -> Metrics:
    if clients.login != ANONYMOUS:
        raise NotMeasured("no anonymous root of ours")
    with Watch(server.pid) as watch:
        result = clients.load(server.port, "-t", str(site.sizes.logins), "-k", "0")
    return login_metrics(result, watch)


def password_logins(server: Running, site: Site, clients: Clients) -> Metrics:
    if not server.kind.password_logins:
        raise NotMeasured("no password accounts")
    with Watch(server.pid) as watch:
        result = clients.load(server.port, "-t", str(site.sizes.logins), "-k", "0",
                              user=PASSWORD_USER, password=PASSWORD)
    return login_metrics(result, watch)


def login_metrics(result: dict[str, Any], watch: Watch) -> Metrics:
    return {"logins/s": result["sessions"] / result["seconds"],
            "server CPU µs/login": watch.cpu_seconds / max(result["sessions"], 1) * 1e6,
            "errors": result["errors"]}


def sessions(server: Running, site: Site, clients: Clients) -> Metrics:
    n = site.sizes.sessions
    result = clients.load(server.port, "-c", str(n), "-t", str(n), "-k", "1", "-f", "medium.bin",
                          "-s", str(min(n, 250)))
    return {"aggregate MB/s": result["bytes"] / 1e6 / result["seconds"],
            "p99 s": result["p99"], "errors": result["errors"]}


def idle_sessions(server: Running, site: Site, clients: Clients) -> Metrics:
    n = site.sizes.idle
    before = pss_kib(server.pid)
    command = clients.ftpload_command(server.port, "-i", "-c", str(n), "-s", str(min(n, 250)),
                                      "-k", "1", "-f", "small/f0000")
    load = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert load.stdin is not None and load.stdout is not None
    watchdog = threading.Timer(RUN_TIMEOUT, load.kill)  # a read below must not hang
    watchdog.start()
    try:
        if load.stdout.readline().strip() != "ready":
            raise RuntimeError("the idle sessions did not all log in")
        during = pss_kib(server.pid)
        latencies = []
        for _ in range(site.sizes.probes):
            load.stdin.write("probe\n")
            load.stdin.flush()
            answer = load.stdout.readline()
            if not answer:
                raise RuntimeError("the load generator ended during the idle sessions")
            latencies.append(float(answer))
        load.stdin.close()
        summary = json.loads(load.stdout.read().strip().splitlines()[-1])
    finally:
        watchdog.cancel()
        if load.poll() is None:
            load.kill()
        load.wait()
    if not latencies or min(latencies) < 0:
        raise RuntimeError("a fresh login+RETR failed during the idle sessions")
    return {"KB per session": (during - before) * 1.024 / n,
            "fresh login+RETR ms": statistics.median(latencies) * 1000,
            "errors": summary["errors"]}


FLOOD_ADDRESS = "127.0.0.2"  # where the wrong passwords come from


def login_flood(server: Running, site: Site, clients: Clients) -> Metrics:
    """A real user's password login from 127.0.0.1, idle and while ``flood`` connections
    from 127.0.0.2 send wrong passwords as fast as they are answered (the server's
    password checks must stay fair, and its memory bounded)."""
    if not server.kind.password_logins:
        raise NotMeasured("no password accounts")

    def probe() -> dict[str, Any]:
        return clients.load(server.port, "-t", str(site.sizes.probes * 4), "-k", "0",
                            user=PASSWORD_USER, password=PASSWORD)

    idle = probe()
    flood = subprocess.Popen(
        clients.ftpload_command(server.port, "-a", FLOOD_ADDRESS, "-c", str(site.sizes.flood),
                                "-t", "100000000", "-k", "0", user=PASSWORD_USER,
                                password="wrong"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Watch(server.pid) as watch:
            time.sleep(1.0)  # let the flood fill the server's queue of password checks
            busy = probe()
    finally:
        flood.kill()
        flood.wait()
    return {"idle login ms": idle["p50"] * 1000, "login under flood ms": busy["p50"] * 1000,
            "worst login under flood ms": busy["max"] * 1000, "peak PSS MB": watch.peak_mb,
            "errors": idle["errors"] + busy["errors"]}


class NotMeasured(Exception):
    """This server cannot run this workload (said in the results)."""


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    run: Callable[[Running, Site, Clients], Metrics]
    only: tuple[str, ...] = ()  # server names; () means all but the --workers variant


WORKLOADS = [
    Workload("retr", "RETR big file (curl)", retr),
    Workload("stor", "STOR big file (curl)", stor),
    Workload("small_files", "4 KiB files in one session (ftpload)", small_files),
    Workload("anonymous_logins", "anonymous logins, sequential (ftpload)", anonymous_logins),
    Workload("password_logins", "password logins, sequential (ftpload)", password_logins),
    Workload("sessions", "concurrent sessions, each RETR medium file (ftpload)", sessions,
             only=("twisted-ftpd", "twisted-ftpd --workers 2", "pyftpdlib", "vsftpd",
                   "Pure-FTPd")),
    Workload("idle", "idle logged-in sessions (ftpload)", idle_sessions),
    Workload("ftps_retr", "FTPS RETR big file (curl)", ftps_retr),
    Workload("login_flood", "password login during a flood of wrong passwords (ftpload)",
             login_flood),
]


def applies(workload: Workload, kind: ServerKind) -> bool:
    if kind.workloads and workload.name not in kind.workloads:
        return False
    if workload.only:
        return kind.name in workload.only
    return kind.workers == 1


# -- running and reporting ------------------------------------------------------------------


def run_all(kinds: list[ServerKind], workloads: list[Workload], site: Site, clients_for:
            Callable[[ServerKind], Clients], reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for workload in workloads:
        runs: dict[str, list[Metrics]] = {}
        failures: dict[str, str] = {}
        for rep in range(reps):
            for kind in kinds:
                if not applies(workload, kind) or kind.name in failures:
                    continue
                print(f"[{workload.name} {rep + 1}/{reps}] {kind.name}", file=sys.stderr,
                      flush=True)
                server = None
                try:
                    server = Running(kind, site, cpu_split(kind.workers)[0])
                    measured = workload.run(server, site, clients_for(kind))
                    runs.setdefault(kind.name, []).append(measured)
                except (NotMeasured, RuntimeError, subprocess.TimeoutExpired, OSError,
                        ValueError) as e:
                    failures[kind.name] = str(e) or type(e).__name__
                finally:
                    if server is not None:
                        server.stop()
        results[workload.name] = summarise(workload, runs, failures)
    return results


def summarise(workload: Workload, runs: dict[str, list[Metrics]],
              failures: dict[str, str]) -> dict[str, Any]:
    metrics: dict[str, dict[str, Any]] = {}
    for server, measured in runs.items():
        for name in measured[0]:
            values = [m[name] for m in measured]
            metrics.setdefault(name, {})[server] = {
                "median": statistics.median(values), "min": min(values), "max": max(values),
                "runs": values}
    ratios = {name: {server: (stats["median"] / per_server["pyftpdlib"]["median"]
                              if per_server["pyftpdlib"]["median"] else None)
                     for server, stats in per_server.items()}
              for name, per_server in metrics.items()
              if name != "errors" and "pyftpdlib" in per_server}
    return {"title": workload.title, "metrics": metrics, "ratios": ratios,
            "not_measured": failures}


def number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def markdown(results: dict[str, Any], servers: list[str]) -> str:
    lines = ["| workload | metric | " + " | ".join(servers) + " |",
             "|---|---|" + "---|" * len(servers)]
    for result in results.values():
        for metric, per_server in result["metrics"].items():
            cells = []
            for server in servers:
                stats = per_server.get(server)
                if stats is None:
                    cells.append("n/a" if server in result["not_measured"] else "")
                    continue
                cell = number(stats["median"])
                if stats["min"] != stats["max"]:
                    cell += f" ({number(stats['min'])}-{number(stats['max'])})"
                ratio = result["ratios"].get(metric, {}).get(server)
                if ratio is not None and server != "pyftpdlib":
                    cell += f" ×{ratio:.2f}"
                cells.append(cell)
            lines.append(f"| {result['title']} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    units = {"K": KiB, "M": MiB, "G": GiB}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and one repetition: about two minutes")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest sizes, one repetition (what the test suite runs)")
    parser.add_argument("--reps", type=int, help="repetitions of each workload (default 3)")
    parser.add_argument("--only", help="comma-separated workloads: "
                        + ",".join(w.name for w in WORKLOADS))
    parser.add_argument("--servers", help="comma-separated server names (default: all found)")
    parser.add_argument("--no-workers", action="store_true",
                        help="leave out twisted-ftpd --workers 2 (measured on 'sessions')")
    parser.add_argument("--big", type=parse_size, help="the big file's size (1G)")
    parser.add_argument("--medium", type=parse_size, help="each concurrent session's file (10M)")
    parser.add_argument("--small-files", type=int, help="4 KiB files in one session (2000)")
    parser.add_argument("--logins", type=int, help="sequential logins (500)")
    parser.add_argument("--sessions", type=int, help="concurrent sessions (200)")
    parser.add_argument("--idle", type=int, help="idle sessions (1000)")
    parser.add_argument("--flood", type=int, help="connections sending wrong passwords (300)")
    parser.add_argument("--pure-ftpd", metavar="BINARY",
                        help="Pure-FTPd's pure-ftpd (default: on the PATH; pure-pw beside it "
                             "in ../bin or on the PATH), e.g. from dpkg -x of its .deb")
    parser.add_argument("--json", default="benchmark.json", help="where to write every run")
    parser.add_argument("--tmp", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the served files go (default /dev/shm, a tmpfs)")
    args = parser.parse_args(argv)

    # SIGTERM ends the run as Ctrl-C does: the server running now is stopped, not left.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    preset = SMOKE if args.smoke else QUICK if args.quick else Sizes()
    sizes = Sizes(**{name: getattr(args, name, None) or getattr(preset, name)
                     for name in ("big", "medium", "small_files", "logins", "sessions",
                                  "idle", "probes", "flood")})
    reps = args.reps or (1 if args.smoke or args.quick else 3)
    workloads = WORKLOADS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {w.name for w in WORKLOADS}
        if unknown:
            parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
        workloads = [w for w in WORKLOADS if w.name in wanted]
    kinds = available_servers(args.servers.split(",") if args.servers else None,
                              not args.no_workers, args.pure_ftpd)
    if not kinds:
        parser.error("no server to measure")

    with tempfile.TemporaryDirectory(prefix="ftpd-bench-", dir=args.tmp) as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        ftpload = build_ftpload(base)
        site = Site(base, sizes)

        def clients_for(kind: ServerKind) -> Clients:
            return Clients(ftpload, cpu_split(kind.workers)[1], kind.login)

        started = time.time()
        results = run_all(kinds, workloads, site, clients_for, reps)
    servers = [k.name for k in kinds]
    report = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": time.time() - started,
        "settings": {"reps": reps, "sizes": vars(sizes),
                     "server_cores": cpu_split(1)[0], "client_cores": cpu_split(1)[1],
                     "files_on": args.tmp},
        "servers": {k.name: k.note for k in kinds},
        "workloads": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results, servers))
    print(f"\n{report['machine']['cpus']} CPUs ({report['machine']['cpu']}), "
          f"{reps} repetition(s); sizes {vars(sizes)}; all runs in {args.json}")


if __name__ == "__main__":
    main()
