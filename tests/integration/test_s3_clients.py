"""Real clients (ftplib, lftp, curl, Twisted's FTPClient) against a server whose homes
live in a real S3 server (SeaweedFS): login, MKD, a 20 MB upload, LIST, download and
compare, a resumed download, rename, delete, RMD; then what the bucket holds."""

from __future__ import annotations

import ftplib
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import ClientCreator
from twisted.protocols.ftp import FTPClient

from tests.integration.conftest import (
    Collector,
    ListParser,
    file_sha256,
    in_thread,
    lftp_script,
    require_binary,
    run_cli,
    sha256,
)
from tests.integration.s3_server import S3Server
from twisted_ftpd.fs.storage import Stores

pytestmark = pytest.mark.integration

SIZE = 20 * 1024 * 1024
RESUME_AT = 12_345_678
_prefixes = itertools.count()


class S3Site:
    """A server on ``s3://BUCKET/PREFIX`` and a direct view of that prefix in the store."""

    def __init__(self, server: Any, s3: S3Server, prefix: str) -> None:
        self.server = server
        self.home = Stores(lambda f, *a: f(*a)).locate(f"s3://{s3.bucket}/{prefix}", "")
        self.bucket = s3.bucket
        self.prefix = prefix

    def keys(self) -> list[str]:
        found = self.home.fs.find(self.home.root, withdirs=False)
        return sorted(k[len(self.home.root) + 1:] for k in found)

    def pending_uploads(self) -> list[str]:
        found = self.home.fs.call_s3("list_multipart_uploads", Bucket=self.bucket,
                                     Prefix=self.prefix + "/")
        return [upload["Key"] for upload in found.get("Uploads", [])]

    def after_scenario(self) -> None:
        """The bucket holds only what the scenario left: the kept copy, no upload."""
        assert self.keys() == ["kept.bin"]
        assert self.pending_uploads() == []


@pytest_twisted.async_yield_fixture
async def site(server_factory, s3_server: S3Server):
    prefix = f"clients{next(_prefixes)}-{os.getpid()}"
    server = await server_factory(storage=f"s3://{s3_server.bucket}/{prefix}")
    yield S3Site(server, s3_server, prefix)


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("payload") / "payload.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


# -- ftplib -----------------------------------------------------------------------------------


def ftplib_scenario(site: S3Site, payload: Path) -> None:
    data = payload.read_bytes()
    with site.server.session() as ftp:
        assert ftp.mkd("dir") == "/dir"
        ftp.cwd("dir")
        with open(payload, "rb") as f:
            assert ftp.storbinary("STOR big.bin", f, blocksize=256 * 1024).startswith("226")
        assert ftp.size("big.bin") == SIZE
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert len(lines) == 1 and lines[0].endswith(" big.bin") and f" {SIZE} " in lines[0]
        facts = dict(ftp.mlsd())
        assert facts["big.bin"]["type"] == "file" and int(facts["big.bin"]["size"]) == SIZE
        chunks: list[bytes] = []
        ftp.retrbinary("RETR big.bin", chunks.append)
        assert sha256(b"".join(chunks)) == sha256(data)
        chunks.clear()
        ftp.retrbinary("RETR big.bin", chunks.append, rest=RESUME_AT)
        assert sha256(b"".join(chunks)) == sha256(data[RESUME_AT:])
        assert ftp.rename("big.bin", "/kept.bin").startswith("250")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.size("big.bin")
        ftp.cwd("/")
        with open(payload, "rb") as f:
            ftp.storbinary("STOR gone.bin", f)
        assert ftp.delete("gone.bin").startswith("250")
        assert ftp.rmd("dir").startswith("250")
        assert sorted(ftp.nlst()) == ["kept.bin"]
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("dir")


@pytest_twisted.ensureDeferred
async def test_ftplib(site: S3Site, payload: Path) -> None:
    await in_thread(ftplib_scenario, site, payload)
    await in_thread(site.after_scenario)


