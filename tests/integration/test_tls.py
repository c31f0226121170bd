"""FTPS (RFC 4217) against real clients: ftplib, curl, lftp and Twisted's FTPClient, plus
raw sockets for the attacks (stolen data connections, stalled or garbage handshakes)
and the server's start-up checks of its certificate."""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import os
import select
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import ClientCreator
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.protocols.ftp import CommandFailed, FTPClient, FTPClientBasic

from tests.harness import write_users
from tests.helpers import REPO, SERVER_PY, ftp_retr
from tests.integration.conftest import (
    FTP_TIMEOUT,
    Collector,
    ListParser,
    Server,
    file_sha256,
    in_thread,
    ipv6_available,
    parse_list_line,
    require_binary,
    run_cli,
    sha256,
)
from tests.integration.tls_helpers import (
    SAFETY_TIMEOUT,
    RawLines,
    ReusingFTP_TLS,
    TLSFiles,
    client_context,
    close_quietly,
    drain,
    expired_certificate,
    free_port,
    make_tls_files,
    ok,
    outcome,
    start_process,
    stop_process,
    stor,
    tls_connect,
    tls_session,
)
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.userdb import UserRecord, set_user
from twisted_ftpd.cert import make_self_signed, write_pem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """One certificate for the whole test session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


async def tls_server(server_factory, tls_files: TLSFiles,  # type: ignore[no-untyped-def]
                     interface: str = "127.0.0.1", **config) -> Server:
    return await server_factory(interface, tls_cert=str(tls_files.path), **config)


def implicit_port(server: Server) -> int:
    assert server.service.implicit_port is not None
    return server.service.implicit_port.getHost().port


def code(reply: str) -> str:
    return reply[:3]


# -- ftplib, explicit AUTH TLS ----------------------------------------------------------------


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
@pytest.mark.parametrize("interface", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
@pytest_twisted.ensureDeferred
async def test_ftplib_protected_session(server_factory, tls_files: TLSFiles, interface: str,
                                        passive: bool) -> None:
    if interface == "::1" and not ipv6_available():
        pytest.skip("no IPv6 loopback here")
    server = await tls_server(server_factory, tls_files, interface)
    payload = os.urandom(5 * 1024 * 1024)

    def client() -> dict:
        with tls_session(server.host, server.port, tls_files.cert_pem, passive=passive) as ftp:
            out: dict = {"ssl_socket": isinstance(ftp.sock, ssl.SSLSocket),
                         "version": ftp.sock.version()}
            out["feat"] = {line.strip() for line in ftp.sendcmd("FEAT").splitlines()[1:-1]}
            ftp.mkd("dir")
            ftp.cwd("dir")
            out["stor"] = stor(ftp, "up.bin", payload)
            out["back"] = ftp_retr(ftp, "up.bin")
            listing: list[str] = []
            ftp.retrlines("LIST", listing.append)
            out["list"] = listing
            out["nlst"] = ftp.nlst()
            out["mlsd"] = dict(ftp.mlsd())
            ftp.rename("up.bin", "moved.bin")
            out["renamed"] = ftp.nlst()
            out["dele"] = ftp.delete("moved.bin")
            out["after"] = ftp.nlst()
            out["reused"] = ftp.data_sessions_reused
            return out

    out = await in_thread(client)
    assert out["ssl_socket"] is True
    assert out["version"] in ("TLSv1.2", "TLSv1.3")
    assert {"AUTH TLS", "PBSZ", "PROT"} <= out["feat"]
    assert code(out["stor"]) == "226"
    assert sha256(out["back"]) == sha256(payload)
    (line,) = out["list"]
    assert parse_list_line(line)[1:] == (len(payload), "up.bin")
    assert out["nlst"] == ["up.bin"]
    assert out["mlsd"]["up.bin"]["type"] == "file"
    assert int(out["mlsd"]["up.bin"]["size"]) == len(payload)
    assert out["renamed"] == ["moved.bin"]
    assert code(out["dele"]) == "250"
    assert out["after"] == []
    # Every data connection (STOR, RETR, LIST, NLST x3, MLSD) resumed the session.
    assert out["reused"] == [True] * 7
    assert os.listdir(server.root / "dir") == []


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_client_limited_to_tls_1_1_is_refused(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files)

    def old_client() -> tuple[str, str]:
        context = client_context(tls_files.cert_pem)
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as e:
            return "cannot configure", str(e)
        control = RawLines(server.host, server.port)
        try:
            assert code(control.cmd("AUTH TLS")) == "234"
            try:
                tls = context.wrap_socket(control.sock, server_hostname=server.host)
            except ssl.SSLError as e:
                return e.reason or "", str(e)
            return "connected", str(tls.version())
        finally:
            control.close()

    reason, detail = await in_thread(old_client)
    if reason in ("cannot configure", "NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"):
        pytest.skip(f"the local OpenSSL cannot offer TLS 1.1 at all: {detail}")
    assert reason != "connected", f"a TLS 1.1 client got in with {detail}"
    assert reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL",
                      "WRONG_VERSION_NUMBER"), detail
    await server.still_serves()


# -- session reuse ----------------------------------------------------------------------------


def transfer_outcome(ftp: ftplib.FTP, command: str) -> tuple[str, bytes]:
    """Run a download by hand: (final reply, bytes the data connection delivered)."""
    try:
        conn = ftp.transfercmd(command)  # 150, then the TLS handshake on the data socket
    except ftplib.Error as e:
        return str(e), b""
    except (ssl.SSLError, ConnectionError):
        got = b""
    else:
        with conn:
            got, _ = drain(conn)
    try:
        return ftp.getresp(), got
    except ftplib.Error as e:
        return str(e), got


@pytest_twisted.ensureDeferred
async def test_client_without_session_reuse_gets_522(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files)
    secret = os.urandom(300_000)
    (server.root / "f.bin").write_bytes(secret)

    def client() -> tuple[str, bytes, str, str, bytes]:
        with tls_session(server.host, server.port, tls_files.cert_pem, reuse=False) as ftp:
            final, got = transfer_outcome(ftp, "RETR f.bin")
            noop = ftp.voidcmd("NOOP")
            ftp.prot_c()  # the session still works: a clear transfer now succeeds
            stored = stor(ftp, "g.bin", b"clear data")
            return final, got, noop, stored, ftp_retr(ftp, "f.bin")

    final, got, noop, stored, back = await in_thread(client)
    assert code(final) == "522", final
    assert got == b""
    assert code(noop) == "200"
    assert code(stored) == "226"
    assert back == secret


@pytest_twisted.ensureDeferred
async def test_no_reuse_option_lets_plain_ftplib_transfer(server_factory,
                                                          tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files, tls_require_reuse=False)
    payload = os.urandom(1_000_000)

    def client() -> tuple[str, bytes, list[str]]:
        with tls_session(server.host, server.port, tls_files.cert_pem, reuse=False) as ftp:
            stored = stor(ftp, "p.bin", payload)
            return stored, ftp_retr(ftp, "p.bin"), ftp.nlst()

    stored, back, names = await in_thread(client)
    assert code(stored) == "226"
    assert sha256(back) == sha256(payload)
    assert names == ["p.bin"]


@pytest_twisted.ensureDeferred
async def test_stolen_passive_connection_gets_nothing(server_factory,
                                                      tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files)
    secret = os.urandom(200_000)
    (server.root / "secret.bin").write_bytes(secret)

    alice = await in_thread(tls_connect, server.host, server.port, tls_files.cert_pem)
    try:
        host, port = await in_thread(alice.makepasv)

        def thief_connects() -> ssl.SSLSocket:
            # A context of its own: a brand-new TLS session, from the same address.
            context = client_context(tls_files.cert_pem)
            raw = socket.create_connection((host, port), timeout=SAFETY_TIMEOUT)
            return context.wrap_socket(raw, server_hostname=server.host)  # handshake done

        thief = await in_thread(thief_connects)
        try:
            stolen_d = in_thread(drain, thief)
            reply = await in_thread(outcome, alice, "RETR secret.bin")
            stolen, _ = await stolen_d
        finally:
            thief.close()
        assert code(reply) in ("522", "425"), reply
        assert stolen == b""

        # Alice is unharmed: a fresh PASV and RETR work.
        assert sha256(await in_thread(ftp_retr, alice, "secret.bin")) == sha256(secret)
    finally:
        await in_thread(close_quietly, alice)


@pytest_twisted.ensureDeferred
async def test_prot_c_after_auth_transfers_in_clear(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files)
    payload = os.urandom(700_000)

    def client() -> tuple[str, str, bytes, list[str]]:
        # Plain FTP_TLS: with PROT C its data sockets are never wrapped in TLS.
        with tls_session(server.host, server.port, tls_files.cert_pem, reuse=False,
                         prot_p=False) as ftp:
            assert code(ftp.sendcmd("PBSZ 0")) == "200"
            prot = ftp.prot_c()
            return prot, stor(ftp, "c.bin", payload), ftp_retr(ftp, "c.bin"), ftp.nlst()

    prot, stored, back, names = await in_thread(client)
    assert code(prot) == "200"
    assert code(stored) == "226"
    assert sha256(back) == sha256(payload)
    assert names == ["c.bin"]


# -- curl -------------------------------------------------------------------------------------


async def curl(server: Server, tmp_path: Path, url: str, *args: str):  # type: ignore[no-untyped-def]
    binary = require_binary("curl")
    argv = [binary, "-sS", "--insecure", "--user", "alice:secret", *args, url]
    return await in_thread(run_cli, argv, tmp_path / "home")


def curl_version() -> tuple[int, ...]:
    out = subprocess.run([require_binary("curl"), "--version"], capture_output=True, text=True,
                         timeout=SAFETY_TIMEOUT, check=True).stdout
    return tuple(int(part) for part in out.split()[1].split(".")[:3])


def curl_skips_tls_on_active_data() -> bool:
    """curl 7.87.0 to 7.88.x never start TLS on an active-mode data connection
    (curl/curl#10666, fixed for 8.0.0 by curl/curl#10669)."""
    return (7, 87) <= curl_version()[:2] < (8, 0)


@pytest.mark.parametrize("args", [[], ["-P", "-"], ["--ftp-pasv", "--disable-epsv"]],
                         ids=["epsv", "active", "pasv"])
@pytest_twisted.ensureDeferred
async def test_curl_explicit_tls(server_factory, tls_files: TLSFiles, tmp_path: Path,
                                 args: list[str]) -> None:
    # TLS is required, so anything curl did in clear would have been refused.
    server = await tls_server(server_factory, tls_files, tls_required=True)
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(1_500_000))
    out = tmp_path / "out.bin"

    up = await curl(server, tmp_path, server.url("/c.bin"), "--ssl-reqd", "-v", *args,
                    "-T", str(local))
    log = up.stderr.decode("utf-8", "replace")
    if args[:1] == ["-P"] and curl_skips_tls_on_active_data():
        # The server must refuse the clear data connection under PROT P and store none of
        # its bytes (an empty partial may stay: aborted new uploads are kept for REST).
        # curl either reads the 425 or, still sending in clear when the server drops
        # the connection, fails first with a send error (55).
        assert up.returncode != 0 and ("< 425 " in log or up.returncode == 55), log
        stored = server.root / "c.bin"
        assert not stored.exists() or stored.stat().st_size == 0
        pytest.skip(f"curl {'.'.join(map(str, curl_version()))} sends active-mode data "
                    "in clear under PROT P (curl/curl#10666, fixed in 8.0.0)")
    ok(up)
    assert "> AUTH " in log
    assert "> PROT P" in log
    assert file_sha256(server.root / "c.bin") == file_sha256(local)

    (line,) = ok(await curl(server, tmp_path, server.url("/"), "--ssl-reqd", *args)).splitlines()
    assert parse_list_line(line)[1:] == (local.stat().st_size, "c.bin")

    ok(await curl(server, tmp_path, server.url("/c.bin"), "--ssl-reqd", *args, "-o", str(out)))
    assert file_sha256(out) == file_sha256(local)


