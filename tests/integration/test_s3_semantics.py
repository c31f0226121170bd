"""FTP commands on objects, one behaviour at a time, through ftplib against a server on
a real S3 server (SeaweedFS): what works, what is refused and with which words, what
the bucket holds afterwards, and what a failing store looks like to the client."""

from __future__ import annotations

import ftplib
import io
import itertools
import os
import socket

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from tests.integration.conftest import in_thread
from tests.integration.s3_server import S3Server
from twisted_ftpd.fs.objects import PART_SIZE
from twisted_ftpd.fs.storage import Stores

pytestmark = pytest.mark.integration

_prefixes = itertools.count()


class Site:
    def __init__(self, server, s3: S3Server, prefix: str) -> None:  # type: ignore[no-untyped-def]
        self.server = server
        self.bucket = s3.bucket
        self.prefix = prefix
        self.fs = Stores(lambda f, *a: f(*a)).locate(f"s3://{s3.bucket}", "").fs

    def key(self, name: str) -> str:
        return f"{self.bucket}/{self.prefix}/{name}"

    def keys(self) -> list[str]:
        found = self.fs.find(f"{self.bucket}/{self.prefix}", withdirs=False)
        return sorted(k[len(self.bucket) + len(self.prefix) + 2:] for k in found)

    def pending_uploads(self) -> list[str]:
        found = self.fs.call_s3("list_multipart_uploads", Bucket=self.bucket,
                                Prefix=self.prefix + "/")
        return [upload["Key"] for upload in found.get("Uploads", [])]


@pytest_twisted.async_yield_fixture
async def site(server_factory, s3_server: S3Server):
    prefix = f"semantics{next(_prefixes)}-{os.getpid()}"
    server = await server_factory(storage=f"s3://{s3_server.bucket}/{prefix}")
    yield Site(server, s3_server, prefix)


def reply_of(error: ftplib.Error) -> str:
    return str(error.args[0])


@pytest_twisted.ensureDeferred
async def test_feat_mfmt_and_chmod_say_what_objects_cannot_do(site: Site) -> None:
    def check() -> None:
        with site.server.session() as ftp:
            ftp.storbinary("STOR f.txt", io.BytesIO(b"x"))
            features = ftp.sendcmd("FEAT")
            assert " REST STREAM" in features and " SIZE" in features and " MDTM" in features
            assert "MFMT" not in features
            with pytest.raises(ftplib.error_perm) as mfmt:
                ftp.sendcmd("MFMT 20200101000000 f.txt")
            assert reply_of(mfmt.value).startswith("550 /f.txt: not possible on object "
                                                   "storage: objects keep the time")
            with pytest.raises(ftplib.error_perm) as chmod:
                ftp.sendcmd("SITE CHMOD 600 f.txt")
            assert "objects have no permission bits" in reply_of(chmod.value)
            mdtm = ftp.sendcmd("MDTM f.txt")
            info = site.fs.info(site.key("f.txt"))
            assert mdtm == "213 " + info["LastModified"].astimezone(
                __import__("datetime").timezone.utc).strftime("%Y%m%d%H%M%S")
            assert ftp.size("f.txt") == 1

    await in_thread(check)


@pytest_twisted.ensureDeferred
async def test_resumed_and_appended_uploads(site: Site) -> None:
    data = os.urandom(PART_SIZE + 1000)

    def check() -> None:
        with site.server.session() as ftp:
            ftp.storbinary("STOR part.bin", io.BytesIO(data[:5000]))
            ftp.storbinary("STOR part.bin", io.BytesIO(data[5000:]), rest=5000)
            assert site.fs.cat_file(site.key("part.bin")) == data
            ftp.storbinary("APPE part.bin", io.BytesIO(b"tail"))
            assert site.fs.cat_file(site.key("part.bin")) == data + b"tail"
            ftp.storbinary("APPE new.bin", io.BytesIO(b"new"))
            reply = ftp.storbinary("STOU", io.BytesIO(b"unique"))
            assert reply.startswith("226")
        assert site.fs.cat_file(site.key("new.bin")) == b"new"
        assert len(site.keys()) == 3 and site.pending_uploads() == []

    await in_thread(check)


