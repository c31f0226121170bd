"""Reply-code compliance over a real control connection (RFC 959, 2389, 2428, 3659, 7151).

One table row = one fresh session: the setup commands (each must succeed), then the
command under test, whose reply code must be one of the row's codes. Where an RFC
lets a server choose (CDUP 200 or 250, ABOR with nothing running 225 or 226...), the
row lists every allowed code. Every row then checks the session still answers NOOP.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pytest_twisted

from tests.integration.conftest import FTP_TIMEOUT, RawControl, Server, in_thread, sparse_file

pytestmark = pytest.mark.integration

REPLY_LINE = re.compile(rb"\d{3}[ -].*\r\n")


@dataclass(frozen=True)
class Row:
    command: str
    codes: tuple[int, ...]
    setup: tuple[str, ...] = ()
    user: str | None = "alice"  # None: not logged in


def row(command: str, *codes: int, setup: tuple[str, ...] = (), user: str | None = "alice",
        marks: tuple = (), name: str | None = None) -> pytest.ParameterSet:
    ident = name or " ; ".join([*setup, command]) or "<blank>"
    if user != "alice":
        ident = f"{user or 'anon-session'}: {ident}"
    return pytest.param(Row(command, codes, setup, user), id=ident, marks=marks)


PASV = ("PASV",)

NOT_LOGGED_IN = [
    row("NOOP", 200, user=None),
    row("noop", 200, user=None),
    row("SYST", 215, user=None),
    row("FEAT", 211, user=None),
    row("HELP", 211, 214, user=None),
    row("HELP USER", 211, 214, user=None),
    row("OPTS UTF8 ON", 200, user=None),
    row("PASS secret", 503, user=None),
    row("USER", 501, user=None),
    row("HOST 127.0.0.1", 220, user=None),
    row("HOST [::1]", 220, user=None),
    row("HOST not a host", 501, user=None),
    row("USER alice", 331, setup=("HOST 127.0.0.1",), user=None),
    row("PASS wrong", 530, setup=("USER alice",), user=None),
    row("PASS secret", 230, setup=("USER alice",), user=None),
    row("PASS guest@example.org", 230, setup=("USER anonymous",), user=None),
    row("REIN", 220, user=None),
    row("QUIT", 221, user=None),
    row("LIST", 530, user=None),
    row("RETR file.txt", 530, user=None),
    row("STOR x", 530, user=None),
    row("CWD dir", 530, user=None),
    row("PWD", 530, user=None),
    row("MKD x", 530, user=None),
    row("PASV", 530, user=None),
    row("SIZE file.txt", 530, user=None),
    row("MLSD", 530, user=None),
    row("AUTH TLS", 502, user=None),  # not served (yet)
    row("PBSZ 0", 502, 503, user=None),
    row("PROT P", 502, 503, user=None),
    row("ACCT x", 202, 502, user=None),
    row("XYZZY", 500, user=None),
    row("", 500, user=None),
    row("N" * 9000, 500, user=None, name="<9000-byte line>"),
]

LOGIN_STATE = [
    row("USER bob", 503, 530),
    row("PASS secret", 202, 503),
    row("HOST example.org", 503),  # RFC 7151: HOST only before USER
    row("REIN", 220),
    row("PWD", 530, setup=("REIN",)),
    row("QUIT", 221),
    row("QUIT now", 501),
    row("NOOP x", 501),
    row("SYST x", 501),
    row("SMNT /", 502),
    row("CCC", 502, 533, 534),  # RFC 2228: refused on a session without TLS
    row("XYZZY", 500),
    row("HELP NOOP", 211, 214),
    row("HELP XYZZY", 501, 502, 504),
]

DIRECTORIES = [
    row("PWD", 257),
    row("XPWD", 257),
    row("PWD x", 501),
    row("CWD dir", 250),
    row("XCWD dir", 250),
    row("CWD file.txt", 550),
    row("CWD missing", 550),
    row("CWD", 501),
    row("CDUP", 200, 250, setup=("CWD dir",)),
    row("XCUP", 200, 250, setup=("CWD dir",)),
    row("MKD new", 257),
    row("XMKD new", 257),
    row("MKD dir", 550),
    row("MKD missing/sub", 550),
    row("MKD", 501),
    row("RMD empty", 250),
    row("XRMD empty", 250),
    row("RMD dir", 550),
    row("RMD missing", 550),
    row("RMD file.txt", 550),
    row("DELE file.txt", 250),
    row("DELE missing", 550),
    row("DELE dir", 550),
    row("DELE", 501),
]

RENAME = [
    row("RNFR file.txt", 350),
    row("RNFR missing", 550),
    row("RNTO renamed.txt", 250, setup=("RNFR file.txt",)),
    row("RNTO x", 503),
    row("RNTO x", 503, setup=("RNFR file.txt", "NOOP")),  # RNTO must follow RNFR
    row("RNTO missing/x", 550, 553, setup=("RNFR file.txt",)),
    row("RNFR", 501),
]

PARAMETERS = [
    row("REST 0", 350),
    row("REST 100", 350),
    row("REST abc", 501),
    row("REST -1", 501),
    row("REST", 501),
    row("TYPE A", 200),
    row("TYPE A N", 200),
    row("TYPE I", 200),
    row("type i", 200),
    row("TYPE L 8", 200),
    row("TYPE E", 504),
    row("TYPE A T", 504),
    row("TYPE A C", 504),
    row("TYPE L 7", 504),
    row("TYPE X", 501),
    row("TYPE", 501),
    row("MODE S", 200),
    row("MODE B", 504),
    row("MODE C", 504),
    row("MODE X", 501),
    row("STRU F", 200),
    row("STRU R", 504),
    row("STRU P", 504),
    row("STRU X", 501),
    row("ALLO 10", 200, 202),
    row("ALLO 10 R 5", 200, 202),
    row("ALLO", 501),
]

DATA_SETUP = [
    row("PORT 127,0,0,1,200,10", 200),
    row("PORT 1,2,3", 501),
    row("PORT 127,0,0,1,300,1", 501),
    row("PORT 10,9,8,7,200,10", 501, 504),  # not the client's address: bounce attack
    row("PORT 127,0,0,1,0,21", 501, 504),  # privileged port (RFC 2577)
    row("EPRT |1|127.0.0.1|51210|", 200),
    row("EPRT |3|1.2.3.4|5000|", 522),
    row("EPRT |1|999.1.1.1|5000|", 501),
    row("EPRT |1|127.0.0.1|99999|", 501),
    row("EPRT garbage", 501),
    row("PASV", 227),
    row("EPSV", 229),
    row("EPSV 1", 229),
    row("EPSV 2", 522),  # IPv6 on an IPv4 connection
    row("EPSV 3", 522),
    row("EPSV foo", 501),
    row("EPSV ALL", 200),
    row("PASV", 503, setup=("EPSV ALL",)),
    row("PORT 127,0,0,1,200,10", 503, setup=("EPSV ALL",)),
    row("EPRT |1|127.0.0.1|51210|", 503, setup=("EPSV ALL",)),
    row("EPSV", 229, setup=("EPSV ALL",)),
]

TRANSFERS = [
    row("RETR file.txt", 425, 503),  # no PORT/PASV first
    row("RETR missing", 550, setup=PASV),
    row("RETR dir", 550, setup=PASV),
    row("RETR", 501),
    row("RETR file.txt", 554, setup=("PASV", "REST 100000")),  # RFC 3659 5.4
    row("STOR missing/x", 550, 553, setup=PASV),
    row("STOR", 501),
    row("APPE", 501),
    row("LIST missing", 450, 550, setup=PASV),
    row("NLST missing", 450, 550, setup=PASV),
    row("MLSD file.txt", 501, setup=PASV),  # RFC 3659 7.2.1
    row("MLSD missing", 550, setup=PASV),
    row("ABOR", 225, 226),
    row("ABOR", 225, 226, setup=PASV),
]

FACTS_AND_SIZES = [
    row("FEAT", 211),
    row("FEAT x", 501),
    row("OPTS UTF8 ON", 200),
    row("OPTS UTF8 OFF", 200, 501, 504),
    row("OPTS MLST type;size;", 200),
    row("OPTS MLST", 200),
    row("OPTS FOO", 501),
    row("OPTS", 501),
    row("MLST file.txt", 250),
    row("MLST", 250),
    row("MLST missing", 550),
    row("SIZE file.txt", 213, setup=("TYPE I",)),
    row("SIZE dir", 550, setup=("TYPE I",)),
    row("SIZE missing", 550, setup=("TYPE I",)),
    row("SIZE file.txt", 550, setup=("TYPE A",)),
    row("MDTM file.txt", 213),
    row("MDTM missing", 550),
    row("MDTM dir", 213, 550),
    row("STAT", 211),
    row("STAT file.txt", 211, 213),
    row("STAT dir", 211, 212, 213),
    row("STAT missing", 450, 550),
]

SITE_AND_MFMT = [
    row("SITE HELP", 214),
    row("SITE CHMOD 600 file.txt", 200),
    row("SITE CHMOD 999 file.txt", 501),
    row("SITE CHMOD 600", 501),
    row("SITE CHMOD 600 missing", 550),
    row("SITE FOO", 500, 501, 502, 504),
    row("SITE", 501),
    row("MFMT 20200101000000 file.txt", 213),
    row("MFMT 2020 file.txt", 501),
    row("MFMT 20201301000000 file.txt", 501),
    row("MFMT 20200101000000 missing", 550),
    row("MFMT 20200101000000", 501),
]

READ_ONLY_USER = [
    row("STOR x", 550, setup=PASV, user="bob"),
    row("APPE file.txt", 550, setup=PASV, user="bob"),
    row("DELE file.txt", 550, user="bob"),
    row("MKD x", 550, user="bob"),
    row("RMD empty", 550, user="bob"),
    row("RNFR file.txt", 550, user="bob"),
    row("SITE CHMOD 600 file.txt", 550, user="bob"),
    row("MFMT 20200101000000 file.txt", 550, user="bob"),
    row("RETR missing", 550, setup=PASV, user="bob"),
    row("LIST", 150, setup=PASV, user="bob"),  # allowed: the 150 preliminary reply
]

TABLE = [
    *NOT_LOGGED_IN, *LOGIN_STATE, *DIRECTORIES, *RENAME, *PARAMETERS, *DATA_SETUP,
    *TRANSFERS, *FACTS_AND_SIZES, *SITE_AND_MFMT, *READ_ONLY_USER,
]


@pytest_twisted.async_yield_fixture
async def compliance_server(server_factory):
    """A server with no failed-login delay and a small tree: file.txt, dir/, empty/."""
    server = await server_factory(login_delay=0.0)
    (server.root / "file.txt").write_bytes(b"hello")
    (server.root / "dir").mkdir()
    (server.root / "dir" / "inner.txt").write_bytes(b"inner")
    (server.root / "empty").mkdir()
    yield server


def code_of(reply: bytes) -> int:
    assert reply, "connection closed instead of a reply"
    lines = reply.split(b"\r\n")[:-1]
    assert reply.endswith(b"\r\n") and lines, reply
    for line in lines:  # RFC 959 4.2: first and last line carry the code
        assert not line.startswith(reply[:3]) or REPLY_LINE.fullmatch(line + b"\r\n"), reply
    assert lines[-1][:4] == reply[:3] + b" ", reply
    return int(reply[:3])


def run_row(server: Server, case: Row) -> tuple[int, bytes]:
    control = RawControl(server.host, server.port)
    try:
        if case.user is not None:
            control.login(case.user, server.users[case.user][0])
        for command in case.setup:
            reply = control.cmd(command)
            assert code_of(reply) < 400, f"setup {command!r} failed: {reply!r}"
        reply = control.cmd(case.command)
        code = code_of(reply)
        if code == 150:  # a transfer started; the row only cares that it was allowed
            return code, reply
        if case.command.upper() != "QUIT":
            assert control.cmd("NOOP")[:3] == b"200", "session unusable after the command"
        else:
            assert control.reply() == b"", "QUIT must close the connection"
        return code, reply
    finally:
        control.close()


@pytest.mark.parametrize("case", TABLE)
@pytest_twisted.ensureDeferred
async def test_reply_code(compliance_server, case: Row) -> None:
    code, reply = await in_thread(run_row, compliance_server, case)
    assert code in case.codes, f"{case.command!r}: expected {case.codes}, got {reply!r}"


# -- replies whose body matters ------------------------------------------------------------


def session_replies(server: Server, *commands: str, user: str | None = "alice") -> list[bytes]:
    control = server.raw(user)
    try:
        return [control.cmd(command) for command in commands]
    finally:
        control.close()


@pytest_twisted.ensureDeferred
async def test_feat_lists_extensions_rfc2389(compliance_server) -> None:
    feat, opts, feat_after = await in_thread(
        session_replies, compliance_server, "FEAT", "OPTS MLST type;size;", "FEAT", user=None)
    lines = feat.decode("utf-8").split("\r\n")[:-1]
    assert lines[0].startswith("211-") and lines[-1].startswith("211 ")
    features = [line[1:] for line in lines[1:-1]]
    assert all(line.startswith(" ") for line in lines[1:-1])  # RFC 2389 3.2
    for expected in ("EPRT", "EPSV", "MDTM", "REST STREAM", "SIZE", "UTF8", "MFMT", "HOST"):
        assert expected in features
    (mlst,) = [f for f in features if f.startswith("MLST ")]
    assert mlst == "MLST type*;size*;modify*;perm*;unix.mode*;unique*;"
    assert opts.startswith(b"200 ") and b"type;size;" in opts
    (mlst_after,) = [line for line in feat_after.decode().split("\r\n") if "MLST " in line]
    assert mlst_after.strip() == "MLST type*;size*;modify;perm;unix.mode;unique;"  # RFC 3659 7.9


@pytest_twisted.ensureDeferred
async def test_pipelined_commands_answered_in_order(compliance_server) -> None:
    def pipeline() -> list[bytes]:
        control = compliance_server.raw()
        try:
            control.send(b"NOOP\r\nSYST\r\nPWD\r\nTYPE I\r\nSIZE file.txt\r\nXYZZY\r\n")
            return [control.reply()[:3] for _ in range(6)]
        finally:
            control.close()

    assert await in_thread(pipeline) == [b"200", b"215", b"257", b"200", b"213", b"500"]


@pytest_twisted.ensureDeferred
async def test_pwd_quotes_embedded_double_quotes(compliance_server) -> None:
    (reply,) = await in_thread(session_replies, compliance_server, 'MKD say "hi"')
    assert reply == b'257 "/say ""hi""" created.\r\n'