# -- lftp -------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_lftp(site: S3Site, payload: Path, tmp_path: Path) -> None:
    lftp = require_binary("lftp")
    work = tmp_path / "work"
    work.mkdir()
    partial = work / "resumed.bin"
    partial.write_bytes(payload.read_bytes()[:RESUME_AT])
    script = lftp_script(
        site.server,
        "mkdir dir", "cd dir", f"put {payload} -o big.bin", "cls -l",
        f"get big.bin -o {work / 'back.bin'}",
        f"get -c big.bin -o {partial}",  # -c: REST from the local size
        "mv big.bin /kept.bin", "cd /", f"put {payload} -o gone.bin", "rm gone.bin",
        "rmdir dir", "cls",
    )
    result = await in_thread(run_cli, [lftp, "-c", script], tmp_path / "home")
    out = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert "big.bin" in out and str(SIZE) in out
    assert out.rstrip().splitlines()[-1] == "kept.bin"
    assert file_sha256(work / "back.bin") == file_sha256(payload)
    assert file_sha256(partial) == file_sha256(payload)
    await in_thread(site.after_scenario)


# -- curl -------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_curl(site: S3Site, payload: Path, tmp_path: Path) -> None:
    curl = require_binary("curl")
    home = tmp_path / "home"
    url = site.server.url

    async def run(*args: str) -> str:
        result = await in_thread(run_cli, [curl, "-sS", "--user", "alice:secret", *args], home)
        assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
        return result.stdout.decode("utf-8", "replace")

    await run(url("/"), "-Q", "MKD dir")
    await run("-T", str(payload), url("/dir/big.bin"))
    listing = await run(url("/dir/"))
    assert listing.rstrip().endswith(" big.bin") and f" {SIZE} " in listing
    back = tmp_path / "back.bin"
    await run(url("/dir/big.bin"), "-o", str(back))
    assert file_sha256(back) == file_sha256(payload)
    partial = tmp_path / "partial.bin"
    partial.write_bytes(payload.read_bytes()[:RESUME_AT])
    await run(url("/dir/big.bin"), "-C", "-", "-o", str(partial))
    assert file_sha256(partial) == file_sha256(payload)
    await run(url("/"), "-Q", "RNFR dir/big.bin", "-Q", "RNTO kept.bin")
    await run("-T", str(payload), url("/gone.bin"))
    await run(url("/"), "-Q", "DELE gone.bin", "-Q", "RMD dir")
    assert (await run(url("/"), "--list-only")).split() == ["kept.bin"]
    await in_thread(site.after_scenario)


# -- Twisted's FTPClient ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_twisted_ftp_client(site: S3Site, payload: Path) -> None:
    data = payload.read_bytes()
    creator = ClientCreator(reactor, FTPClient, "alice", "secret", passive=1)
    client = await creator.connectTCP(site.server.host, site.server.port)
    try:
        assert (await client.makeDirectory("dir"))[-1].startswith("257")
        await client.cwd("dir")
        consumer_d, done = client.storeFile("big.bin")
        consumer = await consumer_d
        for start in range(0, len(data), 1 << 20):
            consumer.write(data[start:start + (1 << 20)])
        consumer.finish()
        await done
        listing = ListParser()
        await client.list(".", listing)
        assert [(f["filename"], f["size"]) for f in listing.files] == [("big.bin", SIZE)]
        whole = Collector()
        await client.retrieveFile("big.bin", whole)
        assert sha256(whole.data) == sha256(data)
        rest = Collector()
        await client.retrieveFile("big.bin", rest, offset=RESUME_AT)
        assert sha256(rest.data) == sha256(data[RESUME_AT:])
        renamed = await client.rename("big.bin", "/kept.bin")  # the RNFR and RNTO replies
        assert renamed[-1][-1].startswith("250"), renamed
        await client.cwd("/")
        await client.removeDirectory("dir")
        await client.quit()
    finally:
        client.transport.loseConnection()
    await in_thread(site.after_scenario)
