"""The real launcher (server.py) in its own process moves 1 GiB each way in flat memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from tests.harness import write_users
from tests.integration.conftest import (
    CLI_TIMEOUT,
    FTP_TIMEOUT,
    USERS,
    cli_env,
    in_thread,
    require_binary,
)
from tests.integration.tls_helpers import free_port

# Slow (about 1 GiB through each direction); there is no registered "slow" marker yet.
pytestmark = pytest.mark.integration

MIB = 1024 * 1024
TOTAL = 1024 * MIB
RSS_LIMIT_KIB = 150 * 1024
SERVER_PY = Path(__file__).resolve().parents[2] / "server.py"


class RepeatingReader:
    """A file-like object yielding ``total`` bytes made of one block, produced lazily."""

    def __init__(self, block: bytes, total: int) -> None:
        self.block = block
        self.view = memoryview(block)
        self.remaining = total
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size is None or size <= 0:
            size = len(self.block)
        size = min(size, len(self.block) - self.offset, self.remaining)
        if self.offset == 0 and size == len(self.block):
            chunk = self.block
        else:
            chunk = bytes(self.view[self.offset:self.offset + size])
        self.offset = (self.offset + size) % len(self.block)
        self.remaining -= size
        return chunk


def wait_until_serving(proc: subprocess.Popen) -> list[str]:
    """Read the server's log until it says it is serving; its lines so far."""
    lines: list[str] = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines.append(raw.decode("utf-8", "replace").rstrip())
        if "twisted-ftpd serving" in lines[-1]:
            return lines
    raise AssertionError("server exited before serving:\n" + "\n".join(lines))


def drain(proc: subprocess.Popen) -> list[str]:
    """Keep reading the log so the server never blocks on a full pipe; lines until exit."""
    assert proc.stdout is not None
    return [raw.decode("utf-8", "replace").rstrip() for raw in proc.stdout]


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def upload(port: int) -> None:
    import ftplib

    with ftplib.FTP(timeout=FTP_TIMEOUT) as ftp:
        ftp.connect("127.0.0.1", port)
        ftp.login("alice", USERS["alice"][0])
        reply = ftp.storbinary("STOR huge.bin", RepeatingReader(os.urandom(MIB), TOTAL),
                               blocksize=MIB)
        assert reply.startswith("226"), reply


@pytest_twisted.ensureDeferred
async def test_one_gib_each_way_in_flat_memory(tmp_path: Path) -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc for the peak RSS")
    curl = require_binary("curl")
    root = tmp_path / "root"
    root.mkdir()
    users = tmp_path / "users.db"
    write_users(users, USERS, "elr")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(SERVER_PY), "--port", str(port), "--interface", "127.0.0.1",
         "--root", str(root), "--users", str(users)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    log = None
    try:
        await in_thread(wait_until_serving, proc)
        log = in_thread(drain, proc)

        await in_thread(upload, port)
        assert (root / "huge.bin").stat().st_size == TOTAL

        result = await in_thread(
            subprocess.run,
            [curl, "-sS", "--user", f"alice:{USERS['alice'][0]}", "-o", "/dev/null",
             "-w", "%{size_download}", f"ftp://127.0.0.1:{port}/huge.bin"],
            env=cli_env(tmp_path / "home"), stdin=subprocess.DEVNULL, capture_output=True,
            timeout=CLI_TIMEOUT,
        )
        assert result.returncode == 0, result.stderr
        assert int(result.stdout) == TOTAL

        assert proc.poll() is None, "server died"
        peak = peak_rss_kib(proc.pid)
        assert peak < RSS_LIMIT_KIB, f"server peak RSS {peak} KiB"
    finally:
        proc.kill()
        await in_thread(proc.wait, CLI_TIMEOUT)
        if log is not None:
            await log
        if proc.stdout is not None:
            proc.stdout.close()
