"""``twisted_ftpd.testing`` used directly from synchronous code, through ``ServerThread``:
what a RunningServer tells you, what it serves, and what is left after ``stop()``."""

from __future__ import annotations

import contextlib
import ftplib
import io
import socket
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SAFETY_TIMEOUT, check_read_only, ftp_login, ftp_retr, ftp_session
from twisted_ftpd.testing import RunningServer, ServerThread


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[RunningServer]:
    thread = ServerThread(*args, **kwargs)
    server = thread.start()
    try:
        yield server
    finally:
        thread.stop()


def session_of(server: RunningServer, ftp: ftplib.FTP) -> Any:
    """The server's session object for this ftplib connection."""
    local_port = ftp.sock.getsockname()[1]
    matches = [s for s in server.sessions if s.transport.getPeer().port == local_port]
    assert len(matches) == 1
    return matches[0]


def our_temp_dirs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("twisted-ftpd-"))


# -- what a RunningServer says -----------------------------------------------------------------


def test_url_host_port_and_default_users() -> None:
    with running() as server:
        assert server.host == "127.0.0.1"
        assert 0 < server.port < 65536
        assert server.users == {"alice": "secret"}
        assert server.url == f"ftp://alice:secret@127.0.0.1:{server.port}/"
        parts = urllib.parse.urlsplit(server.url)
        with ftp_session(server, parts.username, parts.password) as ftp:
            assert ftp.pwd() == "/"


def test_url_names_the_first_user() -> None:
    with running(users={"bob": "pw", "carol": "pw2"}) as server:
        assert server.url == f"ftp://bob:pw@127.0.0.1:{server.port}/"


def test_url_without_users() -> None:
    with running(users={}, anonymous=True) as server:
        assert server.url == f"ftp://127.0.0.1:{server.port}/"
        ftp = ftp_login(server, "anonymous", "")
        ftp.quit()


def test_url_quotes_user_and_password() -> None:
    with running(users={"bob": "p@ss/w:rd"}) as server:
        parts = urllib.parse.urlsplit(server.url)
        assert parts.hostname == "127.0.0.1"
        assert parts.port == server.port
        assert urllib.parse.unquote(parts.username or "") == "bob"
        assert urllib.parse.unquote(parts.password or "") == "p@ss/w:rd"


def test_address_and_url_stay_readable_after_stop() -> None:
    # For messages and assertions written after the server went away.
    thread = ServerThread(tls=True, implicit_tls_port=0)
    server = thread.start()
    before = (server.host, server.port, server.url, server.implicit_tls_port)
    thread.stop()
    assert (server.host, server.port, server.url, server.implicit_tls_port) == before
    assert before[2] == f"ftp://alice:secret@127.0.0.1:{before[1]}/"


def test_users_with_permission_letters() -> None:
    with running(users={"admin": "a", "viewer": ("v", "elr"), "dropbox": ("d", "ew")}) as server:
        assert server.users == {"admin": "a", "viewer": "v", "dropbox": "d"}
        server.put_file("f.txt", b"content")

        check_read_only(server, "viewer", "v", "f.txt", b"content", "g.txt")

        with ftp_session(server, "dropbox", "d") as dropbox:  # may upload, not list or download
            dropbox.storbinary("STOR g.txt", io.BytesIO(b"dropped"))
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp_retr(dropbox, "f.txt")
        assert server.read_file("g.txt") == b"dropped"

        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp_login(server, "viewer", "wrong")
        with ftp_session(server, "admin", "a") as admin:
            admin.delete("g.txt")
        assert not (server.root / "g.txt").exists()


# -- root, files -------------------------------------------------------------------------------