@pytest_twisted.ensureDeferred
async def test_an_aborted_upload_leaves_the_old_object_and_no_multipart_upload(
        site: Site) -> None:
    site.fs.pipe_file(site.key("f.bin"), b"old")

    def check() -> None:
        with site.server.session() as ftp:
            conn = ftp.transfercmd("STOR f.bin")
            block = os.urandom(1 << 20)
            for _ in range(3 * PART_SIZE // len(block)):  # parts went to the store
                conn.sendall(block)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            conn.close()  # a reset: the upload broke off
            with pytest.raises(ftplib.error_temp, match="^426"):
                ftp.voidresp()
            assert ftp.voidcmd("NOOP").startswith("200")
        assert site.fs.cat_file(site.key("f.bin")) == b"old"
        assert site.keys() == ["f.bin"] and site.pending_uploads() == []

    await in_thread(check)


@pytest_twisted.ensureDeferred
async def test_directories_are_prefixes_with_markers(site: Site) -> None:
    def check() -> None:
        with site.server.session() as ftp:
            ftp.mkd("empty")
            assert ftp.nlst() == ["empty"]
            assert ftp.nlst("empty") == []
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.cwd("missing")
            ftp.mkd("full")
            ftp.storbinary("STOR full/f", io.BytesIO(b"x"))
            with pytest.raises(ftplib.error_perm, match="^550 /full: Directory not empty"):
                ftp.rmd("full")
            with pytest.raises(ftplib.error_perm) as refused:
                ftp.rename("full", "moved")
            assert "not empty would copy every object" in reply_of(refused.value)
            assert ftp.rename("empty", "renamed").startswith("250")
            ftp.delete("full/f")
            assert ftp.nlst("full") == []  # the directory outlives its last file
            ftp.rmd("full")
            assert ftp.nlst() == ["renamed"]
        assert site.keys() == ["renamed/"] or site.keys() == ["renamed"]

    await in_thread(check)


@pytest_twisted.ensureDeferred
async def test_no_path_reaches_a_key_outside_the_prefix(site: Site) -> None:
    outside = f"{site.bucket}/{site.prefix}-secret/x"
    site.fs.pipe_file(outside, b"secret")

    def check() -> None:
        with site.server.session() as ftp:
            for path in ("../" + site.prefix + "-secret/x", "/../../x",
                         "//" + site.prefix + "-secret/x", "..\\" + site.prefix + "-secret\\x",
                         "%2e%2e/" + site.prefix + "-secret/x"):
                with pytest.raises(ftplib.error_perm, match="^55"):
                    ftp.retrbinary("RETR " + path, lambda _: None)
            ftp.cwd("..")
            assert ftp.pwd() == "/"
            ftp.storbinary("STOR ../../escape", io.BytesIO(b"y"))  # lands at the home
        assert site.fs.cat_file(outside) == b"secret"
        assert site.keys() == ["escape"]

    await in_thread(check)


@pytest_twisted.ensureDeferred
async def test_a_directory_of_ten_thousand_objects_lists_page_by_page(site: Site) -> None:
    names = [f"obj{n:05d}" for n in range(10_000)]
    await in_thread(site.fs.pipe, {site.key(f"big/{name}"): b"" for name in names})

    def check() -> None:
        with site.server.session() as ftp:
            assert ftp.nlst("big") == names
            lines: list[str] = []
            ftp.retrlines("LIST big", lines.append)
            assert [line.rsplit(" ", 1)[1] for line in lines] == names

    await in_thread(check)


class LogWatch:
    """The storage errors the server logs while the block runs."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __enter__(self) -> LogWatch:
        globalLogPublisher.addObserver(self.events.append)
        return self

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self.events.append)

    def text(self) -> str:
        return "\n".join(repr(e.get("error")) for e in self.events if "operation" in e)


@pytest_twisted.ensureDeferred
async def test_a_missing_bucket_is_550_and_the_session_goes_on(server_factory,
                                                               s3_server: S3Server) -> None:
    server = await server_factory(storage="s3://no-such-bucket/home")

    def check() -> None:
        with server.session() as ftp:
            with pytest.raises(ftplib.error_perm) as listing:
                ftp.nlst()
            assert reply_of(listing.value) == ("550 /: the storage bucket does not "
                                               "exist.")
            with pytest.raises(ftplib.error_perm, match="^550 /f: the storage"):
                ftp.storbinary("STOR f", io.BytesIO(b"x"))  # SeaweedFS: 403 to HEAD
            assert ftp.voidcmd("NOOP").startswith("200")

    with LogWatch() as watch:
        await in_thread(check)
    assert "bucket does not exist" in watch.text()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_store_is_451_and_the_session_goes_on(server_factory,
                                                                   s3_server: S3Server,
                                                                   ) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    server = await server_factory(storage="s3://ftp/home",
                                  storage_endpoint=f"http://127.0.0.1:{port}")

    def check() -> None:
        with server.session() as ftp:
            with pytest.raises(ftplib.error_temp) as listing:
                ftp.nlst()
            assert reply_of(listing.value) == ("451 /: the storage cannot be reached; "
                                               "try again later.")
            assert ftp.voidcmd("NOOP").startswith("200")

    with LogWatch() as watch:
        await in_thread(check)
    assert f"127.0.0.1:{port}" in watch.text()


async def started_with(server_factory, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What the server logs about its store at start-up."""
    said: list[str] = []
    done = defer.Deferred()

    def observe(event: dict) -> None:
        text = event.get("log_format", "")
        if text.startswith("Storage {url}"):
            said.append(formatEvent(event))
            if not done.called:
                done.callback(None)

    globalLogPublisher.addObserver(observe)
    try:
        await server_factory(storage=url)
        await done
    finally:
        globalLogPublisher.removeObserver(observe)
    return said


@pytest_twisted.ensureDeferred
async def test_start_up_says_whether_the_store_answers(server_factory,
                                                       s3_server: S3Server) -> None:
    assert await started_with(server_factory, f"s3://{s3_server.bucket}/x") == [
        f"Storage s3://{s3_server.bucket}/x answers"]
    (missing,) = await started_with(server_factory, "s3://no-such-bucket/x")
    assert missing.startswith("Storage s3://no-such-bucket/x does not answer as it should: ")
    assert "sessions get errors until it does" in missing
