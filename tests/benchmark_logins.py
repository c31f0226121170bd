"""Login latency under a flood of bad logins, on loopback only.

    python3 tests/benchmark_logins.py [--flood 300] [--seconds 10] [--probes 20] [--defaults]

Starts ``server.py`` as a subprocess on 127.0.0.1 (production password cost; bans
and connection limits off so the flood keeps coming, unless ``--defaults``), then
measures a real user's
login from 127.0.0.1: first idle, then while ``--flood`` threads send wrong
passwords from 127.0.0.2 as fast as the server answers them. Prints the median and
worst login time of each phase and the server's peak memory (VmHWM). Not part of
the test suite: timings vary by machine.
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
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from twisted_ftpd.auth import passwords, userdb  # noqa: E402

ATTACKER = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def login_seconds(port: int) -> float:
    start = time.perf_counter()
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=60)
        ftp.login("alice", "secret")
        elapsed = time.perf_counter() - start
        ftp.quit()
    return elapsed


def attack(port: int, stop: threading.Event, counts: dict[str, int], lock: threading.Lock) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60,
                                          source_address=(ATTACKER, 0)) as sock:
                reader = sock.makefile("rb")
                reader.readline()
                while not stop.is_set():
                    sock.sendall(b"USER alice\r\nPASS wrong\r\n")
                    reader.readline()  # 331
                    code = reader.readline()[:3].decode() or "eof"
                    with lock:
                        counts[code] = counts.get(code, 0) + 1
                    if code != "530":
                        break
        except OSError:
            with lock:
                counts["error"] = counts.get("error", 0) + 1


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phase(name: str, times: list[float]) -> None:
    print(f"{name:>12}: median {statistics.median(times) * 1000:7.1f} ms, "
          f"worst {max(times) * 1000:7.1f} ms over {len(times)} logins")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=300, help="parallel attacking connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the flood lasts")
    parser.add_argument("--probes", type=int, default=20, help="real logins per phase")
    parser.add_argument("--defaults", action="store_true",
                        help="keep the default bans and connection limits on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.db"
        users.write_text(userdb.format_record(userdb.UserRecord(
            "alice", passwords.hash_password("secret"), "elr", "")) + "\n")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(REPO / "server.py"), "--port", str(port), "--interface",
             "127.0.0.1", "--root", str(Path(tmp) / "root"), "--users", str(users),
             *([] if args.defaults else ["--ban-after", "0", "--max-connections", "0",
                                         "--max-connections-per-ip", "0"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            phase("idle", [login_seconds(port) for _ in range(args.probes)])
            idle_rss = peak_rss_mib(server.pid)
            stop, lock, counts = threading.Event(), threading.Lock(), {}
            flood = [threading.Thread(target=attack, args=(port, stop, counts, lock), daemon=True)
                     for _ in range(args.flood)]
            for thread in flood:
                thread.start()
            time.sleep(1.0)  # let the flood fill the queue
            deadline = time.monotonic() + args.seconds
            busy: list[float] = []
            while time.monotonic() < deadline or len(busy) < args.probes:
                busy.append(login_seconds(port))
            stop.set()
            phase("under flood", busy)
            print(f"{'replies':>12}: {dict(sorted(counts.items()))}")
            print(f"{'server RSS':>12}: {idle_rss:.0f} MiB idle, {peak_rss_mib(server.pid):.0f} "
                  "MiB peak")
        finally:
            server.terminate()
            server.wait(30)
    os._exit(0)  # the flood's threads may still be blocked in a read


if __name__ == "__main__":
    main()