@pytest_twisted.ensureDeferred
async def test_curl_implicit_tls(server_factory, tls_files: TLSFiles, tmp_path: Path) -> None:
    server = await tls_server(server_factory, tls_files, implicit_tls_port=0, tls_required=True)
    port = implicit_port(server)
    data = os.urandom(800_000)
    (server.root / "file.bin").write_bytes(data)
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(300_000))
    out = tmp_path / "out.bin"
    base = f"ftps://127.0.0.1:{port}"

    ok(await curl(server, tmp_path, f"{base}/file.bin", "-o", str(out)))
    assert file_sha256(out) == sha256(data)
    ok(await curl(server, tmp_path, f"{base}/up.bin", "-T", str(local)))
    assert file_sha256(server.root / "up.bin") == file_sha256(local)
    names = ok(await curl(server, tmp_path, f"{base}/", "--list-only")).split()
    assert sorted(names) == ["file.bin", "up.bin"]


# -- lftp -------------------------------------------------------------------------------------


async def lftp(tmp_path: Path, target: str, *commands: str):  # type: ignore[no-untyped-def]
    binary = require_binary("lftp")
    script = "; ".join([
        "set cmd:fail-exit yes",
        "set net:max-retries 1",
        "set net:timeout 20",
        "set ssl:verify-certificate no",
        "set ftp:ssl-force true",
        "set ftp:ssl-protect-data true",
        f"open -u alice,secret {target}",
        *commands,
    ])
    return await in_thread(run_cli, [binary, "-c", script], tmp_path / "home")


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest_twisted.ensureDeferred
async def test_lftp_tls(server_factory, tls_files: TLSFiles, tmp_path: Path,
                        implicit: bool) -> None:
    server = await tls_server(server_factory, tls_files, tls_required=True,
                              implicit_tls_port=0 if implicit else None)
    target = (f"ftps://127.0.0.1:{implicit_port(server)}" if implicit
              else f"-p {server.port} 127.0.0.1")
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(2_000_000))
    back = tmp_path / "back.bin"

    # All over lftp's default, TLS 1.3.
    ok(await lftp(tmp_path, target, f'put "{local}" -o up.bin'))
    assert file_sha256(server.root / "up.bin") == file_sha256(local)
    ok(await lftp(tmp_path, target, f'get up.bin -o "{back}"'))
    assert file_sha256(back) == file_sha256(local)
    (line,) = ok(await lftp(tmp_path, target, "ls")).splitlines()
    assert parse_list_line(line)[1:] == (local.stat().st_size, "up.bin")


