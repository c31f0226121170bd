"""Clients that misbehave or vanish; after each, the server must still serve."""

from __future__ import annotations

import ftplib
import os
import socket
import struct

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.integration.conftest import file_sha256, in_thread, part_files, sha256
from twisted_ftpd.fs import files

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def write_big(path, mib: int) -> None:  # type: ignore[no-untyped-def]
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)


def reset_on_close(sock: socket.socket) -> None:
    """Make close() send a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture
def upload_settled(monkeypatch):  # type: ignore[no-untyped-def]
    """A Deferred firing with "commit" or "abort" once the server has settled an upload.

    Settling (rename or unlink of the temporary file) runs in a worker thread after
    the session may already be gone, so the test waits on it rather than on time.
    """
    settled: defer.Deferred = defer.Deferred()

    def spy(name: str):  # type: ignore[no-untyped-def]
        original = getattr(files.WriteFile, name)

        def wrapper(self, *args):  # type: ignore[no-untyped-def]
            d = original(self, *args)

            def done(result):  # type: ignore[no-untyped-def]
                if not settled.called:
                    settled.callback(name)
                return result

            return d.addBoth(done)

        monkeypatch.setattr(files.WriteFile, name, wrapper)

    spy("commit")
    spy("abort")
    return settled


@pytest_twisted.ensureDeferred
async def test_client_drops_data_connection_mid_retr(server) -> None:
    await in_thread(write_big, server.root / "big.bin", 64)

    def session() -> str:
        with server.session() as ftp:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("RETR big.bin")
            received = 0
            while received < 64 * 1024:
                chunk = conn.recv(64 * 1024 - received)
                assert chunk
                received += len(chunk)
            conn.close()  # unread data pending: the kernel resets the connection
            with pytest.raises(ftplib.error_temp) as info:
                ftp.voidresp()
            assert ftp.voidcmd("NOOP").startswith("200")
            assert ftp.size("big.bin") == 64 * MIB
            return str(info.value)

    assert (await in_thread(session)).startswith("426")
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_client_vanishes_mid_stor_overwrite(server, upload_settled) -> None:
    old = os.urandom(500_000)
    (server.root / "keep.bin").write_bytes(old)

    def session() -> None:
        ftp = server.connect()
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR keep.bin")
        conn.sendall(os.urandom(2 * MIB))
        # The whole client goes away: control first, then the data connection (reset,
        # so the server cannot mistake it for the end of the file).
        ftp.sock.close()
        ftp.file.close()
        reset_on_close(conn)
        conn.close()

    await in_thread(session)
    await server.all_sessions_gone()
    assert await upload_settled == "abort"
    assert sha256((server.root / "keep.bin").read_bytes()) == sha256(old)
    assert part_files(server.root) == []
    assert sorted(os.listdir(server.root)) == ["keep.bin"]
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_data_connection_reset_mid_stor_of_new_file(server, upload_settled) -> None:
    sent = os.urandom(3 * MIB)

    def session() -> str:
        with server.session() as ftp:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR new.bin")
            conn.sendall(sent)
            reset_on_close(conn)
            conn.close()
            with pytest.raises(ftplib.error_temp) as info:
                ftp.voidresp()
            assert ftp.voidcmd("NOOP").startswith("200")
            return str(info.value)

    assert (await in_thread(session)).startswith("426")
    assert await upload_settled == "abort"
    assert part_files(server.root) == []
    # A new file's partial is kept under its name (so REST + STOR can resume it).
    partial = server.root / "new.bin"
    if partial.exists():
        kept = partial.read_bytes()
        assert sha256(kept) == sha256(sent[:len(kept)])  # a prefix (may be all of it)
    await server.still_serves()


def unused_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest_twisted.ensureDeferred
async def test_port_to_a_closed_port_gives_425(server) -> None:
    (server.root / "f.bin").write_bytes(b"payload")

    def session() -> list[str]:
        replies = []
        with server.session() as ftp:
            port = unused_port()
            replies.append(ftp.sendcmd(f"PORT 127,0,0,1,{port >> 8},{port & 255}"))
            try:
                replies.append(ftp.sendcmd("RETR f.bin"))  # 150, then the failure
                ftp.voidresp()
            except ftplib.error_temp as e:
                replies.append(str(e))
            assert ftp.voidcmd("NOOP").startswith("200")
            chunks: list[bytes] = []
            ftp.retrbinary("RETR f.bin", chunks.append)
            assert b"".join(chunks) == b"payload"
        return replies

    replies = await in_thread(session)
    assert replies[0].startswith("200")
    assert [r[:3] for r in replies[1:]] in (["150", "425"], ["425"]), replies
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_quit_when_idle(server) -> None:
    def session() -> tuple[str, bytes]:
        control = server.raw()
        try:
            reply = control.cmd("QUIT")
            return reply.decode(), control.file.read()  # the server closes: EOF
        finally:
            control.close()

    reply, rest = await in_thread(session)
    assert reply.startswith("221")
    assert rest == b""
    await server.all_sessions_gone()
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_garbage_flood_without_newline(server) -> None:
    def session() -> list[bytes]:
        control = server.raw()
        try:
            control.send(os.urandom(50_000).replace(b"\n", b"x") + b"A" * 50_000)
            control.send(b"\r\nNOOP\r\n")
            replies = [control.reply()]
            replies.append(control.reply())
            if replies[-1]:  # still usable: prove it further
                assert control.cmd("PWD").startswith(b'257 "/"')
            return replies
        finally:
            control.close()

    first, second = await in_thread(session)
    assert first.startswith(b"500 "), first
    # Exactly one 500: the next reply answers NOOP, or the server closed cleanly.
    assert second.startswith(b"200 ") or second == b"", second
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_garbage_flood_before_login(server) -> None:
    def session() -> list[bytes]:
        control = server.raw(user=None)
        try:
            control.send(b"\x00\x01garbage" * 20_000)
            control.send(b"\r\nUSER alice\r\n")
            return [control.reply(), control.reply(), control.cmd("PASS secret")]
        finally:
            control.close()

    first, user, password = await in_thread(session)
    assert first.startswith(b"500 ")
    assert user.startswith(b"331 ")
    assert password.startswith(b"230 ")
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_stor_refused_for_read_only_user_leaves_no_temp(server) -> None:
    (server.root / "keep.bin").write_bytes(b"old")

    def session() -> str:
        with server.session("bob") as ftp:
            with pytest.raises(ftplib.error_perm) as info:
                ftp.storbinary("STOR keep.bin", _Empty())
            return str(info.value)

    assert (await in_thread(session)).startswith("550")
    assert file_sha256(server.root / "keep.bin") == sha256(b"old")
    assert part_files(server.root) == []


class _Empty:
    def read(self, _size: int) -> bytes:
        return b""
