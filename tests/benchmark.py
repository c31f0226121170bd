"""Throughput and latency benchmark: twisted-ftpd against pyftpdlib, on loopback only.

    python3 tests/benchmark.py [--size-mib 256] [--runs 5] [--small 200]

Starts both servers as subprocesses on 127.0.0.1, then with Python's ftplib
measures: download and upload of one large file (MB/s, median of the runs) and
the time for many tiny downloads in one session (where Nagle's algorithm or a
slow reply path shows). pyftpdlib is compared only when it is installed
(``pip install pyftpdlib``). Not part of the test suite: timings vary by machine.
"""

from __future__ import annotations

import argparse
import ftplib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BLOCK = 1024 * 1024

PYFTPDLIB_SERVER = """
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
authorizer = DummyAuthorizer()
authorizer.add_anonymous(sys.argv[2], perm="elradfmw")
FTPHandler.authorizer = authorizer
server = FTPServer(("127.0.0.1", int(sys.argv[1])), FTPHandler)
print("serving", flush=True)
server.serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(command: list[str], ready_marker: str) -> Iterator[None]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if ready_marker in line:
                break
        else:
            raise RuntimeError(f"{command[1]} did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def twisted_ftpd(port: int, root: Path, users: Path) -> list[str]:
    return [sys.executable, str(REPO / "server.py"), "--port", str(port), "--interface",
            "127.0.0.1", "--root", str(root), "--users", str(users)]


def pyftpdlib(port: int, root: Path, users: Path) -> list[str]:
    return [sys.executable, "-c", PYFTPDLIB_SERVER, str(port), str(root)]


class Blocks:
    """A file-like object producing ``size`` bytes lazily, for uploads."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(BLOCK)

    def read(self, n: int = BLOCK) -> bytes:
        n = min(n, self.left, BLOCK)
        self.left -= n
        return self.block[:n]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(port: int, size: int, runs: int, small: int) -> dict[str, float]:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=60)
    ftp.login("anonymous", "bench@")
    ftp.voidcmd("TYPE I")
    sink = bytearray(0)

    def discard(data: bytes) -> None:
        sink[:] = b""

    downloads = [timed(lambda: ftp.retrbinary("RETR big.bin", discard, BLOCK))
                 for _ in range(runs)]
    uploads = [timed(lambda i=i: ftp.storbinary(f"STOR up{i}.bin", Blocks(size), BLOCK))
               for i in range(runs)]
    tiny = timed(lambda: [ftp.retrbinary("RETR tiny.txt", discard) for _ in range(small)])
    ftp.quit()
    mib = size / BLOCK
    return {
        "RETR MiB/s": mib / statistics.median(downloads),
        "STOR MiB/s": mib / statistics.median(uploads),
        "tiny RETR ms": tiny / small * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=200)
    args = parser.parse_args()
    size = args.size_mib * BLOCK
    servers = {"twisted-ftpd": (twisted_ftpd, "twisted-ftpd serving")}
    try:
        import pyftpdlib as _  # noqa: F401

        servers["pyftpdlib"] = (pyftpdlib, "serving")
    except ImportError:
        print("pyftpdlib is not installed; measuring twisted-ftpd alone")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        with open(root / "big.bin", "wb") as f:
            block = os.urandom(BLOCK)
            for _ in range(args.size_mib):
                f.write(block)
        (root / "tiny.txt").write_bytes(b"x" * 100)
        users = Path(tmp) / "users.db"
        users.write_text("anonymous::elradfmw:\n")
        results = {}
        for name, (command, marker) in servers.items():
            port = free_port()
            with running(command(port, root, users), marker):
                results[name] = measure(port, size, args.runs, args.small)
    metrics = list(next(iter(results.values())))
    print(f"{'':14}" + "".join(f"{m:>15}" for m in metrics))
    for name, values in results.items():
        print(f"{name:14}" + "".join(f"{values[m]:>15.1f}" for m in metrics))


if __name__ == "__main__":
    main()
