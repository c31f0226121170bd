"""The standard library's ftplib against the real server, passive and active, IPv4 and IPv6."""

from __future__ import annotations

import ftplib
import io
import os

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.helpers import ftp_retr
from tests.integration.conftest import (
    UTF8_NAME,
    file_sha256,
    in_thread,
    ipv6_available,
    parse_list_line,
    sha256,
    snapshot,
)

pytestmark = pytest.mark.integration

MODES = [
    pytest.param("127.0.0.1", True, id="ipv4-passive"),
    pytest.param("127.0.0.1", False, id="ipv4-active"),
    pytest.param("::1", True, id="ipv6-passive"),
    pytest.param("::1", False, id="ipv6-active"),
]


def list_lines(ftp: ftplib.FTP, path: str = "") -> list[str]:
    lines: list[str] = []
    ftp.retrlines(f"LIST {path}".rstrip(), lines.append)
    return lines


@pytest.mark.parametrize("interface,passive", MODES)
@pytest_twisted.ensureDeferred
async def test_full_session(server_factory, interface: str, passive: bool) -> None:
    if ":" in interface and not ipv6_available():
        pytest.skip("no IPv6 loopback on this host")
    server = await server_factory(interface=interface)
    data = os.urandom(3 * 1024 * 1024)

    def session() -> None:
        with server.session(passive=passive) as ftp:
            assert ftp.encoding == "utf-8"
            assert ftp.pwd() == "/"
            assert ftp.mkd("work") == "/work"
            assert ftp.cwd("work").startswith("250")
            assert ftp.pwd() == "/work"

            ftp.storbinary("STOR blob.bin", io.BytesIO(data))
            assert file_sha256(server.root / "work" / "blob.bin") == sha256(data)
            assert sha256(ftp_retr(ftp, "blob.bin")) == sha256(data)
            assert ftp.size("blob.bin") == len(data)
            assert ftp.nlst() == ["blob.bin"]

            (line,) = list_lines(ftp)
            mode, size, name = parse_list_line(line)
            assert (mode[0], size, name) == ("-", len(data), "blob.bin")

            assert ftp.rename("blob.bin", "renamed.bin").startswith("250")
            assert ftp.nlst() == ["renamed.bin"]
            assert ftp.delete("renamed.bin").startswith("250")
            assert ftp.nlst() == []
            ftp.cwd("/")
            assert ftp.rmd("work").startswith("250")
            assert ftp.nlst() == []

    await in_thread(session)
    assert os.listdir(server.root) == []


@pytest_twisted.ensureDeferred
async def test_concurrent_sessions(server) -> None:
    blobs = {f"c{i}.bin": os.urandom(1_000_000 + i) for i in range(4)}

    def session(name: str, passive: bool) -> str:
        with server.session(passive=passive) as ftp:
            ftp.storbinary(f"STOR {name}", io.BytesIO(blobs[name]))
            return sha256(ftp_retr(ftp, name))

    results = await defer.gatherResults([
        in_thread(session, name, i % 2 == 0) for i, name in enumerate(blobs)
    ])
    assert results == [sha256(data) for data in blobs.values()]
    assert {name: file_sha256(server.root / name) for name in blobs} == {
        name: sha256(data) for name, data in blobs.items()}


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
@pytest_twisted.ensureDeferred
async def test_utf8_name_with_spaces_round_trip(server, passive: bool) -> None:
    data = os.urandom(200_000)

    def session() -> tuple[bytes, list[str], list[str]]:
        with server.session(passive=passive) as ftp:
            ftp.storbinary(f"STOR {UTF8_NAME}", io.BytesIO(data))
            got = ftp_retr(ftp, UTF8_NAME)
            return got, ftp.nlst(), list_lines(ftp)

    got, names, lines = await in_thread(session)
    assert sha256(got) == sha256(data)
    assert names == [UTF8_NAME]
    assert [parse_list_line(line)[1:] for line in lines] == [(len(data), UTF8_NAME)]
    assert file_sha256(server.root / UTF8_NAME) == sha256(data)


