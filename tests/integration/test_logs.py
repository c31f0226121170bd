"""The log a real server writes for real ftplib sessions: JSON lines from server.py
and twistd, text on stdout, no per-transfer noise from the passive ports, and the
xferlog."""

from __future__ import annotations

import ftplib
import io
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.harness import write_users
from tests.helpers import SERVER_PY, TWISTD
from tests.integration.conftest import in_thread, sparse_file
from tests.integration.tls_helpers import (
    free_port,
    make_tls_files,
    start_process,
    stor,
    tls_session,
)

pytestmark = pytest.mark.integration


def port_lines(texts: list[str], port: int) -> list[str]:
    """Lines about listening ports other than the control port ``port``: the passive
    data ports' "starting on N" and "(TCP Port N Closed)", which must not be there."""
    return [t for t in texts
            if ("starting on" in t or "Closed)" in t) and str(port) not in t]


def session(port: int) -> None:
    """A failed login, then alice: upload, download, rename, mkdir, delete, quit."""
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=30)
        with pytest.raises(ftplib.error_perm):
            ftp.login("alice", "wrong")
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=30)
        ftp.login("alice", "secret")
        ftp.storbinary("STOR up load.bin", io.BytesIO(b"x" * 5000))
        assert ftp.retrbinary("RETR up load.bin", lambda _: None).startswith("226")
        ftp.rename("up load.bin", "moved.bin")
        ftp.mkd("d")
        ftp.delete("moved.bin")
        with pytest.raises(ftplib.error_perm):
            ftp.sendcmd("SITE CHMOD 644 nope")  # refused by the shell, not the gate
        ftp.quit()


def run_server(command: list[str], cwd: Path, port: int) -> str:
    """Start the server, run ``session`` against it, stop it: its stdout."""
    proc = start_process(command, cwd)
    try:
        session(port)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    return out


def site(tmp_path: Path) -> list[str]:
    write_users(tmp_path / "users.db", {"alice": ("secret", "elradfmwMT")}, None)
    return ["--interface", "127.0.0.1", "--root", str(tmp_path / "files"),
            "--users", str(tmp_path / "users.db")]


def events_in(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "ftpd_event" in line]


def check_session_events(events: list[dict[str, Any]]) -> None:
    names = [e["ftpd_event"] for e in events]
    assert names == ["connect", "login", "connect", "login", "transfer", "transfer", "rename",
                     "mkdir", "delete", "logout"], names
    failed, ok = (e for e in events if e["ftpd_event"] == "login")
    assert (failed["user"], failed["method"], failed["result"]) == ("alice", "password", "failed")
    assert failed["log_level"]["name"] == "warn"
    assert (ok["result"], ok["peer"]) == ("ok", "127.0.0.1")
    upload, download = (e for e in events if e["ftpd_event"] == "transfer")
    for event, direction in ((upload, "upload"), (download, "download")):
        assert (event["direction"], event["path"], event["bytes"], event["completed"]) == (
            direction, "/up load.bin", 5000, True)
        assert (event["tls"], event["mode"], event["reason"]) == (False, "binary", None)
        assert event["seconds"] >= 0 and event["rate"] >= 0
    # One session id for everything the second connection did, another for the first.
    assert len({e["session"] for e in events[2:]}) == 1 != len({e["session"] for e in events})
    rename = next(e for e in events if e["ftpd_event"] == "rename")
    assert (rename["path"], rename["to"], rename["user"]) == ("/up load.bin", "/moved.bin",
                                                               "alice")


