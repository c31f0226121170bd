"""Small helpers shared by the unit tests, for trial-style classes and pytest functions
alike: nothing here needs a pytest fixture, a reactor or the control harness."""

from __future__ import annotations

import contextlib
import ftplib
import io
import shutil
import socket
import stat
import sys
import tempfile
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_ftpd.interfaces import IWriteFile
from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import FileInfo

SAFETY_TIMEOUT = 30  # seconds; a safety net for sockets and threads, never a wait

# The checkout the tests run from, and its launcher as this Python runs it.
REPO = Path(__file__).resolve().parent.parent
SERVER_PY = [sys.executable, str(REPO / "server.py")]

# The twistd command, as this Python runs it (so the tests' virtual environment's plugin).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of non-blocking sockets: the server's end and the client's."""
    server, client = socket.socketpair()
    server.setblocking(False)
    client.setblocking(False)
    return server, client


def read_available(sock: socket.socket) -> bytes:
    """Everything ``sock`` (non-blocking) can be read now, up to the peer's end."""
    got = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return bytes(got)
        if not chunk:
            return bytes(got)
        got += chunk


def sync_run(f, *args, **kwargs) -> defer.Deferred:  # type: ignore[no-untyped-def]
    """A ``run`` that does the blocking work at once, in place of the thread pool."""
    return defer.maybeDeferred(f, *args, **kwargs)


def temp_dir(case: unittest.TestCase) -> Path:
    """A fresh empty directory for one test case, removed after it.

    For trial-style classes: pytest's ``tmp_path`` fixture does not reach them under
    ``python -m twisted.trial``, and ``mktemp()`` writes below the working directory.
    """
    path = Path(tempfile.mkdtemp(prefix="twisted-ftpd-test-"))
    case.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def file_info(name: str, **fields: Any) -> FileInfo:
    """A FileInfo for a plain 0644 file; ``fields`` set any other attribute."""
    fields.setdefault("mode", stat.S_IFREG | 0o644)
    fields.setdefault("size", 0)
    fields.setdefault("mtime", 0.0)
    return FileInfo(name=name, **fields)


class PausingConsumer:
    """A consumer whose buffer is 'full' after every write, like a slow client."""

    def __init__(self) -> None:
        self.producer = None
        self.streaming = None
        self.writes: list[bytes] = []
        self.unregistered = False

    def registerProducer(self, producer, streaming) -> None:  # noqa: N802
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:  # noqa: N802
        self.unregistered = True
        self.producer = None

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.producer.pauseProducing()


def aborted_send(case: SynchronousTestCase, reader: Any, abort: Callable[[], object],
                 unregistered: bool) -> PausingConsumer:
    """Start sending ``reader`` to a PausingConsumer, then ``abort()``: the send must fail
    with TransferAborted, having unregistered from the consumer or not. The consumer."""
    consumer = PausingConsumer()
    d = reader.send(consumer)
    abort()
    case.failureResultOf(d, errors.TransferAborted)
    case.assertEqual(consumer.unregistered, unregistered)
    return consumer


# -- ftplib against a twisted_ftpd.testing server ---------------------------------------------


def ftp_login(server: Any, user: str | None = None, password: str | None = None, *,
              passive: bool = True) -> ftplib.FTP:
    """An ftplib client logged in to a RunningServer, as its first user unless told."""
    if user is None:
        user, password = next(iter(server.users.items()))
    ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=SAFETY_TIMEOUT)
    ftp.login(user, password or "")
    ftp.set_pasv(passive)
    return ftp


@contextlib.contextmanager
def ftp_session(server: Any, user: str | None = None, password: str | None = None, *,
                passive: bool = True) -> Iterator[ftplib.FTP]:
    """``ftp_login``, and QUIT at the end."""
    ftp = ftp_login(server, user, password, passive=passive)
    try:
        yield ftp
    finally:
        ftp.quit()


def ftp_retr(ftp: ftplib.FTP, path: str, into: list[bytes] | None = None,
             rest: int | None = None) -> bytes:
    """Download ``path`` in binary (from ``rest`` on, if given); the chunks also land in
    ``into`` if given."""
    chunks = [] if into is None else into
    ftp.retrbinary(f"RETR {path}", chunks.append, rest=rest)
    return b"".join(chunks)


def check_read_only(server: Any, user: str, password: str, path: str, data: bytes,
                    new_path: str) -> None:
    """``user`` downloads ``path`` (holding ``data``) but may neither store ``new_path``
    nor delete ``path``."""
    with ftp_session(server, user, password) as ftp:
        assert ftp_retr(ftp, path) == data
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.storbinary(f"STOR {new_path}", io.BytesIO(b"x"))
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.delete(path)


@implementer(IWriteFile)
class MemoryTarget:
    """An IWriteFile that keeps the upload in memory and completes every step at once."""

    def __init__(self) -> None:
        self.data = b""
        self.committed = False
        self.aborted = False

    def write(self, data: bytes) -> defer.Deferred[None]:
        self.data += data
        return defer.succeed(None)

    def commit(self) -> defer.Deferred[None]:
        self.committed = True
        return defer.succeed(None)

    def abort(self) -> defer.Deferred[None]:
        self.aborted = True
        return defer.succeed(None)
