"""Failures on demand (``server.faults``), seen from ftplib: what a client under test meets
when replies are slow, a data connection breaks mid-transfer, or one cannot be opened."""

from __future__ import annotations

import ftplib
import io
import os
import select
import threading
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from tests.helpers import SAFETY_TIMEOUT, ftp_login, ftp_retr, ftp_session
from twisted_ftpd.faults import Faults
from twisted_ftpd.testing import RunningServer

BIG = os.urandom(100_000)
MODES = pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])


def in_reactor(server: RunningServer, f: Any, *args: Any) -> Any:
    return blockingCallFromThread(server.service.reactor, f, *args)


def next_line_handled(server: RunningServer) -> threading.Event:
    """Set once the (only) session has read and handled the next complete line it gets."""
    handled = threading.Event()
    (session,) = server.sessions

    def hook() -> None:
        received = session.dataReceived

        def noting(data: bytes) -> None:
            received(data)
            if b"\n" in data:
                session.dataReceived = received
                handled.set()

        session.dataReceived = noting

    in_reactor(server, hook)
    return handled


@pytest.fixture
def ftp(ftp_server: RunningServer) -> Any:
    client = ftp_login(ftp_server)
    yield client
    client.close()


# -- reply_delay -------------------------------------------------------------------------------


def test_reply_delay_keeps_replies_correct_and_in_order(ftp_server: RunningServer) -> None:
    ftp_server.faults.reply_delay = 0.01
    ftp_server.put_file("in.bin", BIG)
    ftp = ftp_login(ftp_server)  # the greeting and the login replies are delayed too
    try:
        assert ftp.getwelcome().startswith("220 ")
        assert ftp.pwd() == "/"
        assert ftp.mkd("sub") == "/sub"
        assert ftp.cwd("sub").startswith("250")
        ftp.storbinary("STOR up.bin", io.BytesIO(BIG[::-1]))
        assert ftp.size("up.bin") == len(BIG)
        assert ftp_retr(ftp, "/in.bin") == BIG
        assert ftp.nlst() == ["up.bin"]

        # Pipelined: every reply still answers its own command, in order.
        commands = ["PWD", "TYPE A", "SYST", "CDUP", "PWD", "NOOP", "CWD sub", "PWD"] * 3
        for command in commands:
            ftp.putcmd(command)
        codes = [ftp.getresp()[:3] for _ in commands]
        assert codes == ["257", "200", "215", "250", "257", "200", "250", "257"] * 3
        assert ftp.pwd() == "/sub"
        assert ftp.quit().startswith("221")
    finally:
        ftp.close()
    assert ftp_server.read_file("sub/up.bin") == BIG[::-1]