def test_server_py_writes_json_lines_to_its_log_file(tmp_path: Path) -> None:
    port = free_port()
    log_file = tmp_path / "ftpd.log"
    os.mkfifo(log_file)  # read as it is written: the start line says when to begin
    command = [*SERVER_PY, "--port", str(port), *site(tmp_path),
               "--log-format", "json", "--log-file", str(log_file)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        with open(log_file) as log:
            head = []
            for line in log:
                head.append(line)
                if "twisted-ftpd serving" in line:
                    break
            session(port)
            os.killpg(proc.pid, signal.SIGTERM)
            text = "".join(head) + log.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert out == ""  # all of it went to the file
    lines = [json.loads(line) for line in text.splitlines()]
    check_session_events(events_in(lines))
    assert port_lines([line.get("log_text", "") for line in lines], port) == []


def test_twistd_writes_json_lines_to_its_logfile_and_the_xferlog(tmp_path: Path) -> None:
    port = free_port()
    command = [*TWISTD, "-n", "--pidfile=", "--logfile=-", "ftpd", "--port", str(port),
               *site(tmp_path), "--log-format", "json", "--xferlog", str(tmp_path / "xferlog")]
    lines = [json.loads(line) for line in run_server(command, tmp_path, port).splitlines()]
    check_session_events(events_in(lines))
    transfers = [line.split()[11:] for line in (tmp_path / "xferlog").read_text().splitlines()]
    assert transfers == [["i", "r", "alice", "ftp", "0", "*", "c"],
                         ["o", "r", "alice", "ftp", "0", "*", "c"]]
    assert port_lines([line.get("log_text", "") for line in lines], port) == []


def test_text_log_on_stdout_shows_the_events_without_port_noise(tmp_path: Path) -> None:
    port = free_port()
    command = [*SERVER_PY, "--port", str(port), *site(tmp_path)]
    out = run_server(command, tmp_path, port)
    assert "[twisted_ftpd.events#warn]" in out and "login failed for 'alice'" in out
    assert "'alice' from 127.0.0.1 upload '/up load.bin': 5000 bytes in" in out
    assert ", complete\n" in out
    assert port_lines(out.splitlines(), port) == []


@pytest_twisted.ensureDeferred
async def test_xferlog_of_real_sessions(server_factory, tmp_path: Path) -> None:
    xferlog = tmp_path / "xferlog"
    server = await server_factory(xferlog=str(xferlog))
    sparse_file(server.root / "big file.bin")

    def sessions() -> None:
        with server.session() as ftp:
            ftp.storbinary("STOR a b.txt", io.BytesIO(b"z" * 1234))
            ftp.retrlines("RETR a b.txt", lambda _: None)  # TYPE A
            ftp.voidcmd("TYPE I")
            data = ftp.transfercmd("RETR big file.bin")
            data.recv(1000)
            data.close()  # the client gives up: 426, an incomplete transfer
            with pytest.raises(ftplib.error_temp):
                ftp.voidresp()
        with server.session("anonymous") as ftp:
            ftp.retrbinary("RETR a b.txt", lambda _: None)

    await in_thread(sessions)
    await server.all_sessions_gone()
    lines = [line.split() for line in xferlog.read_text().splitlines()]
    assert [words[5 + 2:] for words in lines[:2]] == [
        ["1234", "/a_b.txt", "b", "_", "i", "r", "alice", "ftp", "0", "*", "c"],
        ["1234", "/a_b.txt", "a", "_", "o", "r", "alice", "ftp", "0", "*", "c"]]
    broken, anonymous = lines[2], lines[3]
    assert broken[8:] == ["/big_file.bin", "b", "_", "o", "r", "alice", "ftp", "0", "*", "i"]
    assert 0 < int(broken[7]) < 64 << 20
    assert anonymous[7:] == ["1234", "/a_b.txt", "b", "_", "o", "a", "anonymous", "ftp", "0",
                             "*", "c"]
    assert all(words[6] == "127.0.0.1" and int(words[5]) >= 1 for words in lines)


@pytest_twisted.ensureDeferred
async def test_transfers_say_whether_their_data_connection_was_tls(server_factory,
                                                                 tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    server = await server_factory(tls_cert=str(tls.path))
    seen: list[dict[str, Any]] = []
    server.factory.events.observe(seen.append)

    def protected_then_clear() -> None:
        with tls_session(server.host, server.port, tls.cert_pem) as ftps:
            stor(ftps, "p.bin", b"secret data")
            ftps.prot_c()
            ftps.retrbinary("RETR p.bin", lambda _: None)

    await in_thread(protected_then_clear)
    transfers = [e for e in seen if e["ftpd_event"] == "transfer"]
    assert [(e["direction"], e["tls"], e["bytes"]) for e in transfers] == [
        ("upload", True, 11), ("download", False, 11)]


@pytest_twisted.ensureDeferred
async def test_a_download_cut_by_the_shutdown_gets_its_xferlog_line(server_factory,
                                                                   tmp_path: Path) -> None:
    xferlog = tmp_path / "xferlog"
    server = await server_factory(xferlog=str(xferlog), shutdown_grace=0.0)
    sparse_file(server.root / "big.bin")
    ftp = await in_thread(server.connect)

    def start_download() -> Any:
        ftp.voidcmd("TYPE I")
        data = ftp.transfercmd("RETR big.bin")
        data.recv(1000)
        return data

    data = await in_thread(start_download)
    await server.stop()  # no grace: the transfer is cut, the session closed
    data.close()
    ftp.close()
    (line,) = xferlog.read_text().splitlines()
    assert line.split()[8:] == ["/big.bin", "b", "_", "o", "r", "alice", "ftp", "0", "*", "i"]
