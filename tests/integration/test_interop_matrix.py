"""Interoperability matrix: every FTP client we can get hold of, against the real server.

Clients: lftp, curl, wget, ncftp (ncftp/ncftpget/ncftpput/ncftpls), tnftp, ftplib,
ftputil and Twisted's FTPClient. For each, as much as the client supports of: login,
listing, binary upload and download checked by sha256, resuming an interrupted
download (and upload), mkdir, rename, delete and a UTF-8 file name round trip, over
IPv4 and IPv6 loopback where the client speaks IPv6. Then the features a particular
client exercises best (lftp's MLSD listing and ABOR, curl's APPE and quote commands,
ftplib's raw access to MLSD/MFMT/STOU/STAT/HOST/EPSV ALL/TYPE A).

Blocking clients run in a worker thread (``in_thread``); CLI clients get a private HOME.
"""

from __future__ import annotations

import calendar
import contextlib
import ftplib
import io
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import ClientCreator
from twisted.protocols.ftp import FTPClient, FTPFileListProtocol

from tests.helpers import ftp_retr
from tests.integration.conftest import (
    CLI_TIMEOUT,
    FTP_TIMEOUT,
    Collector,
    Server,
    cli_env,
    close_quietly,
    file_sha256,
    in_thread,
    ipv6_available,
    lftp_script,
    parse_list_line,
    require_binary,
    sha256,
    sparse_file,
)
from tests.integration.tls_helpers import ok

pytestmark = pytest.mark.integration

NAME = "dé jà 文件.bin"  # spaces, accents and CJK: a UTF-8 name round trip
PAYLOAD_SIZE = 1_500_000

FAMILIES = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]
FAMILY_MODES = [
    pytest.param("127.0.0.1", True, id="ipv4-passive"),
    pytest.param("127.0.0.1", False, id="ipv4-active"),
    pytest.param("::1", True, id="ipv6-passive"),
    pytest.param("::1", False, id="ipv6-active"),
]


# -- helpers --------------------------------------------------------------------------------


async def serve(server_factory: Any, host: str, client: str | None = None) -> Server:
    """A fresh server on ``host``; IPv6 is skipped cleanly when ::1 is missing, and so is
    a test of a ``client`` program that is not installed."""
    if client is not None:
        require_binary(client)
    if ":" in host and not ipv6_available():
        pytest.skip("no IPv6 loopback (::1) on this host")
    return await server_factory(interface=host)


def run(args: list[str], home: Path, cwd: Path | None = None, stdin: bytes | None = None,
        **env: str) -> subprocess.CompletedProcess:
    """Run a CLI client (through ``in_thread``): private HOME, optional stdin and env."""
    environment = cli_env(home)
    environment.update(env)
    return subprocess.run(
        args, cwd=cwd, env=environment, input=b"" if stdin is None else stdin,
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )


def payload(path: Path, size: int = PAYLOAD_SIZE) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


async def round_trip_setup(server_factory: Any, tmp_path: Path, host: str,
                           client: str | None = None) -> tuple[Server, Path, bytes, Path]:
    """For a client's round trip: a fresh server on ``host`` (as for ``serve``), a local
    file to upload and its bytes, and where to download it back to."""
    server = await serve(server_factory, host, client)
    local = tmp_path / "local.bin"
    return server, local, payload(local), tmp_path / "back.bin"


def utc_stamp(mtime: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime))


@contextlib.contextmanager
def retr_running(server: Server) -> Iterator[tuple[ftplib.FTP, socket.socket]]:
    """An ftplib session whose binary RETR of a big file has begun, data flowing; the
    session and the data connection."""
    sparse_file(server.root / "big.bin")
    with server.session() as ftp:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR big.bin")
        assert conn.recv(65536)
        yield ftp, conn


# -- lftp -----------------------------------------------------------------------------------


async def lftp(server: Server, tmp_path: Path, *commands: str,
               debug: bool = False) -> subprocess.CompletedProcess:
    binary = require_binary("lftp")
    script = lftp_script(server, *commands)
    argv = [binary, *(["-d"] if debug else []), "-c", script]
    return await in_thread(run, argv, tmp_path / "home", TZ="UTC")


def lftp_sent(result: subprocess.CompletedProcess) -> list[str]:
    """The commands lftp -d says it sent."""
    lines = result.stderr.decode("utf-8", "replace").splitlines()
    return [line[5:] for line in lines if line.startswith("---> ")]


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_lftp_round_trip(server_factory, tmp_path: Path, host: str) -> None:
    server, local, data, back = await round_trip_setup(server_factory, tmp_path, host, "lftp")

    result = await lftp(
        server, tmp_path, "mkdir dir", f'put "{local}" -o "dir/{NAME}"', "cls -l dir/",
        f'get "dir/{NAME}" -o "{back}"', f'mv "dir/{NAME}" dir/renamed.bin', "cls -1 dir/",
        debug=True)
    out = ok(result).splitlines()
    assert "MLSD" in lftp_sent(result)  # lftp lists with MLSD when FEAT offers MLST
    mode, size, _ = out[0].split(None, 2)
    assert (mode, int(size)) == ("-rw-r--r--", len(data))
    assert out[0].endswith(f" dir/{NAME}")
    assert out[1:] == ["dir/renamed.bin"]
    assert file_sha256(back) == sha256(data)
    assert file_sha256(server.root / "dir" / "renamed.bin") == sha256(data)

    listing = ok(await lftp(server, tmp_path, "set ftp:use-mlsd false", "ls dir"))
    assert [parse_list_line(line)[1:] for line in listing.splitlines()] == [
        (len(data), "renamed.bin")]
    ok(await lftp(server, tmp_path, "rm dir/renamed.bin", "rmdir dir"))
    assert os.listdir(server.root) == []


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_lftp_get_c_resumes_download(server_factory, tmp_path: Path, host: str) -> None:
    server = await serve(server_factory, host, "lftp")
    data = payload(server.root / "r.bin")
    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[:654_321])

    result = await lftp(server, tmp_path, f'get -c r.bin -o "{partial}"', debug=True)
    ok(result)
    assert "REST 654321" in lftp_sent(result)
    assert file_sha256(partial) == sha256(data)