@pytest_twisted.ensureDeferred
async def test_read_only_user_refused_writes(server) -> None:
    (server.root / "existing.txt").write_bytes(b"keep me\n")
    (server.root / "dir").mkdir()
    before = snapshot(server.root)

    def session() -> list[str]:
        codes = []
        with server.session("bob") as ftp:
            assert ftp_retr(ftp, "existing.txt") == b"keep me\n"
            attempts = [
                lambda: ftp.storbinary("STOR new.bin", io.BytesIO(b"x" * 1000)),
                lambda: ftp.storbinary("STOR existing.txt", io.BytesIO(b"overwritten")),
                lambda: ftp.delete("existing.txt"),
                lambda: ftp.mkd("newdir"),
                lambda: ftp.rmd("dir"),
                lambda: ftp.rename("existing.txt", "moved.txt"),
            ]
            for attempt in attempts:
                with pytest.raises(ftplib.error_perm) as info:
                    attempt()
                codes.append(str(info.value)[:3])
            assert ftp.voidcmd("NOOP").startswith("200")
        return codes

    assert await in_thread(session) == ["550"] * 6
    assert snapshot(server.root) == before


@pytest_twisted.ensureDeferred
async def test_anonymous_is_read_only(server) -> None:
    data = os.urandom(50_000)
    (server.root / "pub.bin").write_bytes(data)
    before = snapshot(server.root)

    def session() -> tuple[bytes, str]:
        with server.session("anonymous", "guest@example.org") as ftp:
            got = ftp_retr(ftp, "pub.bin")
            with pytest.raises(ftplib.error_perm) as info:
                ftp.storbinary("STOR upload.bin", io.BytesIO(b"nope"))
            return got, str(info.value)

    got, refusal = await in_thread(session)
    assert sha256(got) == sha256(data)
    assert refusal.startswith("550")
    assert snapshot(server.root) == before


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_530(server) -> None:
    def session() -> str:
        ftp = server.connect(user=None)
        try:
            with pytest.raises(ftplib.error_perm) as info:
                ftp.login("alice", "wrong")
            # The session survives a failed login and can log in properly.
            ftp.login("alice", "secret")
            assert ftp.pwd() == "/"
            return str(info.value)
        finally:
            ftp.close()

    assert (await in_thread(session)).startswith("530")


