"""Twisted's own FTPClient against the server, all on the one reactor (no threads)."""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import ClientCreator
from twisted.protocols.ftp import CommandFailed, FTPClient

from tests.integration.conftest import Collector, ListParser, file_sha256, sha256

pytestmark = pytest.mark.integration


async def connect(server, user: str = "alice", password: str = "secret",  # type: ignore[no-untyped-def]
                  passive: bool = True) -> FTPClient:
    creator = ClientCreator(reactor, FTPClient, user, password, passive=int(passive))
    return await creator.connectTCP(server.host, server.port)


async def store(client: FTPClient, path: str, data: bytes, block: int = 65536) -> list[str]:
    """Upload ``data``; returns the STOR command's reply lines."""
    consumer_d, done = client.storeFile(path)
    consumer = await consumer_d
    for start in range(0, len(data), block):
        consumer.write(data[start:start + block])
    consumer.finish()
    # A DeferredList of (the commands' DeferredList, PASV/PORT, the data protocol).
    (ok, command_results), *_ = await done
    (ok, stor_reply), = command_results
    return stor_reply


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
@pytest_twisted.ensureDeferred
async def test_twisted_ftp_client(server, passive: bool) -> None:
    (server.root / "sub").mkdir()
    existing = os.urandom(1_000_000)
    (server.root / "sub" / "existing.bin").write_bytes(existing)
    upload = os.urandom(3_000_000)

    client = await connect(server, passive=passive)
    try:
        pwd = await client.pwd()
        assert pwd[-1].startswith('257 "/"')
        await client.cwd("sub")
        assert (await client.pwd())[-1].startswith('257 "/sub"')

        # Data is written the moment the data connection opens, maybe before STOR arrives.
        result = await store(client, "uploaded.bin", upload)
        assert result[-1].startswith("226")
        assert file_sha256(server.root / "sub" / "uploaded.bin") == sha256(upload)

        listing = ListParser()
        await client.list(".", listing)
        assert listing.unparsed == []
        assert {f["filename"]: (f["filetype"], f["size"]) for f in listing.files} == {
            "existing.bin": ("-", len(existing)),
            "uploaded.bin": ("-", len(upload)),
        }

        listing = ListParser()
        await client.list("/", listing)
        assert [(f["filename"], f["filetype"]) for f in listing.files] == [("sub", "d")]

        collector = Collector()
        await client.retrieveFile("existing.bin", collector)
        assert sha256(collector.data) == sha256(existing)

        collector = Collector()
        await client.retrieveFile("/sub/uploaded.bin", collector)
        assert sha256(collector.data) == sha256(upload)

        with pytest.raises(CommandFailed) as info:
            await client.retrieveFile("missing.bin", Collector())
        assert info.value.args[0][-1].startswith("550")
    finally:
        bye = await client.quit()
    assert bye[-1].startswith("221")
    await server.all_sessions_gone()


@pytest_twisted.ensureDeferred
async def test_twisted_client_back_to_back_stores(server) -> None:
    """Several early-writing uploads in a row on one session, each kept intact."""
    blobs = {f"f{i}.bin": os.urandom(200_000 + i) for i in range(5)}
    client = await connect(server)
    try:
        for name, data in blobs.items():
            assert (await store(client, name, data))[-1].startswith("226")
        empty = await store(client, "empty.bin", b"")
        assert empty[-1].startswith("226")
    finally:
        await client.quit()
    for name, data in blobs.items():
        assert file_sha256(server.root / name) == sha256(data)
    assert (server.root / "empty.bin").read_bytes() == b""


@pytest_twisted.ensureDeferred
async def test_twisted_client_read_only_user_cannot_store(server) -> None:
    client = await connect(server, "bob", "bobpw")
    try:
        consumer_d, done = client.storeFile("nope.bin")
        consumer_d.addErrback(lambda _: None)  # the data connection is torn down too
        with pytest.raises(CommandFailed) as info:
            await done
        assert info.value.args[0][-1].startswith("550")
    finally:
        await client.quit()
    assert os.listdir(server.root) == []