@pytest.mark.parametrize("host", FAMILIES)
@pytest.mark.parametrize("command", ["put -c", "reput"])
@pytest_twisted.ensureDeferred
async def test_lftp_resumes_upload_with_rest_stor(server_factory, tmp_path: Path, host: str,
                                                  command: str) -> None:
    server = await serve(server_factory, host, "lftp")
    local = tmp_path / "up.bin"
    data = payload(local)
    (server.root / "up.bin").write_bytes(data[:400_001])

    result = await lftp(server, tmp_path, f'{command} "{local}" -o up.bin', debug=True)
    ok(result)
    sent = lftp_sent(result)
    assert sent.index("REST 400001") + 1 == sent.index("STOR up.bin")
    assert file_sha256(server.root / "up.bin") == sha256(data)


@pytest_twisted.ensureDeferred
async def test_lftp_cls_shows_mlsd_facts(server, tmp_path: Path) -> None:
    """``set ftp:use-mlsd true``: cls -l shows unix.mode and modify to the second (UTC)."""
    require_binary("lftp")
    data = payload(server.root / "f.bin", 12_345)
    (server.root / "d").mkdir()
    os.utime(server.root / "f.bin", (1_600_000_000, 1_600_000_123))

    result = await lftp(server, tmp_path, "set ftp:use-mlsd true", "chmod 600 f.bin",
                        "cls -l --time-style=+%Y%m%d%H%M%S", debug=True)
    lines = ok(result).splitlines()
    assert "SITE CHMOD 600 f.bin" in lftp_sent(result)
    assert "MLSD" in lftp_sent(result)
    assert stat.S_IMODE(os.stat(server.root / "f.bin").st_mode) == 0o600
    assert [line.split() for line in lines] == [
        ["drwxr-xr-x", utc_stamp(os.stat(server.root / "d").st_mtime), "d/"],
        ["-rw-------", str(len(data)), utc_stamp(1_600_000_123), "f.bin"],
    ]


@pytest_twisted.ensureDeferred
async def test_lftp_abort_of_interrupted_download(server, tmp_path: Path) -> None:
    """``cat big | head`` breaks the pipe: lftp sends ABOR mid-RETR, then carries on."""
    require_binary("lftp")
    sparse_file(server.root / "big.bin")
    result = await lftp(server, tmp_path, "cat big.bin | head -c 1000 > /dev/null",
                        "quote NOOP", debug=True)
    out = ok(result)
    assert "200 NOOP ok." in out
    debug = result.stderr.decode("utf-8", "replace").splitlines()
    start = debug.index("---> ABOR")
    after_abor = []
    for line in debug[start + 1:]:
        if line.startswith("---> "):
            break
        if line.startswith("<--- "):
            after_abor.append(line[5:8])
    # Mid-transfer: 426 for RETR then 226 for ABOR; if RETR won the race, 226 then 225.
    assert after_abor in (["426", "226"], ["226", "225"]), debug[start:]
    await server.still_serves()


# -- curl -----------------------------------------------------------------------------------


async def curl(server: Server, tmp_path: Path, path: str, *args: str,
               user: str = "alice:secret") -> subprocess.CompletedProcess:
    binary = require_binary("curl")
    argv = [binary, "-sS", "--user", user, *args, server.url(path)]
    return await in_thread(run, argv, tmp_path / "home")


def curl_sent(result: subprocess.CompletedProcess) -> list[str]:
    """The FTP commands curl -v says it sent."""
    lines = result.stderr.decode("utf-8", "replace").splitlines()
    return [line[2:] for line in lines if line.startswith("> ")]