# -- transfers in progress: STAT, NOOP and ABOR on the control channel ---------------------


def open_passive(control: RawControl) -> socket.socket:
    reply = control.cmd("EPSV")
    port = int(re.search(rb"\(\|\|\|(\d+)\|\)", reply).group(1))
    return socket.create_connection((control.sock.getpeername()[0], port), timeout=FTP_TIMEOUT)


@contextlib.contextmanager
def retr_running(server: Server) -> Iterator[tuple[RawControl, socket.socket]]:
    """A raw control connection whose binary RETR of a big file has begun (its 150 read,
    data flowing); the connection and the data socket."""
    sparse_file(server.root / "big.bin")
    control = server.raw()
    try:
        control.cmd("TYPE I")
        data = open_passive(control)
        assert control.cmd("RETR big.bin")[:3] == b"150"
        assert data.recv(65536)
        yield control, data
    finally:
        control.close()


@pytest_twisted.ensureDeferred
async def test_stat_noop_and_abor_during_transfer(compliance_server) -> None:
    """RFC 959 4.1.3: STAT during a transfer reports on it; ABOR gives 426 then 226."""

    def session() -> list[bytes]:
        with retr_running(compliance_server) as (control, data):  # RETR answered 150
            replies = [control.cmd("STAT"), control.cmd("NOOP")]
            control.send(b"ABOR\r\n")
            replies += [control.reply(), control.reply()]
            data.close()
            replies.append(control.cmd("NOOP"))
            return [r[:3] for r in replies]

    assert await in_thread(session) == [b"213", b"200", b"426", b"226", b"200"]


