"""The real launcher (server.py) serving from S3 (SeaweedFS) moves 1 GiB each way in
the same flat memory as from disk: uploads go out part by part, downloads come in
ranged reads, nothing holds the whole file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from tests.harness import write_users
from tests.integration.conftest import CLI_TIMEOUT, USERS, cli_env, in_thread, require_binary
from tests.integration.s3_server import S3Server
from tests.integration.test_memory import (
    RSS_LIMIT_KIB,
    SERVER_PY,
    TOTAL,
    drain,
    peak_rss_kib,
    upload,
    wait_until_serving,
)
from tests.integration.tls_helpers import free_port
from twisted_ftpd.fs.storage import Stores

# Slow (1 GiB through each direction, into a real store), like test_memory.py.
pytestmark = pytest.mark.integration


@pytest_twisted.ensureDeferred
async def test_one_gib_each_way_through_s3_in_flat_memory(tmp_path: Path,
                                                          s3_server: S3Server) -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc for the peak RSS")
    curl = require_binary("curl")
    users = tmp_path / "users.db"
    write_users(users, USERS, "elr")
    port = free_port()
    prefix = f"memory-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-u", str(SERVER_PY), "--port", str(port), "--interface", "127.0.0.1",
         "--users", str(users), "--storage", f"s3://{s3_server.bucket}/{prefix}",
         "--storage-endpoint", s3_server.endpoint],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, **s3_server.env()},
    )
    log = None
    try:
        await in_thread(wait_until_serving, proc)
        log = in_thread(drain, proc)

        await in_thread(upload, port)
        fs = Stores(lambda f, *a: f(*a)).locate(f"s3://{s3_server.bucket}/{prefix}", "").fs
        assert fs.info(f"{s3_server.bucket}/{prefix}/huge.bin")["size"] == TOTAL

        result = await in_thread(
            subprocess.run,
            [curl, "-sS", "--user", f"alice:{USERS['alice'][0]}", "-o", "/dev/null",
             "-w", "%{size_download}", f"ftp://127.0.0.1:{port}/huge.bin"],
            env=cli_env(tmp_path / "home"), stdin=subprocess.DEVNULL, capture_output=True,
            timeout=CLI_TIMEOUT * 5,
        )
        assert result.returncode == 0, result.stderr
        assert int(result.stdout) == TOTAL

        assert proc.poll() is None, "server died"
        peak = peak_rss_kib(proc.pid)
        assert peak < RSS_LIMIT_KIB, f"server peak RSS {peak} KiB"
        fs.rm_file(f"{s3_server.bucket}/{prefix}/huge.bin")  # a GiB less on the disk
    finally:
        proc.kill()
        await in_thread(proc.wait, CLI_TIMEOUT)
        if log is not None:
            lines = await log
            print("\n".join(lines[-20:]))
        if proc.stdout is not None:
            proc.stdout.close()