def test_temporary_root_is_removed_after_stop(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    thread = ServerThread()
    server = thread.start()
    try:
        assert server.root is not None and server.root.is_dir()
        assert server.root.is_relative_to(tmp_path)
        assert list(server.root.iterdir()) == []
        server.put_file("a/b/c.txt", b"abc")
        assert (server.root / "a" / "b" / "c.txt").read_bytes() == b"abc"
        assert our_temp_dirs(tmp_path) != []
    finally:
        thread.stop()
    assert not server.root.exists()
    assert our_temp_dirs(tmp_path) == []  # nothing else left behind either


def test_given_root_is_served_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    (root / "existing.txt").write_bytes(b"was here")
    with running(root=root) as server:
        assert server.root == root
        with ftp_session(server) as ftp:
            assert ftp_retr(ftp, "existing.txt") == b"was here"
            ftp.storbinary("STOR new.txt", io.BytesIO(b"new"))
    assert (root / "existing.txt").read_bytes() == b"was here"
    assert (root / "new.txt").read_bytes() == b"new"


def test_put_file_and_read_file() -> None:
    with running() as server:
        server.put_file("/abs/looking.txt", b"1")  # relative to the root, not the disk
        server.put_file("x.txt", b"first")
        server.put_file("x.txt", b"second")  # replaces
        assert server.read_file("abs/looking.txt") == b"1"
        assert server.read_file("/x.txt") == b"second"
        with pytest.raises(FileNotFoundError):
            server.read_file("missing.txt")


@pytest.mark.parametrize("path", ["../escape.txt", "a/../../escape.txt", "/../escape.txt"])
def test_put_file_refuses_paths_outside_the_root(path: str) -> None:
    with running() as server:
        with pytest.raises(ValueError, match="outside"):
            server.put_file(path, b"x")
        with pytest.raises(ValueError, match="outside"):
            server.read_file(path)
        assert not (server.root.parent / "escape.txt").exists()


def test_put_file_refuses_symlinks_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with running(root=tmp_path / "root") as server:
        (server.root / "link").symlink_to(outside)
        with pytest.raises(ValueError, match="outside"):
            server.put_file("link/evil.txt", b"x")
    assert list(outside.iterdir()) == []


# -- memory ------------------------------------------------------------------------------------


def test_memory_server_keeps_files_in_memory(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with running(memory=True) as server:
        assert server.root is None
        server.put_file("dir/seed.txt", b"seed")
        with ftp_session(server) as ftp:
            assert ftp_retr(ftp, "dir/seed.txt") == b"seed"
            ftp.storbinary("STOR dir/up.txt", io.BytesIO(b"uploaded"))
            assert sorted(ftp.nlst("dir")) == ["seed.txt", "up.txt"]
        assert server.read_file("dir/up.txt") == b"uploaded"
        on_disk = [p.name for p in tmp_path.rglob("*") if p.is_file()]
        assert on_disk == []  # nothing was written to disk


def test_memory_put_file_refuses_paths_outside_the_root() -> None:
    with running(memory=True) as server:
        with pytest.raises(ValueError, match="outside"):
            server.put_file("../escape.txt", b"x")


def test_memory_read_file_missing_raises_file_not_found() -> None:
    with running(memory=True) as server:
        with pytest.raises(FileNotFoundError):
            server.read_file("missing.txt")


def test_memory_read_file_after_stop_does_not_hang() -> None:
    thread = ServerThread(memory=True)
    server = thread.start()
    server.put_file("kept.txt", b"kept")
    thread.stop()

    outcome: list[object] = []
    done = threading.Event()

    def read() -> None:
        try:
            outcome.append(server.read_file("kept.txt"))
        except Exception as e:  # an error is acceptable; hanging is not
            outcome.append(e)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout=3), "read_file after stop() is still blocked"
    assert outcome and (outcome[0] == b"kept" or isinstance(outcome[0], Exception))


# -- sessions ----------------------------------------------------------------------------------


def test_sessions_tracks_live_control_connections() -> None:
    with running() as server:
        assert server.sessions == set()
        first = ftp_login(server)
        watcher = ftp_login(server)
        first_session = session_of(server, first)
        watcher_session = session_of(server, watcher)
        assert server.sessions == {first_session, watcher_session}
        snapshot = server.sessions
        snapshot.clear()  # a copy: changing it changes nothing
        assert len(server.sessions) == 2

        gone = threading.Event()
        first_session.on_lost.append(lambda session: gone.set())  # before it can happen
        assert first.quit().startswith("221")
        first.close()
        assert gone.wait(SAFETY_TIMEOUT)  # the server has finished with the first session
        assert server.sessions == {watcher_session}
        watcher.quit()


# -- stop --------------------------------------------------------------------------------------


def test_stop_leaves_nothing_running() -> None:
    threads_before = set(threading.enumerate())
    thread = ServerThread()
    server = thread.start()
    reactor = server.service.reactor
    port = server.port
    worker = thread._thread
    assert worker is not None and worker.is_alive() and worker.daemon
    server.put_file("f.bin", b"z" * 100_000)
    ftp = ftp_login(server)
    assert ftp_retr(ftp, "f.bin") == b"z" * 100_000  # the disk is read in the reactor's pool
    ftp.voidcmd("NOOP")  # and a session stays open across stop()

    server.stop()  # blocks until stopped

    assert not worker.is_alive()
    assert worker not in threading.enumerate()
    assert thread._reactor is None
    assert not reactor.running
    assert reactor.getDelayedCalls() == []  # safe to look: its thread has exited
    assert set(threading.enumerate()) - threads_before == set()  # no pool threads either
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=SAFETY_TIMEOUT)
    # The session was told 421 and closed: the client reads the 421 and then the
    # end of the stream, or a reset when its NOOP met the closed socket first.
    try:
        ftp.voidcmd("NOOP")
        pytest.fail("the session is still open after stop()")
    except ftplib.error_temp as e:
        assert str(e).startswith("421 ")
        with pytest.raises((EOFError, ConnectionError)):
            ftp.voidcmd("NOOP")
    except (EOFError, ConnectionError):
        pass
    ftp.close()
    thread.stop()  # stopping twice is harmless


