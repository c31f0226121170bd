"""--upload-check and --on-upload with real /bin/sh children and real ftplib uploads
against a server on 127.0.0.1."""

from __future__ import annotations

import ftplib
import io
import os
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.integration import conftest
from tests.integration.conftest import in_thread, part_files
from twisted_ftpd.testing import start_server

pytestmark = pytest.mark.integration

# Rejects anything containing "EICAR" (a scanner stand-in); records its view of things.
CHECK = """#!/bin/sh
env | grep '^FTPD_' | sort > "{record}"
echo "argv1=$1" >> "{record}"
if grep -q EICAR "$1"; then
    echo "infected: Eicar-Test-Signature"
    exit 1
fi
"""
# Outlives any timeout, and starts a grandchild that must die with it.
SLEEPER = """#!/bin/sh
sleep 600 &
echo $$ $! > "{pids}"
wait
"""
RECORD_ENV = """#!/bin/sh
env | grep '^FTPD_' | sort > "{record}.tmp"
mv "{record}.tmp" "{record}"
"""


def script(tmp_path: Path, name: str, text: str, **paths: Path) -> str:
    path = tmp_path / name
    path.write_text(text.format(**paths))
    path.chmod(0o755)
    return f'"{path}" "$1"'


def stor_reply(ftp: ftplib.FTP, name: str, data: bytes) -> str:
    """STOR ``data``; the final reply's text, whatever the server made of it."""
    try:
        return ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    except ftplib.error_perm as e:
        return str(e)
    except OSError:  # the server dropped the data connection while we were sending
        try:
            return ftp.getresp()
        except ftplib.error_perm as e:
            return str(e)