def curl_verbs(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split(" ")[0] for line in curl_sent(result)]


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_curl_round_trip(server_factory, tmp_path: Path, host: str) -> None:
    server, local, data, back = await round_trip_setup(server_factory, tmp_path, host, "curl")

    ok(await curl(server, tmp_path, f"/dir/{quote(NAME)}", "-Q", "MKD dir", "-T", str(local)))
    assert file_sha256(server.root / "dir" / NAME) == sha256(data)
    (line,) = ok(await curl(server, tmp_path, "/dir/")).splitlines()
    assert parse_list_line(line)[1:] == (len(data), NAME)
    assert ok(await curl(server, tmp_path, "/dir/", "--list-only")).splitlines() == [NAME]
    ok(await curl(server, tmp_path, f"/dir/{quote(NAME)}", "-o", str(back)))
    assert file_sha256(back) == sha256(data)

    ok(await curl(server, tmp_path, "/dir/", "-Q", f"RNFR dir/{NAME}",
                  "-Q", "RNTO dir/renamed.bin"))
    assert os.listdir(server.root / "dir") == ["renamed.bin"]
    ok(await curl(server, tmp_path, "/", "-Q", "DELE dir/renamed.bin", "-Q", "RMD dir"))
    assert os.listdir(server.root) == []


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_curl_resume_download_and_upload(server_factory, tmp_path: Path,
                                               host: str) -> None:
    server = await serve(server_factory, host, "curl")
    data = payload(server.root / "r.bin")
    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[:333_333])

    down = await curl(server, tmp_path, "/r.bin", "-v", "-C", "-", "-o", str(partial))
    ok(down)
    assert "REST 333333" in curl_sent(down)
    assert file_sha256(partial) == sha256(data)

    # Upload resume: curl asks SIZE, then APPEs the rest of the local file.
    local = tmp_path / "up.bin"
    up_data = payload(local)
    (server.root / "up.bin").write_bytes(up_data[:500_000])
    up = await curl(server, tmp_path, "/up.bin", "-v", "-C", "-", "-T", str(local))
    ok(up)
    assert "SIZE up.bin" in curl_sent(up) and "APPE up.bin" in curl_sent(up)
    assert file_sha256(server.root / "up.bin") == sha256(up_data)


@pytest_twisted.ensureDeferred
async def test_curl_append(server, tmp_path: Path) -> None:
    (server.root / "log.txt").write_bytes(b"first line\n")
    local = tmp_path / "more.txt"
    local.write_bytes(b"second line\n")
    result = await curl(server, tmp_path, "/log.txt", "-v", "--append", "-T", str(local))
    ok(result)
    assert "APPE log.txt" in curl_sent(result)
    assert (server.root / "log.txt").read_bytes() == b"first line\nsecond line\n"
    # APPE to a missing file creates it.
    ok(await curl(server, tmp_path, "/new.txt", "--append", "-T", str(local)))
    assert (server.root / "new.txt").read_bytes() == b"second line\n"


@pytest_twisted.ensureDeferred
async def test_curl_site_chmod_then_mlst_and_list(server, tmp_path: Path) -> None:
    (server.root / "f").write_bytes(b"x" * 10)
    result = await curl(server, tmp_path, "/", "-v", "-Q", "SITE CHMOD 600 f",
                        "-Q", "MLST f")
    (line,) = ok(result).splitlines()
    assert parse_list_line(line) == ("-rw-------", 10, "f")
    assert stat.S_IMODE(os.stat(server.root / "f").st_mode) == 0o600
    stderr = result.stderr.decode("utf-8", "replace")
    assert "< 200 SITE CHMOD successful." in stderr
    (facts,) = [line for line in stderr.splitlines() if line.startswith("<  type=")]
    assert "type=file;size=10;" in facts and "unix.mode=0600;" in facts
    assert facts.endswith(" /f")
    # A refused quote command fails curl with exit 21.
    bad = await curl(server, tmp_path, "/", "-Q", "SITE CHMOD 999 f")
    assert bad.returncode == 21, bad.stderr


@pytest.mark.parametrize("host", FAMILIES)
@pytest.mark.parametrize("args,ipv4_verb,ipv6_verb", [
    pytest.param(["--ftp-pasv"], "EPSV", "EPSV", id="ftp-pasv"),
    pytest.param(["--disable-epsv"], "PASV", "EPSV", id="disable-epsv"),
    pytest.param(["-P", "-"], "EPRT", "EPRT", id="active"),
    pytest.param(["-P", "-", "--disable-eprt"], "PORT", "EPRT", id="active-no-eprt"),
])
@pytest_twisted.ensureDeferred
async def test_curl_data_connection_modes(server_factory, tmp_path: Path, host: str,
                                          args: list[str], ipv4_verb: str,
                                          ipv6_verb: str) -> None:
    """On IPv6 curl always uses EPSV/EPRT (PASV/PORT cannot carry the address)."""
    server = await serve(server_factory, host, "curl")
    expected = ipv6_verb if ":" in host else ipv4_verb
    data = payload(server.root / "m.bin", 700_000)
    local = tmp_path / "u.bin"
    up_data = payload(local, 500_000)
    out = tmp_path / "out.bin"

    down = await curl(server, tmp_path, "/m.bin", "-v", *args, "-o", str(out))
    ok(down)
    assert expected in curl_verbs(down)
    assert file_sha256(out) == sha256(data)
    up = await curl(server, tmp_path, "/u.bin", "-v", *args, "-T", str(local))
    ok(up)
    assert expected in curl_verbs(up)
    assert file_sha256(server.root / "u.bin") == sha256(up_data)
    listing = await curl(server, tmp_path, "/", "-v", *args)
    assert sorted(parse_list_line(line)[2] for line in ok(listing).splitlines()) == [
        "m.bin", "u.bin"]
    assert expected in curl_verbs(listing)


# -- wget -----------------------------------------------------------------------------------


