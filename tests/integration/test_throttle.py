"""Throttled sessions with real clients: the bytes still arrive whole, over TLS and in
TYPE A, in both directions. (How fast is the in-memory tests' business, on a Clock.)"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import pytest_twisted

from tests.helpers import ftp_retr
from tests.integration.conftest import in_thread, require_binary, sha256
from tests.integration.tls_helpers import TLSFiles, make_tls_files, stor, tls_session

pytestmark = pytest.mark.integration

RATE = 8 * 1024 * 1024  # bytes/s: a 2 MiB file takes about a quarter of a second


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("throttle"))


@pytest_twisted.ensureDeferred
async def test_throttled_ftps_transfers_arrive_whole(server_factory, tls_files: TLSFiles) -> None:
    server = await server_factory(tls_cert=str(tls_files.path), max_download_rate=RATE,
                                  max_upload_rate=RATE)
    payload = os.urandom(2 * 1024 * 1024)
    text = b"line one\nline two\n" * 20000

    def client() -> tuple[bytes, bytes]:
        with tls_session(server.host, server.port, tls_files.cert_pem) as ftp:
            stor(ftp, "up.bin", payload)
            ftp.storlines("STOR up.txt", io.BytesIO(text))
            lines: list[str] = []
            ftp.retrlines("RETR up.txt", lines.append)
            return ftp_retr(ftp, "up.bin"), "\n".join(lines).encode() + b"\n"

    back, text_back = await in_thread(client)
    assert sha256(back) == sha256(payload)
    assert (server.root / "up.bin").read_bytes() == payload
    assert text_back == text
    assert (server.root / "up.txt").read_bytes() == text  # TYPE A: LF on disk


@pytest_twisted.ensureDeferred
async def test_throttled_curl_download_and_upload(server_factory, tmp_path: Path) -> None:
    curl = require_binary("curl")
    server = await server_factory(max_download_rate=RATE, max_upload_rate=RATE)
    payload = os.urandom(3 * 1024 * 1024)
    (server.root / "f.bin").write_bytes(payload)
    source = tmp_path / "src.bin"
    source.write_bytes(payload[::-1])

    def run() -> bytes:
        import subprocess

        base = f"ftp://alice:secret@{server.host}:{server.port}"
        subprocess.run([curl, "-sS", "-o", str(tmp_path / "got.bin"), f"{base}/f.bin"],
                       check=True, timeout=60)
        subprocess.run([curl, "-sS", "-T", str(source), f"{base}/put.bin"],
                       check=True, timeout=60)
        return (tmp_path / "got.bin").read_bytes()

    assert sha256(await in_thread(run)) == sha256(payload)
    assert (server.root / "put.bin").read_bytes() == payload[::-1]