def test_context_manager_stops_on_error() -> None:
    with pytest.raises(RuntimeError, match="inside"):
        with ServerThread() as server:
            port = server.port
            raise RuntimeError("inside the block")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=SAFETY_TIMEOUT)


def test_failed_start_raises_and_leaves_no_thread() -> None:
    threads_before = set(threading.enumerate())
    with pytest.raises(TypeError, match="no_such_option"):
        ServerThread(no_such_option=1).start()
    assert set(threading.enumerate()) - threads_before == set()


def test_failed_start_leaves_no_temporary_files(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(TypeError, match="no_such_option"):
        ServerThread(tls=True, no_such_option=1).start()
    assert our_temp_dirs(tmp_path) == []


# -- TLS and options ---------------------------------------------------------------------------


def test_tls_certificate_file() -> None:
    with running(tls=True) as server:
        assert server.cert is not None
        context = ssl.create_default_context(cafile=server.cert)  # loads as a CA
        context.load_cert_chain(server.cert)  # and holds the matching key
        ftp = ftplib.FTP_TLS(context=context)
        ftp.connect(server.host, server.port, timeout=SAFETY_TIMEOUT)
        try:
            assert ftp.auth().startswith("234")  # hostname 127.0.0.1 verified
            ftp.login("alice", "secret")
            assert ftp.sock.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            ftp.quit()
    assert not Path(server.cert).exists()  # removed with the scratch directory


def test_no_tls_by_default() -> None:
    with running() as server:
        assert server.cert is None
        ftp = ftplib.FTP()
        ftp.connect(server.host, server.port, timeout=SAFETY_TIMEOUT)
        try:
            with pytest.raises(ftplib.error_perm, match="^502"):
                ftp.sendcmd("AUTH TLS")
        finally:
            ftp.close()


def test_options_are_passed_to_the_server_config() -> None:
    with running(banner="hi", idle_timeout=123.0, data_timeout=7.0) as server:
        assert server.service.config.idle_timeout == 123.0
        assert server.service.config.data_timeout == 7.0
        assert server.service.config.interface == "127.0.0.1"
        ftp = ftplib.FTP()
        ftp.connect(server.host, server.port, timeout=SAFETY_TIMEOUT)
        try:
            assert ftp.getwelcome() == "220 hi"
        finally:
            ftp.close()


def test_passive_ports() -> None:
    with socket.socket() as probe:  # a free port, then give it back to the server
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with running(passive_ports=(free, free)) as server:
        ftp = ftp_login(server)
        try:
            host, port = ftplib.parse227(ftp.sendcmd("PASV"))
            assert (host, port) == ("127.0.0.1", free)
        finally:
            ftp.close()


def test_implicit_tls_port_option() -> None:
    with running(tls=True, implicit_tls_port=0) as server:
        assert server.implicit_tls_port not in (None, 0, server.port)
        context = ssl.create_default_context(cafile=server.cert)
        with socket.create_connection((server.host, server.implicit_tls_port),
                                      timeout=SAFETY_TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.recv(1024).startswith(b"220 ")


def test_stop_returns_while_a_client_waits_out_a_failed_login() -> None:
    """A client that sent a wrong password and stays connected does not hold stop()
    for the rest of its login delay (before, stop() never returned)."""
    thread = ServerThread(login_delay=600)
    server = thread.start()
    sock = socket.create_connection((server.host, server.port), timeout=SAFETY_TIMEOUT)
    try:
        replies = sock.makefile("rb")
        assert replies.readline().startswith(b"220")
        sock.sendall(b"USER alice\r\n")
        assert replies.readline().startswith(b"331")
        (session,) = server.sessions
        delaying = threading.Event()
        sleep = session.sleep

        def noting_sleep(seconds: float) -> Any:  # runs on the server's thread
            delaying.set()
            return sleep(seconds)

        session.sleep = noting_sleep
        sock.sendall(b"PASS wrong\r\nNOOP\r\n")
        assert delaying.wait(SAFETY_TIMEOUT)  # the failed login is waiting out its delay
        stopper = threading.Thread(target=thread.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=SAFETY_TIMEOUT)
        assert not stopper.is_alive(), "stop() hung on the login delay"
        try:
            rest = replies.read()
        except ConnectionResetError:  # a test server drops its sessions at once
            rest = b""
        assert rest == b""  # no reply to the delayed PASS, nor to the NOOP
    finally:
        sock.close()