async def wget(server: Server, tmp_path: Path, path: str, *args: str,
               cwd: Path) -> subprocess.CompletedProcess:
    binary = require_binary("wget")
    url = f"ftp://alice:secret@{server.url_host}:{server.port}{path}"
    return await in_thread(run, [binary, *args, url], tmp_path / "home", cwd)


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_wget_download_listing_and_resume(server_factory, tmp_path: Path,
                                                host: str) -> None:
    server = await serve(server_factory, host, "wget")
    data = payload(server.root / "dir" / NAME)
    work = tmp_path / "work"
    work.mkdir()

    out = work / "out.bin"
    ok(await wget(server, tmp_path, f"/dir/{quote(NAME)}", "-q", "-O", str(out), cwd=work))
    assert file_sha256(out) == sha256(data)

    ok(await wget(server, tmp_path, "/dir/", "-q", "--no-remove-listing", cwd=work))
    lines = (work / ".listing").read_text("utf-8").splitlines()
    assert [parse_list_line(line)[1:] for line in lines] == [(len(data), NAME)]

    partial = work / "partial.bin"
    partial.write_bytes(data[:777_777])
    result = await wget(server, tmp_path, f"/dir/{quote(NAME)}", "-d", "-c",
                        "-O", str(partial), cwd=work)
    ok(result)
    assert "--> REST 777777" in result.stderr.decode("utf-8", "replace")
    assert file_sha256(partial) == sha256(data)


# -- ncftp ----------------------------------------------------------------------------------

NCFTP_MODES = [
    pytest.param("127.0.0.1", True, id="ipv4-passive"),
    pytest.param("127.0.0.1", False, id="ipv4-active"),
    pytest.param("::1", True, id="ipv6"),
]


def ncftp_args(server: Server, tool: str, passive: bool = True) -> list[str]:
    login = ["-u", "alice", "-p", "secret", "-P", str(server.port)]
    if tool == "ncftp":  # the interactive client takes no other flags
        return login
    return [*login, "-t", "30", *([] if passive else ["-E"])]


async def ncftp_tool(server: Server, tmp_path: Path, tool: str, *args: str,
                     passive: bool = True, cwd: Path | None = None,
                     stdin: bytes | None = None) -> subprocess.CompletedProcess:
    binary = require_binary(tool)
    return await in_thread(run, [binary, *ncftp_args(server, tool, passive), *args],
                           tmp_path / "home", cwd, stdin)


def ncftp_log_commands(log: Path) -> list[str]:
    """The ``Cmd:`` lines of an ncftp -d debug log."""
    out = []
    for line in log.read_text("utf-8", "replace").splitlines():
        _, sep, command = line.partition("  Cmd: ")
        if sep:
            out.append(command)
    return out


def skip_ncftp_ipv6(host: str) -> None:
    if ":" in host:
        pytest.skip("ncftp 3.2.6 has no IPv6 support ('::1: unknown host', no [::1] URLs)")


@pytest.mark.parametrize("host,passive", NCFTP_MODES)
@pytest_twisted.ensureDeferred
async def test_ncftp_round_trip(server, tmp_path: Path, host: str, passive: bool) -> None:
    skip_ncftp_ipv6(host)
    for tool in ("ncftp", "ncftpput", "ncftpget", "ncftpls"):
        require_binary(tool)
    outbox = tmp_path / "outbox"
    data = payload(outbox / NAME)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    base = f"ftp://{server.host}/dir/"

    # ncftpput -m creates the remote directory; the remote name is the local one.
    ok(await ncftp_tool(server, tmp_path, "ncftpput", "-V", "-m", server.host, "/dir",
                        str(outbox / NAME), passive=passive))
    assert file_sha256(server.root / "dir" / NAME) == sha256(data)

    (line,) = ok(await ncftp_tool(server, tmp_path, "ncftpls", "-l", base,
                                  passive=passive)).splitlines()
    assert parse_list_line(line)[1:] == (len(data), NAME)
    mlsd = ok(await ncftp_tool(server, tmp_path, "ncftpls", "-m", base,
                               passive=passive)).splitlines()
    facts = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in mlsd}
    assert sorted(facts) == [".", "..", NAME]
    assert facts["."].startswith("type=cdir;")
    assert f"type=file;size={len(data)};" in facts[NAME]

    ok(await ncftp_tool(server, tmp_path, "ncftpget", "-V", server.host, str(inbox),
                        f"/dir/{NAME}", passive=passive))
    assert file_sha256(inbox / NAME) == sha256(data)

    # The interactive client, driven through stdin: rename, delete, rmdir.
    script = (f"set passive {'on' if passive else 'off'}\n"
              f'rename "dir/{NAME}" dir/renamed.bin\nls -1 dir\n'
              "rm dir/renamed.bin\nrmdir dir\nquit\n")
    result = await ncftp_tool(server, tmp_path, "ncftp", server.host, passive=passive,
                              stdin=script.encode("utf-8"))
    assert "renamed.bin" in ok(result)
    assert os.listdir(server.root) == []


@pytest_twisted.ensureDeferred
async def test_ncftpget_resumes_partial_download(server, tmp_path: Path) -> None:
    """ncftpget resumes by default (-z) when a shorter local file exists."""
    require_binary("ncftpget")
    data = payload(server.root / "r.bin")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "r.bin").write_bytes(data[:111_111])
    log = tmp_path / "ncftp.log"

    ok(await ncftp_tool(server, tmp_path, "ncftpget", "-V", "-d", str(log), server.host,
                        str(inbox), "/r.bin"))
    commands = ncftp_log_commands(log)
    assert commands.index("REST 111111") + 1 == commands.index("RETR /r.bin")
    assert file_sha256(inbox / "r.bin") == sha256(data)