@pytest_twisted.ensureDeferred
async def test_abor_after_inline_telnet_ip_and_synch(compliance_server) -> None:
    """IAC IP IAC DM before ABOR, all in band (as clients without urgent data send it)."""

    def session() -> list[bytes]:
        with retr_running(compliance_server) as (control, data):
            control.send(b"\xff\xf4\xff\xf2ABOR\r\n")
            replies = [control.reply(), control.reply()]
            data.close()
            return [r[:3] for r in replies]

    assert await in_thread(session) == [b"426", b"226"]


@pytest_twisted.ensureDeferred
async def test_abor_after_telnet_synch_as_urgent_data(compliance_server) -> None:
    def session() -> list[bytes]:
        with retr_running(compliance_server) as (control, data):
            data.close()  # the RETR ends in 426 whether or not ABOR is understood
            control.send(b"\xff\xf4\xff")  # IAC IP IAC
            control.sock.send(b"\xf2", socket.MSG_OOB)  # DM, urgent: the Synch
            control.send(b"ABOR\r\n")
            replies = [control.reply(), control.reply(), control.cmd("NOOP")]
            return [r[:3] for r in replies]

    first, abor, noop = await in_thread(session)
    assert first == b"426"
    assert abor in (b"225", b"226")
    assert noop == b"200"