@pytest_twisted.ensureDeferred
async def test_path_escapes_are_confined(server, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret\n")
    os.symlink(outside, server.root / "link")
    (server.root / "inside.txt").write_bytes(b"inside\n")

    def session() -> dict[str, str]:
        seen = {}
        with server.session() as ftp:
            for name in ("../../../../etc/passwd", "/../../../../etc/passwd",
                         "..\\..\\..\\..\\etc\\passwd", "link/secret.txt"):
                chunks: list[bytes] = []
                with pytest.raises(ftplib.error_perm) as info:
                    ftp.retrbinary(f"RETR {name}", chunks.append)
                assert chunks == []
                seen[name] = str(info.value)[:3]
            ftp.cwd("/../../..")
            assert ftp.pwd() == "/"
            ftp.cwd("../..")
            assert ftp.pwd() == "/"
            with pytest.raises(ftplib.error_perm):
                ftp.cwd("link")
            assert ftp.pwd() == "/"
            assert ftp_retr(ftp, "../inside.txt") == b"inside\n"
        return seen

    seen = await in_thread(session)
    assert set(seen.values()) == {"550"}, seen


@pytest_twisted.ensureDeferred
async def test_links_out_of_the_home_can_be_deleted_and_renamed_not_followed(
        server, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret\n")
    os.symlink("/etc", server.root / "etc")
    os.symlink(outside, server.root / "tmp_out")
    os.symlink(outside / "secret.txt", server.root / "secret_out")
    os.symlink(outside, server.root / "to_delete")
    (server.root / "sub").mkdir()
    etc_before = (os.stat("/etc").st_ino, os.stat("/etc").st_mode, file_sha256("/etc/passwd"))
    outside_before = snapshot(outside)

    def session() -> list[str]:
        with server.session() as ftp:
            ftp.voidcmd("TYPE I")
            refused = []
            for line in ("CWD etc", "SIZE secret_out", "MDTM secret_out", "CWD tmp_out",
                         "SITE CHMOD 777 tmp_out", "MFMT 20000101000000 secret_out",
                         "DELE etc/passwd", "DELE tmp_out/secret.txt",
                         "RNFR tmp_out/secret.txt"):
                with pytest.raises(ftplib.error_perm) as info:
                    ftp.sendcmd(line)
                refused.append(str(info.value)[:3])
            with pytest.raises(ftplib.error_perm):
                ftp_retr(ftp, "secret_out")
            assert ftp.delete("to_delete").startswith("250")
            assert ftp.rename("etc", "sub/etc_link").startswith("250")
            assert ftp.rename("tmp_out", "tmp_link").startswith("250")
            with pytest.raises(ftplib.error_perm):  # not into the outside, nor over a link
                ftp.rename("secret_out", "tmp_link/moved")
            with pytest.raises(ftplib.error_perm):
                ftp.rename("secret_out", "tmp_link")
            with pytest.raises(ftplib.error_perm):  # still not followed once renamed
                ftp.cwd("sub/etc_link")
            with pytest.raises(ftplib.error_perm):
                ftp_retr(ftp, "tmp_link/secret.txt")
            assert ftp.delete("sub/etc_link").startswith("250")
            assert ftp.delete("secret_out").startswith("250")
            return refused

    refused = await in_thread(session)
    assert set(refused) == {"550"}, refused
    assert sorted(os.listdir(server.root)) == ["sub", "tmp_link"]
    assert os.listdir(server.root / "sub") == []
    assert os.readlink(server.root / "tmp_link") == str(outside)
    assert (os.stat("/etc").st_ino, os.stat("/etc").st_mode,
            file_sha256("/etc/passwd")) == etc_before
    assert snapshot(outside) == outside_before
    assert (outside / "secret.txt").read_bytes() == b"top secret\n"


NON_UTF8_LINES = [
    b"CWD \xff\xfe\r\n",  # IAC DONT ... : Telnet bytes, stripped to a bare CWD
    b"CWD \xc3\x28\x80\r\n",  # invalid UTF-8 name of a directory that does not exist
    b"MKD \xc3\x28\r\n",  # creating a non-UTF-8 name is refused
    b"\xc3\x28\r\n",  # an undecodable verb
]


@pytest_twisted.ensureDeferred
async def test_non_utf8_command_bytes_get_5xx_and_session_survives(server) -> None:
    def session() -> list[bytes]:
        control = server.raw()
        try:
            replies = []
            for raw in NON_UTF8_LINES:
                control.send(raw)
                replies.append(control.reply())
            assert control.cmd("PWD").startswith(b'257 "/"')
            assert control.cmd("NOOP").startswith(b"200")
            return replies
        finally:
            control.close()

    replies = await in_thread(session)
    assert [reply[:1] for reply in replies] == [b"5"] * len(NON_UTF8_LINES), replies
    assert os.listdir(server.root) == []
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_replies_to_non_utf8_commands_are_valid_utf8(server) -> None:
    def session() -> list[str]:
        replies = []
        with server.session() as ftp:
            for raw in NON_UTF8_LINES:
                ftp.sock.sendall(raw)
                try:
                    replies.append(ftp.getresp())
                except ftplib.error_perm as e:
                    replies.append(str(e))
            assert ftp.pwd() == "/"
        return replies

    replies = await in_thread(session)
    assert [reply[0] for reply in replies] == ["5"] * len(NON_UTF8_LINES), replies


@pytest_twisted.ensureDeferred
async def test_ipv6_pasv_is_refused_but_epsv_works(server_factory) -> None:
    if not ipv6_available():
        pytest.skip("no IPv6 loopback on this host")
    server = await server_factory(interface="::1")

    def session() -> str:
        with server.session() as ftp:
            with pytest.raises(ftplib.error_temp) as info:
                ftp.sendcmd("PASV")
            # ftplib uses EPSV on IPv6 by itself.
            assert ftp.nlst() == []
            return str(info.value)

    assert (await in_thread(session)).startswith("425")