@contextlib.contextmanager
def busy_cpu(seconds: float = 300) -> Iterator[None]:
    """Keep the CPUs busy (up to 4 spinning processes, each ending by itself after
    ``seconds``) while the block runs."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin])
                for _ in range(min(os.cpu_count() or 1, 4))]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


@pytest_twisted.ensureDeferred
async def test_lftp_uploads_arrive_whole_on_a_busy_machine(server_factory, tls_files: TLSFiles,
                                                          tmp_path: Path) -> None:
    # lftp's default is TLS 1.3. Before the server held back the session tickets of data
    # connections (test_upload_connection_sends_nothing_before_the_clients_close_notify),
    # about half of these uploads ended in 426 with 262144 bytes stored.
    server = await tls_server(server_factory, tls_files, tls_required=True)
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(2_000_000))
    expected = file_sha256(local)

    with busy_cpu():
        for i in range(30):  # one login each, as a script calling lftp would
            ok(await lftp(tmp_path, f"-p {server.port} 127.0.0.1", f'put "{local}" -o up{i}.bin'))
            assert file_sha256(server.root / f"up{i}.bin") == expected, f"upload {i}"


@pytest_twisted.ensureDeferred
async def test_upload_connection_sends_nothing_before_the_clients_close_notify(
        server_factory, tls_files: TLSFiles) -> None:
    # Under TLS 1.3 OpenSSL sends a NewSessionTicket after every handshake, resumed ones
    # included. An uploading client does not read its data connection, so a ticket sent
    # meanwhile lies unread in its socket and its close() becomes a reset that drops the
    # upload data its kernel had not delivered yet. The server holds the ticket back until
    # it has read the client's close_notify (and sends it first when it has data to send).
    server = await tls_server(server_factory, tls_files)
    payload = os.urandom(600_000)  # more than one read of the server's, less than it buffers

    def client() -> tuple[str, bool, bool, str]:
        with tls_session(server.host, server.port, tls_files.cert_pem) as ftp:
            version = str(ftp.sock.version())
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR u.bin")  # resumes the session (ReusingFTP_TLS)
            reused = conn.session_reused
            conn.sendall(payload)
            # Once the server has read all of it, a ticket it did not hold back has long
            # been sent; the NOOP's round trip is one more turn of its reactor.
            for _ in range(10_000):
                if ftp.sendcmd("STAT") == f"213 Status: {len(payload)} bytes transferred.":
                    break
            else:
                raise AssertionError("the server never reported the whole upload")
            ftp.voidcmd("NOOP")
            readable, _, _ = select.select([conn], [], [], 0)
            conn.unwrap()  # our close_notify, then the server's (and the held ticket)
            conn.close()
            return version, reused, bool(readable), ftp.voidresp()

    version, reused, sent_early, final = await in_thread(client)
    if version != "TLSv1.3":
        pytest.skip(f"post-handshake tickets are a TLS 1.3 matter; this was {version}")
    assert reused is True
    assert sent_early is False, "the server sent on the upload connection before its end"
    assert code(final) == "226", final
    assert (server.root / "u.bin").read_bytes() == payload


@pytest_twisted.ensureDeferred
async def test_downloads_and_listings_over_tls_1_3_after_a_held_ticket(
        server_factory, tls_files: TLSFiles) -> None:
    # The held ticket goes out before the first byte of a download or listing, on
    # connections opened before the command (PASV, connect, then RETR) as after.
    server = await tls_server(server_factory, tls_files)
    data = os.urandom(700_000)
    (server.root / "d.bin").write_bytes(data)

    def client() -> dict:
        with tls_session(server.host, server.port, tls_files.cert_pem) as ftp:
            out: dict = {"version": str(ftp.sock.version()), "back": ftp_retr(ftp, "d.bin"),
                         "names": ftp.nlst(), "list": []}
            ftp.retrlines("LIST", out["list"].append)
            out["stored"] = stor(ftp, "empty.bin", b"")  # nothing sent either way
            out["empty"] = ftp_retr(ftp, "empty.bin")
            out["reused"] = ftp.data_sessions_reused
            return out

    out = await in_thread(client)
    if out["version"] != "TLSv1.3":
        pytest.skip(f"post-handshake tickets are a TLS 1.3 matter; this was {out['version']}")
    assert sha256(out["back"]) == sha256(data)
    assert out["names"] == ["d.bin"]
    assert [parse_list_line(line)[-1] for line in out["list"]] == ["d.bin"]
    assert code(out["stored"]) == "226"
    assert out["empty"] == b""
    assert out["reused"] == [True] * 5


@pytest.mark.parametrize("reuse", [True, False], ids=["resumed", "full-handshake"])
@pytest_twisted.ensureDeferred
async def test_tls_1_2_data_connections(server_factory, tls_files: TLSFiles,
                                        reuse: bool) -> None:
    # Nothing is held back under TLS 1.2: no ticket follows its handshakes, and after a
    # full one the server's Finished, which the client waits for, is what it sends last.
    server = await tls_server(server_factory, tls_files, tls_require_reuse=reuse)
    payload = os.urandom(400_000)

    def client() -> tuple[str, str, bytes, list[bool]]:
        context = client_context(tls_files.cert_pem)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        ftp = (ReusingFTP_TLS if reuse else ftplib.FTP_TLS)(context=context,
                                                           timeout=FTP_TIMEOUT)
        try:
            ftp.connect(server.host, server.port)
            ftp.auth()
            ftp.login("alice", "secret")
            ftp.prot_p()
            stored = stor(ftp, "t12.bin", payload)
            back = ftp_retr(ftp, "t12.bin")
            return str(ftp.sock.version()), stored, back, getattr(ftp, "data_sessions_reused", [])
        finally:
            close_quietly(ftp)

    version, stored, back, reused = await in_thread(client)
    assert version == "TLSv1.2"
    assert code(stored) == "226"
    assert sha256(back) == sha256(payload)
    assert reused == ([True, True] if reuse else [])


# -- Twisted's FTPClient ----------------------------------------------------------------------


class AuthFirstFTPClient(FTPClient):
    """FTPClient without the login it queues in its constructor, so AUTH TLS can go first."""

    def __init__(self, passive: int = 1) -> None:
        FTPClientBasic.__init__(self)
        self.passive = passive
        self._trustPasvAddr = False


@pytest_twisted.ensureDeferred
async def test_twisted_client_over_tls_control(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files)
    data = os.urandom(400_000)
    (server.root / "t.bin").write_bytes(data)

    client = await ClientCreator(reactor, AuthFirstFTPClient).connectTCP(server.host, server.port)
    try:
        auth = client.queueStringCommand("AUTH TLS")

        def start_tls(reply: list[str]) -> list[str]:
            # Before the next command is sent: the server reads only TLS from here on.
            options = optionsForClientTLS(
                "localhost", trustRoot=Certificate.loadPEM(tls_files.cert_pem))
            client.transport.startTLS(options)
            return reply

        auth.addCallback(start_tls)
        assert code((await auth)[-1]) == "234"
        assert code((await client.queueStringCommand("USER alice"))[-1]) == "331"
        assert code((await client.queueStringCommand("PASS secret"))[-1]) == "230"
        # The control connection really is TLS, with the server's certificate.
        peer = client.transport.getPeerCertificate()
        assert peer.digest("sha256") == Certificate.loadPEM(tls_files.cert_pem).digest("sha256")

        # Twisted's client cannot put TLS on data connections, so its data goes in clear.
        assert code((await client.queueStringCommand("PBSZ 0"))[-1]) == "200"
        assert code((await client.queueStringCommand("PROT C"))[-1]) == "200"
        listing = ListParser()
        await client.list(".", listing)
        assert [f["filename"] for f in listing.files] == ["t.bin"]
        assert listing.files[0]["size"] == len(data)
        assert code((await client.queueStringCommand("TYPE I"))[-1]) == "200"
        collector = Collector()
        await client.retrieveFile("t.bin", collector)
        assert sha256(collector.data) == sha256(data)
        # CCC (back to a clear control channel) is refused.
        with pytest.raises(CommandFailed) as failed:
            await client.queueStringCommand("CCC")
        assert code(failed.value.args[0][-1]) == "534"
        assert code((await client.quit())[-1]) == "221"
    finally:
        client.transport.loseConnection()
    await server.all_sessions_gone()


# -- required TLS -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_required_tls_refuses_clear_logins(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files, tls_required=True)

    def clear() -> list[bytes]:
        control = server.raw(user=None)
        try:
            return [control.cmd("USER alice"), control.cmd("PASS secret"), control.cmd("PWD")]
        finally:
            control.close()

    user, password, pwd = await in_thread(clear)
    assert user[:4] == b"534 ", user
    assert password[:3] == b"503", password
    assert pwd[:3] == b"530", pwd


@pytest_twisted.ensureDeferred
async def test_required_tls_requires_prot_p(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files, tls_required=True)
    data = os.urandom(500_000)
    (server.root / "r.bin").write_bytes(data)

    def client() -> dict:
        with tls_session(server.host, server.port, tls_files.cert_pem, prot_p=False) as ftp:
            out = {}
            for command in ("LIST", "RETR r.bin", "STOR new.bin"):
                assert code(ftp.sendcmd("PASV")) == "227"
                out[command] = outcome(ftp, command)
            out["PBSZ"] = ftp.sendcmd("PBSZ 0")
            out["PROT C"] = outcome(ftp, "PROT C")
            out["PROT P"] = ftp.prot_p()
            out["stor"] = stor(ftp, "new.bin", data[:1000])
            out["retr"] = ftp_retr(ftp, "r.bin")
            out["nlst"] = sorted(ftp.nlst())
            return out

    out = await in_thread(client)
    for command in ("LIST", "RETR r.bin", "STOR new.bin", "PROT C"):
        assert code(out[command]) == "521", (command, out[command])
    assert code(out["PBSZ"]) == "200"
    assert code(out["PROT P"]) == "200"
    assert code(out["stor"]) == "226"
    assert sha256(out["retr"]) == sha256(data)
    assert out["nlst"] == ["new.bin", "r.bin"]


@pytest_twisted.ensureDeferred
async def test_per_user_tls_requirement(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files)
    users_db = server.root.parent / "users.db"
    set_user(users_db, UserRecord("carol", hash_password("carolpw"), "elradfmw", "",
                                  options={"tls": "required"}))

    def clear() -> list[bytes]:
        control = server.raw(user=None)
        try:
            return [control.cmd("USER carol"), control.cmd("PASS carolpw"),
                    control.cmd("USER alice"), control.cmd("PASS secret")]
        finally:
            control.close()

    carol_user, carol_pass, alice_user, alice_pass = await in_thread(clear)
    assert carol_user[:4] == b"534 ", carol_user
    assert carol_pass[:3] == b"503", carol_pass
    assert alice_user[:3] == b"331", alice_user
    assert alice_pass[:3] == b"230", alice_pass

    def carol_over_tls() -> tuple[str, str, bytes]:
        with tls_session(server.host, server.port, tls_files.cert_pem, "carol", "carolpw",
                         prot_p=False) as ftp:
            ftp.sendcmd("PASV")
            clear_list = outcome(ftp, "LIST")  # carol's data must be protected too
            ftp.prot_p()
            return clear_list, stor(ftp, "carol.bin", b"by carol"), ftp_retr(ftp, "carol.bin")

    clear_list, stored, back = await in_thread(carol_over_tls)
    assert code(clear_list) == "521", clear_list
    assert code(stored) == "226"
    assert back == b"by carol"


# -- handshakes that never come or make no sense ----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_stalled_handshake_is_dropped(server_factory, tls_files: TLSFiles) -> None:
    server = await tls_server(server_factory, tls_files, tls_handshake_timeout=0.5)

    def auth() -> RawLines:
        control = RawLines(server.host, server.port)
        assert code(control.cmd("AUTH TLS")) == "234"
        return control  # and now say nothing

    def wait_for_close(control: RawLines) -> tuple[bytes, BaseException | None]:
        try:
            return drain(control.sock)  # the socket timeout (30 s) is only a safety net
        finally:
            control.close()

    control = await in_thread(auth)
    closed = in_thread(wait_for_close, control)
    await server.still_serves()  # meanwhile, others are served
    got, error = await closed
    assert got == b""
    assert error is None or isinstance(error, ConnectionResetError), error
    await server.still_serves()


@pytest_twisted.ensureDeferred
async def test_garbage_instead_of_client_hello_is_dropped(server_factory,
                                                          tls_files: TLSFiles) -> None:
    # A handshake timeout far beyond the socket's: only the garbage can end the connection.
    server = await tls_server(server_factory, tls_files, tls_handshake_timeout=600)

    def garbage() -> tuple[bytes, BaseException | None]:
        control = RawLines(server.host, server.port)
        try:
            assert code(control.cmd("AUTH TLS")) == "234"
            control.sock.sendall(b"USER alice\r\nPASS secret\r\nthis is no ClientHello\r\n" * 8)
            return drain(control.sock)
        finally:
            control.close()

    got, _ = await in_thread(garbage)
    assert b"230" not in got and b"331" not in got  # no command ran, at most a TLS alert
    assert got == b"" or got[:1] == b"\x15", got
    await server.still_serves()


# -- start-up checks (python server.py) -------------------------------------------------------


def run_server_py(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*SERVER_PY, "--port", "0", "--interface",
               "127.0.0.1", "--root", str(tmp_path / "files"), "--users",
               str(tmp_path / "users.db"), *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def bad_cert_file(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.pem"
    cert_pem, key_pem = make_self_signed("localhost")
    if kind == "missing":
        return path
    if kind == "no-key":
        path.write_bytes(cert_pem)
    elif kind == "mismatch":
        _, other_key = make_self_signed("localhost")
        write_pem(path, cert_pem, other_key)
    elif kind == "expired":
        write_pem(path, *expired_certificate())
    return path


@pytest.mark.parametrize("kind, words", [
    ("missing", "not found"),
    ("no-key", "no PEM private key"),
    ("mismatch", "does not match"),
    ("expired", "expired"),
])
def test_server_py_refuses_unusable_certificates(tmp_path: Path, kind: str, words: str) -> None:
    path = bad_cert_file(kind, tmp_path)
    result = run_server_py(tmp_path, "--tls-cert", str(path))
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert words in line and path.name in line, line
    assert not (tmp_path / "files").exists()  # refused before doing anything


def test_server_py_tls_required_needs_a_certificate(tmp_path: Path) -> None:
    result = run_server_py(tmp_path, "--tls-required")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "--tls-required" in line and "--tls-cert" in line, line


def test_generated_certificate_serves_auth_tls(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    made = subprocess.run(
        [sys.executable, "-m", "twisted_ftpd.cert", "--hostname", "localhost", "--out",
         str(certs)], cwd=REPO, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL)
    assert made.returncode == 0, made.stderr
    pem = certs / "ftpd.pem"
    cert_pem = pem.read_bytes().split(b"-----END CERTIFICATE-----")[0] + \
        b"-----END CERTIFICATE-----\n"
    write_users(tmp_path / "users.db", {"alice": ("secret", "elradfmwMT")}, "elr")
    port = free_port()
    proc = start_process(
        [*SERVER_PY, "--port", str(port), "--interface",
         "127.0.0.1", "--root", str(tmp_path / "files"), "--users", str(tmp_path / "users.db"),
         "--tls-cert", str(pem)], tmp_path)
    try:
        # The certificate names only "localhost": check the chain, not the address.
        ftp = tls_connect("127.0.0.1", port, cert_pem, user=None, check_hostname=False)
        try:
            der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
            assert ftp.sock.getpeercert(binary_form=True) == der
            ftp.login("alice", "secret")
            ftp.prot_p()
            assert code(stor(ftp, "x.bin", b"x" * 10_000)) == "226"
            assert ftp_retr(ftp, "x.bin") == b"x" * 10_000
        finally:
            close_quietly(ftp)
    finally:
        stop_process(proc)
    assert (tmp_path / "files" / "x.bin").read_bytes() == b"x" * 10_000


# -- streaming under TLS ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_64_mib_both_ways_under_prot_p(server_factory, tls_files: TLSFiles,
                                             tmp_path: Path) -> None:
    server = await tls_server(server_factory, tls_files)
    size = 64 * 1024 * 1024
    local = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(local, "wb") as f:
        for _ in range(size // (1 << 20)):
            block = os.urandom(1 << 20)
            digest.update(block)
            f.write(block)
    back = tmp_path / "back.bin"

    def client() -> tuple[str, str, list[bool]]:
        with tls_session(server.host, server.port, tls_files.cert_pem) as ftp:
            with open(local, "rb") as f:
                stored = ftp.storbinary("STOR big.bin", f, blocksize=256 * 1024)
            with open(back, "wb") as f:
                done = ftp.retrbinary("RETR big.bin", f.write, blocksize=256 * 1024)
            return stored, done, ftp.data_sessions_reused

    stored, done, reused = await in_thread(client)
    assert code(stored) == "226" and code(done) == "226"
    assert reused == [True, True]
    assert file_sha256(server.root / "big.bin") == digest.hexdigest()
    assert file_sha256(back) == digest.hexdigest()