@pytest_twisted.ensureDeferred
async def test_ncftpput_resumes_upload_and_sets_mtime(server, tmp_path: Path) -> None:
    """ncftpput -z: REST + STOR of the rest, then MFMT to the local file's mtime.

    ``-s`` (no sendfile) is needed: ncftpput 3.2.6's sendfile path ignores the resume
    offset and sends the whole file after REST (a client bug, seen in its own log as
    "Using sendfile for <full size> bytes").
    """
    require_binary("ncftpput")
    outbox = tmp_path / "outbox"
    data = payload(outbox / "up.bin")
    os.utime(outbox / "up.bin", (1_500_000_000, 1_500_000_000))
    (server.root / "up.bin").write_bytes(data[:222_222])
    log = tmp_path / "ncftp.log"

    ok(await ncftp_tool(server, tmp_path, "ncftpput", "-V", "-z", "-s", "-d", str(log),
                        server.host, "/", str(outbox / "up.bin")))
    commands = ncftp_log_commands(log)
    assert commands.index("REST 222222") + 1 == commands.index("STOR up.bin")
    assert f"MFMT {utc_stamp(1_500_000_000)} up.bin" in commands
    assert file_sha256(server.root / "up.bin") == sha256(data)
    assert os.stat(server.root / "up.bin").st_mtime == 1_500_000_000


# -- tnftp (BSD ftp) -------------------------------------------------------------------------


async def tnftp(server: Server, tmp_path: Path, cwd: Path, *commands: str,
                passive: bool = True) -> str:
    """Drive ``tnftp -n -v`` through stdin; returns its output (every reply is echoed)."""
    binary = require_binary("tnftp")
    script = "\n".join([
        f"open {server.host} {server.port}", "user alice secret", "binary",
        f"passive {'on' if passive else 'off'}", *commands, "bye", "",
    ])
    result = await in_thread(run, [binary, "-n", "-v"], tmp_path / "home", cwd,
                             script.encode("utf-8"))
    out = ok(result)
    failures = [line for line in out.splitlines() if re.match(r"[45]\d\d ", line)]
    assert failures == [], out
    return out


@pytest.mark.parametrize("host,passive", FAMILY_MODES)
@pytest_twisted.ensureDeferred
async def test_tnftp_round_trip(server_factory, tmp_path: Path, host: str,
                                passive: bool) -> None:
    server = await serve(server_factory, host, "tnftp")
    work = tmp_path / "work"
    data = payload(work / "local.bin")

    out = await tnftp(server, tmp_path, work, "mkdir dir", f'put local.bin "dir/{NAME}"',
                      "ls dir", f'get "dir/{NAME}" back.bin',
                      f'rename "dir/{NAME}" dir/renamed.bin', passive=passive)
    expected = "229 Entering Extended Passive Mode" if passive else "200 Active data connection"
    assert expected in out
    (line,) = [line for line in out.splitlines() if line.startswith("-rw")]
    assert parse_list_line(line)[1:] == (len(data), NAME)
    assert file_sha256(work / "back.bin") == sha256(data)
    assert os.listdir(server.root / "dir") == ["renamed.bin"]

    await tnftp(server, tmp_path, work, "delete dir/renamed.bin", "rmdir dir",
                passive=passive)
    assert os.listdir(server.root) == []


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_tnftp_reget_and_url_mode(server_factory, tmp_path: Path, host: str) -> None:
    binary = require_binary("tnftp")
    server = await serve(server_factory, host)
    data = payload(server.root / NAME)
    work = tmp_path / "work"
    work.mkdir()
    (work / "partial.bin").write_bytes(data[:99_999])

    out = await tnftp(server, tmp_path, work, f'reget "{NAME}" partial.bin')
    assert "350 Restarting at 99999." in out
    assert file_sha256(work / "partial.bin") == sha256(data)

    url = f"ftp://alice:secret@{server.url_host}:{server.port}/{quote(NAME)}"
    ok(await in_thread(run, [binary, "-V", "-o", str(work / "url.bin"), url],
                       tmp_path / "home", work))
    assert file_sha256(work / "url.bin") == sha256(data)


# -- ftplib -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host,passive", FAMILY_MODES)
@pytest_twisted.ensureDeferred
async def test_ftplib_round_trip(server_factory, host: str, passive: bool) -> None:
    server = await serve(server_factory, host)
    data = os.urandom(PAYLOAD_SIZE)

    def session() -> None:
        with server.session(passive=passive) as ftp:
            assert ftp.mkd("dir") == "/dir"
            ftp.storbinary(f"STOR dir/{NAME}", io.BytesIO(data))
            assert ftp.nlst("dir") == [NAME]
            entries = dict(ftp.mlsd("dir"))
            assert entries[NAME]["size"] == str(len(data))
            assert entries["."]["type"] == "cdir" and entries[".."]["type"] == "pdir"
            assert sha256(ftp_retr(ftp, f"dir/{NAME}")) == sha256(data)
            # Resume an interrupted download from an offset (REST + RETR).
            assert ftp_retr(ftp, f"dir/{NAME}", rest=1_000_001) == data[1_000_001:]
            assert ftp.rename(f"dir/{NAME}", "dir/renamed.bin").startswith("250")
            assert ftp.size("dir/renamed.bin") == len(data)
            assert ftp.delete("dir/renamed.bin").startswith("250")
            assert ftp.rmd("dir").startswith("250")
            assert ftp.nlst() == []

    await in_thread(session)
    assert os.listdir(server.root) == []


