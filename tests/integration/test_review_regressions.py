"""Review regressions on real sockets: a client that floods commands without reading
its replies cannot make the server buffer them without bound, and stopping the test
server in the middle of an upload settles the upload before it returns.

Both run the server on a ServerThread (its own reactor), so the blocking clients
here run in the test's thread; waits are on events, never on sleeps.
"""

from __future__ import annotations

import ftplib
import os
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import FTP_TIMEOUT, RawControl, part_files
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import help_text
from twisted_ftpd.testing import ServerThread

pytestmark = pytest.mark.integration

FLOOD = 20_000
BUFFER_LIMIT = 1 << 20  # 1 MiB; unbounded, the flood's replies are about 7 MiB


def test_help_flood_without_reading_keeps_the_write_buffer_bounded() -> None:
    expected = replies.HELP(help_text()).render()
    assert len(expected) * FLOOD > 4 * BUFFER_LIMIT  # the flood could overflow the limit
    with ServerThread() as server:
        control = RawControl(server.host, server.port)
        try:
            control.login()
            session = server._call(lambda: next(iter(server.service.factory.sessions)))
            peak = [0]
            ready = threading.Event()  # the server stopped reading, or the flood is all sent

            def instrument() -> None:  # on the reactor thread
                transport = session.transport
                write, pause = transport.write, transport.pauseProducing

                def recording_write(data: bytes) -> None:
                    write(data)
                    size = len(transport.dataBuffer) + transport._tempDataLen
                    peak[0] = max(peak[0], size)

                def recording_pause() -> None:
                    ready.set()
                    pause()

                transport.write = recording_write
                transport.pauseProducing = recording_pause

            server._call(instrument)
            sent = threading.Event()

            def flood() -> None:
                control.send(b"HELP\r\n" * FLOOD)
                sent.set()
                ready.set()

            sender = threading.Thread(target=flood, name="HELP flood", daemon=True)
            sender.start()
            assert ready.wait(FTP_TIMEOUT), "the server neither read the flood nor paused"
            buffered = server._call(
                lambda: len(session.transport.dataBuffer) + session.transport._tempDataLen)
            assert buffered < BUFFER_LIMIT

            # Now read everything: every HELP is answered, in full and in order.
            for index in range(FLOOD):
                reply = control.reply()
                assert reply == expected, f"reply {index}: {reply[:80]!r}"
            sender.join(FTP_TIMEOUT)
            assert sent.is_set()
            assert server._call(lambda: peak[0]) < BUFFER_LIMIT
            assert control.cmd("NOOP")[:3] == b"200"
            assert control.cmd("PWD") == b'257 "/" is the current directory.\r\n'
        finally:
            control.close()


def open_handles_into(root: Path) -> list[str]:
    """This process's file descriptors that point at something below ``root``."""
    root = root.resolve()
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor)
        if target == str(root) or target.startswith(str(root) + os.sep):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_stop_during_an_upload_settles_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    thread = ServerThread(root=root)
    server = thread.start()
    ftp = ftplib.FTP(timeout=FTP_TIMEOUT)
    data = None
    events: list[str] = []
    try:
        ftp.connect(server.host, server.port)
        ftp.login("alice", "secret")
        ftp.voidcmd("TYPE I")
        data = ftp.transfercmd("STOR big.bin")  # the 150 is in: the upload file is open
        assert part_files(root) != []
        data.sendall(os.urandom(100_000))  # and never finished

        # Record, on the reactor thread, when the STOR settles and when the server
        # cleans up: stop() must wait for the first before doing the second.
        session = server._call(lambda: next(iter(server.service.factory.sessions)))

        def watch() -> None:  # returns None: _call would wait on a returned Deferred
            session.when_idle().addCallback(lambda _: events.append("upload settled"))

        server._call(watch)
        cleanup = server._cleanup

        def recording_cleanup() -> None:
            events.append("server cleaned up")
            cleanup()

        server._cleanup = recording_cleanup
    finally:
        thread.stop()
    try:
        assert events == ["upload settled", "server cleaned up"]
        assert part_files(root) == []
        assert open_handles_into(root) == []
        if (root / "big.bin").exists():  # kept as a resumable partial
            assert (root / "big.bin").stat().st_size <= 100_000
    finally:
        if data is not None:
            data.close()
        ftp.close()