def test_reply_delay_holds_the_reply_back(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    """The reply waits on the server's clock: it is not sent until that call fires."""
    reactor = ftp_server.service.reactor
    delay = 60.0  # longer than any other timer a fresh session has running (data: 30 s)

    def held_replies() -> list[Any]:
        now = reactor.seconds()
        return [call for call in reactor.getDelayedCalls()
                if delay - 10 < call.getTime() - now <= delay]

    ftp_server.faults.reply_delay = delay
    handled = next_line_handled(ftp_server)
    ftp.putcmd("NOOP")
    assert handled.wait(SAFETY_TIMEOUT)  # the server has read the NOOP and answered it
    held = in_reactor(ftp_server, held_replies)
    assert len(held) == 1
    readable, _, _ = select.select([ftp.sock], [], [], 0)
    assert readable == []  # nothing has been sent yet

    ftp_server.faults.reply_delay = 0.0
    in_reactor(ftp_server, held[0].reset, 0)  # fast-forward the server's clock for it
    assert ftp.getresp().startswith("200")
    assert ftp.voidcmd("NOOP").startswith("200")
    assert in_reactor(ftp_server, held_replies) == []


# -- drop_data_after ---------------------------------------------------------------------------


@MODES
def test_drop_data_after_breaks_one_download(ftp_server: RunningServer, passive: bool) -> None:
    ftp_server.put_file("big.bin", BIG)
    with ftp_session(ftp_server, passive=passive) as ftp:
        ftp_server.faults.drop_data_after(1000)
        received: list[bytes] = []
        with pytest.raises(ftplib.error_temp, match="^426"):
            ftp_retr(ftp, "big.bin", received)
        assert b"".join(received) == BIG[:1000]  # exactly the bytes before the cut

        assert ftp_retr(ftp, "big.bin") == BIG  # one-shot: the next transfer is whole
        assert ftp.voidcmd("NOOP").startswith("200")


def test_drop_data_after_breaks_an_upload(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    ftp_server.faults.drop_data_after(1000)
    ftp.voidcmd("TYPE I")  # transfercmd sends none, and TYPE A would turn CRLF into LF
    conn = ftp.transfercmd("STOR up.bin")
    try:
        conn.sendall(BIG)
    except OSError:
        pass  # the server may hang up while we are still sending
    finally:
        conn.close()
    with pytest.raises(ftplib.error_temp, match="^426"):
        ftp.voidresp()
    # A new file keeps what arrived, so a client could resume with REST.
    assert ftp_server.read_file("up.bin") == BIG[:1000]

    ftp.storbinary("STOR up.bin", io.BytesIO(BIG))
    assert ftp_server.read_file("up.bin") == BIG


def test_drop_data_after_breaks_a_listing(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    for i in range(100):
        ftp_server.put_file(f"file{i:03}.txt", b"")
    ftp_server.faults.drop_data_after(50)
    lines: list[str] = []
    with pytest.raises(ftplib.error_temp, match="^426"):
        ftp.retrlines("NLST", lines.append)
    assert "\r\n".join(lines).encode()[:50] == b"\r\n".join(
        f"file{i:03}.txt".encode() for i in range(100))[:50]
    assert len("\r\n".join(lines)) <= 50
    assert len(ftp.nlst()) == 100


def test_drop_limits_are_used_in_turn(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    ftp_server.put_file("big.bin", BIG)
    ftp_server.faults.drop_data_after(1000)
    ftp_server.faults.drop_data_after(5000)
    for limit in (1000, 5000):
        received: list[bytes] = []
        with pytest.raises(ftplib.error_temp, match="^426"):
            ftp_retr(ftp, "big.bin", received)
        assert b"".join(received) == BIG[:limit]
    assert ftp_retr(ftp, "big.bin") == BIG


def test_drop_data_after_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        Faults().drop_data_after(-1)


# -- refuse_next_data_connection ---------------------------------------------------------------


def test_refuse_next_data_connection_passive(ftp_server: RunningServer,
                                             ftp: ftplib.FTP) -> None:
    ftp_server.put_file("f.txt", b"content")
    ftp_server.faults.refuse_next_data_connection()
    with pytest.raises(ftplib.error_temp, match="^425"):
        ftp.retrlines("LIST")
    assert ftp.nlst() == ["f.txt"]  # the next one works

    ftp_server.faults.refuse_next_data_connection()
    with pytest.raises(ftplib.error_temp, match="^425"):
        ftp_retr(ftp, "f.txt")
    assert ftp_retr(ftp, "f.txt") == b"content"


def test_refuse_counts(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    ftp_server.put_file("f.txt", b"content")
    ftp_server.faults.refuse_next_data_connection(2)
    for _ in range(2):
        with pytest.raises(ftplib.error_temp, match="^425"):
            ftp_retr(ftp, "f.txt")
    assert ftp_retr(ftp, "f.txt") == b"content"


def test_refuse_next_data_connection_active(ftp_server: RunningServer) -> None:
    ftp_server.put_file("f.txt", b"content")
    with ftp_session(ftp_server, passive=False) as ftp:
        ftp_server.faults.refuse_next_data_connection()
        with pytest.raises(ftplib.error_temp, match="^425 "):
            ftp.nlst()
        assert ftp.nlst() == ["f.txt"]  # the next one works, in active mode

        ftp_server.faults.refuse_next_data_connection()
        with pytest.raises(ftplib.error_temp, match="^425 "):
            ftp_retr(ftp, "f.txt")
        assert ftp_retr(ftp, "f.txt") == b"content"


def test_refused_active_transfer_is_answered_425_at_once(ftp_server: RunningServer) -> None:
    ftp_server.put_file("f.txt", b"content")
    ftp = ftp_login(ftp_server, passive=False)
    try:
        ftp_server.faults.refuse_next_data_connection()
        with ftp.makeport():
            with pytest.raises(ftplib.error_temp, match="^425"):
                ftp.sendcmd("RETR f.txt")  # ftplib's ntransfercmd does exactly this
    finally:
        ftp.close()


# -- clear -------------------------------------------------------------------------------------


def test_clear_switches_every_fault_off(ftp_server: RunningServer) -> None:
    faults = ftp_server.faults
    faults.reply_delay = 60.0
    faults.drop_data_after(10)
    faults.refuse_next_data_connection(5)
    faults.clear()
    assert (faults.reply_delay, faults.take_drop_limit(), faults.take_refusal()) == (
        0.0, None, False)

    ftp_server.put_file("big.bin", BIG)
    with ftp_session(ftp_server) as ftp:  # would take minutes with a 60 s delay on every reply
        assert ftp_retr(ftp, "big.bin") == BIG
        assert ftp.nlst() == ["big.bin"]


def test_faults_are_off_by_default(ftp_server: RunningServer) -> None:
    faults = ftp_server.faults
    assert (faults.reply_delay, faults.take_drop_limit(), faults.take_refusal()) == (
        0.0, None, False)