@pytest.mark.parametrize("host,passive", FAMILY_MODES)
@pytest_twisted.ensureDeferred
async def test_ftplib_resumes_upload_and_appends(server_factory, host: str,
                                                 passive: bool) -> None:
    server = await serve(server_factory, host)
    data = os.urandom(PAYLOAD_SIZE)
    (server.root / "up.bin").write_bytes(data[:600_000])

    def session() -> None:
        with server.session(passive=passive) as ftp:
            ftp.storbinary("STOR up.bin", io.BytesIO(data[600_000:]), rest=600_000)
            ftp.storbinary("APPE log.bin", io.BytesIO(b"one"))
            ftp.storbinary("APPE log.bin", io.BytesIO(b"two"))

    await in_thread(session)
    assert file_sha256(server.root / "up.bin") == sha256(data)
    assert (server.root / "log.bin").read_bytes() == b"onetwo"


@pytest_twisted.ensureDeferred
async def test_ftplib_mlsd_facts_match_os_stat(server) -> None:
    (server.root / "d").mkdir()
    payload(server.root / "f.bin", 4321)
    os.chmod(server.root / "f.bin", 0o640)
    os.utime(server.root / "f.bin", (1_234_567_890, 1_234_567_890.75))

    def session() -> tuple[dict[str, dict[str, str]], str]:
        with server.session() as ftp:
            entries = dict(ftp.mlsd("", facts=["type", "size", "modify", "perm",
                                               "unix.mode", "unique"]))
            return entries, ftp.sendcmd("MLST f.bin")

    entries, mlst = await in_thread(session)
    assert sorted(entries) == [".", "d", "f.bin"]  # no ".." at the root
    for name, kind in (("d", "dir"), ("f.bin", "file"), (".", "cdir")):
        st = os.stat(server.root / name)
        facts = entries[name]
        assert facts["type"] == kind
        assert facts["modify"] == utc_stamp(st.st_mtime)
        assert facts["unix.mode"] == f"0{stat.S_IMODE(st.st_mode):03o}"
        assert facts["unique"]
        assert ("size" in facts) == (kind == "file")
    assert entries["f.bin"]["size"] == "4321"
    assert entries["f.bin"]["modify"] == "20090213233130"  # the fraction is dropped
    assert entries["f.bin"]["perm"] == "adfrw"
    assert entries["d"]["perm"] == "cdeflmp"
    lines = mlst.splitlines()
    assert lines[0].startswith("250-") and lines[-1].startswith("250 ")
    assert lines[1].startswith(" type=file;size=4321;modify=20090213233130;")
    assert lines[1].endswith(" /f.bin")


@pytest_twisted.ensureDeferred
async def test_ftplib_mfmt_then_mdtm_agrees(server) -> None:
    (server.root / "f.bin").write_bytes(b"data")

    def session() -> tuple[str, str]:
        with server.session() as ftp:
            return ftp.sendcmd("MFMT 20200102030405 f.bin"), ftp.sendcmd("MDTM f.bin")

    mfmt, mdtm = await in_thread(session)
    assert mfmt == "213 Modify=20200102030405; /f.bin"
    assert mdtm == "213 20200102030405"
    assert os.stat(server.root / "f.bin").st_mtime == calendar.timegm(
        (2020, 1, 2, 3, 4, 5, 0, 0, 0))


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_ftplib_stou(server_factory, host: str) -> None:
    """STOU answers ``150 FILE: <name>`` (RFC 1123 4.1.2.9) and stores under that name."""
    server = await serve(server_factory, host)
    data = os.urandom(300_000)
    (server.root / "taken").write_bytes(b"old")

    def stou(command: str) -> str:
        with server.session() as ftp:
            ftp.voidcmd("TYPE I")
            conn = socket.create_connection(ftp.makepasv(), timeout=FTP_TIMEOUT)
            preliminary = ftp.sendcmd(command)
            conn.sendall(data)
            conn.close()
            assert ftp.voidresp().startswith("226")
            return preliminary

    names = []
    for command in ("STOU", "STOU", "STOU taken"):
        preliminary = await in_thread(stou, command)
        match = re.fullmatch(r"150 FILE: (\S+)", preliminary)
        assert match, preliminary
        names.append(match.group(1))
    assert len(set(names)) == 3 and "taken" not in names
    assert names[2].startswith("taken.")
    for name in names:
        assert file_sha256(server.root / name) == sha256(data)
    assert (server.root / "taken").read_bytes() == b"old"