def record_of(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest_twisted.ensureDeferred
async def test_a_check_vetoes_an_upload_and_the_old_file_stays(server_factory,
                                                              tmp_path: Path) -> None:
    record = tmp_path / "check.env"
    server = await server_factory(upload_check=script(tmp_path, "check.sh", CHECK,
                                                      record=record))
    (server.root / "report.pdf").write_bytes(b"the good old report")

    def client() -> tuple[str, str, str]:
        with server.session() as ftp:
            bad = stor_reply(ftp, "report.pdf", b"X5O!P%@AP EICAR-STANDARD-ANTIVIRUS-TEST")
            bad_new = stor_reply(ftp, "new.exe", b"EICAR" * 1000)
            good = stor_reply(ftp, "clean.txt", b"nothing to see\n" * 50000)
            return bad, bad_new, good

    bad, bad_new, good = await in_thread(client)
    assert bad == "550 /report.pdf: Upload rejected: infected: Eicar-Test-Signature"
    assert bad_new.startswith("550 /new.exe: Upload rejected: infected")
    assert good.startswith("226")
    assert (server.root / "report.pdf").read_bytes() == b"the good old report"
    assert not (server.root / "new.exe").exists()
    assert (server.root / "clean.txt").read_bytes() == b"nothing to see\n" * 50000
    assert part_files(server.root) == []
    seen = record_of(record)  # the last check: clean.txt, seen before it landed
    assert seen["FTPD_PATH"] == "/clean.txt" and seen["FTPD_USER"] == "alice"
    assert seen["FTPD_SIZE"] == str(15 * 50000) and seen["FTPD_CLIENT"] == "127.0.0.1"
    assert seen["FTPD_FILE"] == seen["argv1"]
    assert Path(seen["FTPD_FILE"]).parent == server.root
    assert Path(seen["FTPD_FILE"]).name.startswith(".clean.txt.")
    assert len(seen["FTPD_SESSION"]) in (0, 8)


@pytest_twisted.ensureDeferred
async def test_a_check_past_the_timeout_is_killed_and_rejects(server_factory,
                                                             tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    server = await server_factory(upload_check=script(tmp_path, "sleeper.sh", SLEEPER,
                                                      pids=pids), hook_timeout=1.0)

    def client() -> str:
        with server.session() as ftp:
            return stor_reply(ftp, "slow.bin", b"data")

    assert await in_thread(client) == "550 /slow.bin: Upload rejected: timed out after 1 s"
    assert not (server.root / "slow.bin").exists() and part_files(server.root) == []
    shell, grandchild = map(int, pids.read_text().split())
    # The check ran in a session of its own, the grandchild in its process group, and
    # that group got the SIGKILL: each is gone or on its way (dying, or a zombie).
    groups = set()
    for pid in (shell, grandchild):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        groups.add((int(fields[2]), int(fields[3])))  # (process group, session)
    assert len(groups) <= 1
    for group, session in groups:
        assert group == session != os.getsid(0)


@pytest_twisted.ensureDeferred
async def test_on_upload_runs_after_the_upload_landed(server_factory, tmp_path: Path) -> None:
    record = tmp_path / "landed.env"
    server = await server_factory(on_upload=script(tmp_path, "landed.sh", RECORD_ENV,
                                                   record=record))
    payload = os.urandom(300_000)

    def client() -> str:
        with server.session() as ftp:
            return stor_reply(ftp, "in/../photo.jpg", payload)

    assert (await in_thread(client)).startswith("226")
    await defer.gatherResults(list(server.factory.upload_hooks.running))
    seen = record_of(record)
    assert seen["FTPD_FILE"] == str(server.root / "photo.jpg")
    assert Path(seen["FTPD_FILE"]).read_bytes() == payload
    assert seen["FTPD_SIZE"] == str(len(payload)) and seen["FTPD_PATH"] == "/photo.jpg"


# Says it is running (its pid and its grandchild's, through a FIFO), then outlives any test.
LINGERER = """#!/bin/sh
sleep 600 &
echo $$ $! > "{ready}"
wait
"""


def killed(pid: int) -> bool:
    """The process has exited, or a SIGKILL is on its way to it (a zombie not yet
    reaped, or a SIGKILL pending, counts: nothing it does can stop that)."""
    try:
        status = dict(line.split(":\t", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    except FileNotFoundError:
        return True
    pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
    return status["State"][0] in "ZX" or bool(pending & (1 << (9 - 1)))


@pytest_twisted.ensureDeferred
async def test_a_stopping_server_kills_the_hooks_still_running(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    server = await conftest.start_server(tmp_path / "server", on_upload=script(
        tmp_path, "linger.sh", LINGERER, ready=ready))

    def upload_and_wait_for_the_hook() -> tuple[str, str]:
        with server.session() as ftp:
            reply = stor_reply(ftp, "f.bin", b"data")
        return reply, ready.read_text()  # blocks until the hook has started

    reply, pids = await in_thread(upload_and_wait_for_the_hook)
    assert reply.startswith("226")
    (hook,) = server.factory.upload_hooks.running
    await server.stop()  # fires once the killed hook has ended
    assert hook.called
    shell, grandchild = map(int, pids.split())
    assert killed(shell) and killed(grandchild)


@pytest_twisted.ensureDeferred
async def test_the_in_memory_test_server_spools_uploads_for_the_check(tmp_path: Path) -> None:
    record = tmp_path / "check.env"
    from twisted.internet import reactor

    server = await start_server(memory=True, reactor=reactor,
                                upload_check=script(tmp_path, "check.sh", CHECK, record=record))
    try:
        def client() -> tuple[str, str]:
            with ftplib.FTP() as ftp:
                ftp.connect(server.host, server.port, timeout=30)
                ftp.login("alice", "secret")
                return stor_reply(ftp, "a.txt", b"EICAR"), stor_reply(ftp, "b.txt", b"fine")

        bad, good = await in_thread(client)
    finally:
        await server.stop()
    assert bad.startswith("550 /a.txt: Upload rejected: infected")
    assert good.startswith("226")
    seen = record_of(record)
    assert seen["FTPD_SIZE"] == "4" and not Path(seen["FTPD_FILE"]).exists()  # spool removed


def test_checks_end_on_a_reactor_without_signal_handlers(tmp_path: Path) -> None:
    # ServerThread's reactor runs in a thread, so no SIGCHLD tells it a child exited.
    from twisted_ftpd.testing import ServerThread

    with ServerThread(upload_check='echo "no: $FTPD_PATH"; exit 1') as server:
        with ftplib.FTP() as ftp:
            ftp.connect(server.host, server.port, timeout=30)
            ftp.login("alice", "secret")
            replies = [stor_reply(ftp, f"f{n}.txt", b"data") for n in range(50)]
    assert replies == [f"550 /f{n}.txt: Upload rejected: no: /f{n}.txt" for n in range(50)]