@pytest_twisted.ensureDeferred
async def test_ftplib_stat(server) -> None:
    (server.root / "f.bin").write_bytes(b"12345")

    def session() -> tuple[str, str, str]:
        with server.session() as ftp:
            ftp.voidcmd("TYPE I")
            return ftp.sendcmd("STAT"), ftp.sendcmd("STAT f.bin"), ftp.sendcmd("STAT /")

    status, file_status, dir_status = await in_thread(session)
    assert status.startswith("211-") and status.splitlines()[-1].startswith("211 ")
    assert " Logged in as alice" in status and "TYPE: BINARY" in status
    assert file_status.startswith("213-") and file_status.splitlines()[-1].startswith("213 ")
    (line,) = [line for line in file_status.splitlines() if line.startswith(" -")]
    assert parse_list_line(line.strip())[1:] == (5, "f.bin")
    # RFC 959 allows 212 (directory status) or 213 for a directory argument.
    assert "f.bin" in dir_status and dir_status[:4] in ("212-", "213-")


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_ftplib_host_before_login(server_factory, host: str) -> None:
    server = await serve(server_factory, host)
    name = "[::1]" if ":" in host else "127.0.0.1"

    def session() -> tuple[str, str]:
        ftp = server.connect(user=None)
        try:
            accepted = ftp.sendcmd(f"HOST {name}")
            ftp.login("alice", "secret")
            with pytest.raises(ftplib.error_perm) as late:
                ftp.sendcmd("HOST example.org")
            return accepted, str(late.value)
        finally:
            close_quietly(ftp)

    accepted, late = await in_thread(session)
    assert accepted.startswith("220")
    assert late.startswith("503")
    await server.still_serves()


def epsv_retr(ftp: ftplib.FTP, name: str) -> bytes:
    """RETR over a data connection set up by plain EPSV (ftplib uses PASV on IPv4)."""
    _, port = ftplib.parse229(ftp.sendcmd("EPSV"), ftp.sock.getpeername())
    with socket.create_connection((ftp.sock.getpeername()[0], port),
                                  timeout=FTP_TIMEOUT) as conn:
        assert ftp.sendcmd(f"RETR {name}").startswith("150")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    assert ftp.voidresp().startswith("226")
    return b"".join(chunks)


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_ftplib_epsv_all(server_factory, host: str) -> None:
    """RFC 2428 EPSV ALL: PASV/PORT/EPRT are refused with 503, EPSV still works."""
    server = await serve(server_factory, host)
    data = os.urandom(200_000)
    (server.root / "f.bin").write_bytes(data)

    def session() -> tuple[list[str], bytes]:
        with server.session() as ftp:
            ftp.voidcmd("TYPE I")
            assert ftp.sendcmd("EPSV ALL").startswith("200")
            refused = []
            for command in ("PASV", "PORT 127,0,0,1,200,10", "EPRT |1|127.0.0.1|51210|"):
                with pytest.raises(ftplib.error_perm) as info:
                    ftp.sendcmd(command)
                refused.append(str(info.value)[:3])
            return refused, epsv_retr(ftp, "f.bin")

    refused, received = await in_thread(session)
    assert refused == ["503", "503", "503"]
    assert received == data


@pytest.mark.parametrize("host", FAMILIES)
@pytest_twisted.ensureDeferred
async def test_ftplib_type_a_conversion(server_factory, host: str) -> None:
    """TYPE A: LF files go out as CRLF; CRLF uploads are stored with LF."""
    server = await serve(server_factory, host)
    (server.root / "unix.txt").write_bytes(b"one\ntwo\n\nthree\n")

    def session() -> tuple[bytes, list[str], str]:
        with server.session() as ftp:
            ftp.voidcmd("TYPE A")
            conn = ftp.transfercmd("RETR unix.txt")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            conn.close()
            assert ftp.voidresp().startswith("226")
            lines: list[str] = []
            ftp.retrlines("RETR unix.txt", lines.append)
            ftp.storlines("STOR up.txt", io.BytesIO(b"alpha\nbeta\n"))  # sends CRLF
            ftp.voidcmd("TYPE A")
            conn = ftp.transfercmd("STOR raw.txt")
            conn.sendall(b"x\r\ny\r\n")
            conn.close()
            assert ftp.voidresp().startswith("226")
            with pytest.raises(ftplib.error_perm) as info:
                ftp.sendcmd("SIZE unix.txt")  # refused in TYPE A
            return b"".join(chunks), lines, str(info.value)

    wire, lines, size_refusal = await in_thread(session)
    assert wire == b"one\r\ntwo\r\n\r\nthree\r\n"
    assert lines == ["one", "two", "", "three"]
    assert (server.root / "up.txt").read_bytes() == b"alpha\nbeta\n"
    assert (server.root / "raw.txt").read_bytes() == b"x\ny\n"
    assert size_refusal.startswith("550")


@pytest_twisted.ensureDeferred
async def test_ftplib_abor_of_running_transfer(server) -> None:
    """A plain in-band ABOR mid-RETR: 426 for the transfer, then 226 for ABOR."""

    def session() -> tuple[str, str, str]:
        with retr_running(server) as (ftp, conn):
            ftp.putcmd("ABOR")  # without ftplib.abort()'s urgent flag
            first, second = ftp.getline(), ftp.getline()
            conn.close()
            return first, second, ftp.voidcmd("NOOP")

    first, second, noop = await in_thread(session)
    assert first.startswith("426") and second.startswith("226")
    assert noop.startswith("200")


@pytest_twisted.ensureDeferred
async def test_ftplib_abort_is_understood(server) -> None:
    def session() -> tuple[str, str, str]:
        with retr_running(server) as (ftp, conn):
            conn.close()  # stop reading; the RETR ends in 426 either way
            first = ftp.abort()  # ABOR, urgent; reads one reply (426, 225 or 226)
            ftp.putcmd("NOOP")
            return first, ftp.getresp(), ftp.getresp()

    first, abor_reply, noop = await in_thread(session)
    assert first.startswith("426")
    assert abor_reply[:3] in ("225", "226")
    assert noop.startswith("200")


# -- ftputil --------------------------------------------------------------------------------


@pytest.mark.parametrize("host,passive", FAMILY_MODES)
@pytest_twisted.ensureDeferred
async def test_ftputil_round_trip(server_factory, tmp_path: Path, host: str,
                                  passive: bool) -> None:
    import warnings

    with warnings.catch_warnings():  # ftputil 5 warns at import about its 6.0 default
        warnings.simplefilter("ignore", DeprecationWarning)
        import ftputil
        import ftputil.session

    server, local, data, back = await round_trip_setup(server_factory, tmp_path, host)
    factory = ftputil.session.session_factory(port=server.port, use_passive_mode=passive,
                                              encoding="UTF-8")

    def session() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with ftputil.FTPHost(server.host, "alice", "secret",
                             session_factory=factory) as ftp_host:
            ftp_host.set_time_shift(0)  # server times are UTC
            ftp_host.makedirs("/a/b/c")
            ftp_host.upload(str(local), f"/a/b/{NAME}")
            seen["real_mtime"] = os.stat(server.root / "a" / "b" / NAME).st_mtime
            seen["listdir"] = sorted(ftp_host.listdir("/a/b"))
            info = ftp_host.stat(f"/a/b/{NAME}")
            seen["size"], seen["mtime"] = info.st_size, info.st_mtime
            seen["isdir"] = ftp_host.path.isdir("/a/b/c")
            seen["isfile"] = ftp_host.path.isfile(f"/a/b/{NAME}")
            ftp_host.download(f"/a/b/{NAME}", str(back))
            ftp_host.rename(f"/a/b/{NAME}", "/a/renamed.bin")
            seen["walk"] = [(top, sorted(dirs), sorted(files))
                            for top, dirs, files in ftp_host.walk("/a")]
            ftp_host.remove("/a/renamed.bin")
            ftp_host.rmtree("/a")
            seen["after"] = ftp_host.listdir("/")
        return seen

    seen = await in_thread(session)
    assert seen["listdir"] == ["c", NAME]
    assert seen["size"] == len(data)
    # LIST shows minutes only; ftputil reads them as UTC (time_shift 0).
    assert seen["mtime"] == seen["real_mtime"] // 60 * 60
    assert seen["isdir"] and seen["isfile"]
    assert file_sha256(back) == sha256(data)
    assert seen["walk"] == [("/a", ["b"], ["renamed.bin"]), ("/a/b", ["c"], []),
                            ("/a/b/c", [], [])]
    assert seen["after"] == []
    assert os.listdir(server.root) == []


# -- Twisted FTPClient ----------------------------------------------------------------------


def wire(name: str) -> str:
    """FTPClient encodes commands as latin-1: pass UTF-8 bytes through unchanged."""
    return name.encode("utf-8").decode("latin-1")


async def twisted_store(client: FTPClient, path: str, data: bytes) -> str:
    consumer_d, done = client.storeFile(path)
    consumer = await consumer_d
    for start in range(0, len(data), 65536):
        consumer.write(data[start:start + 65536])
    consumer.finish()
    (_, command_results), *_ = await done
    ((_, stor_reply),) = command_results
    return stor_reply[-1]


@pytest.mark.parametrize("host,passive", FAMILY_MODES)
@pytest_twisted.ensureDeferred
async def test_twisted_client_round_trip(server_factory, host: str, passive: bool) -> None:
    if ":" in host:
        pytest.skip("twisted.protocols.ftp.FTPClient only speaks PASV/PORT (IPv4 only)")
    server = await serve(server_factory, host)
    data = os.urandom(PAYLOAD_SIZE)
    creator = ClientCreator(reactor, FTPClient, "alice", "secret", passive=int(passive))
    client = await creator.connectTCP(server.host, server.port)
    try:
        assert (await client.makeDirectory("dir"))[-1].startswith("257")
        assert (await twisted_store(client, wire(f"dir/{NAME}"), data)).startswith("226")
        assert file_sha256(server.root / "dir" / NAME) == sha256(data)

        listing = FTPFileListProtocol()
        await client.list("dir", listing)
        assert [(f["filename"].encode("latin-1").decode("utf-8"), f["size"])
                for f in listing.files] == [(NAME, len(data))]

        collector = Collector()
        await client.retrieveFile(wire(f"dir/{NAME}"), collector)
        assert sha256(collector.data) == sha256(data)
        resumed = Collector()
        await client.retrieveFile(wire(f"dir/{NAME}"), resumed, offset=1_234_567)
        assert resumed.data == data[1_234_567:]

        _, rnto = await client.rename(wire(f"dir/{NAME}"), "dir/r.bin")
        assert rnto[-1].startswith("250")
        assert (await client.removeFile("dir/r.bin"))[-1].startswith("250")
        assert (await client.removeDirectory("dir"))[-1].startswith("250")
    finally:
        await client.quit()
    assert os.listdir(server.root) == []
    await server.all_sessions_gone()
