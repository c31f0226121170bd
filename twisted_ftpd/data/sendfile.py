# -*- test-case-name: tests.test_data_sendfile,tests.integration.test_sendfile -*-
"""Downloads the kernel sends: ``os.sendfile`` from the file straight to the socket.

A binary download of a real file (``IFileDescriptorReadFile``) over plain TCP
without a rate limit never passes through Python: the kernel copies the file's
page-cache pages into the socket. Twisted has no sendfile (twisted#11395), so
``SendfileSender`` drives the socket's writability itself: it sends a first
burst at once, and while more is left it registers a duplicate of the socket's
descriptor with the reactor as a writer and calls sendfile until the socket is
full. A duplicate, because the reactor keys its readers and writers by
descriptor number, and the transport goes on reading the original to notice
the peer closing or resetting. The transport's write buffer
stays empty throughout, and the sender is the transport's registered producer,
so a lost connection stops it as it stops any producer.

Everything else keeps the producer path (``IReadFile.send``): TLS (the bytes
must be encrypted in this process), TYPE A (they are translated), download
rates (``ThrottledProducer`` paces the producer), and backends without real
files.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorFDSet, IWriteDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.interfaces import IFileDescriptorReadFile, IReadFile
from twisted_ftpd.protocol.errors import FTPError, LocalError, TransferAborted

from .ascii import AsciiConsumer
from .channel import DataProtocol

log = Logger()

# How much one writable event may send: a fair share of SHARE among the
# downloads going by sendfile in this process, at least CHUNK and at most BURST.
# The reactor then serves the other sessions' sockets between events, so one
# fast download cannot starve them: 200 concurrent downloads get CHUNK each per
# event (they ended sooner and closer together with 256 KiB per event than with
# 2 MiB), while a lone download sends up to BURST per event, in as few calls as
# the socket takes, so it wakes the reactor and calls sendfile far less often.
# It also bounds the only wait this adds to the reactor thread: the file is
# read inside sendfile, on the reactor thread, as the producer path's read()
# does. From the page cache (the normal case for a file being downloaded, and
# always on tmpfs) that is a memory copy; on a cold disk the kernel's
# sequential readahead has usually fetched the pages already, and a miss waits
# for one burst's read at most. The socket itself never blocks: it is
# non-blocking, and EAGAIN ends the event.
CHUNK = 256 * 1024
BURST = 4 * 1024 * 1024
SHARE = 4 * 1024 * 1024

# The file or socket cannot be sent from with sendfile: use the producer path.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK})


def send_download(proto: DataProtocol, source: IReadFile, *, ascii: bool,
                  reactor: Any) -> Deferred[int]:
    """Send ``source`` over ``proto`` the fastest way that applies; fires with the
    byte count, fails with an FTPError (TransferAborted when the connection broke).
    ``proto.download_path`` says which way was taken."""
    if not ascii and IFileDescriptorReadFile.providedBy(source) and IReactorFDSet.providedBy(
            reactor):
        sock = proto.direct_socket()
        if sock is not None:
            proto.download_path = "sendfile"
            return SendfileSender(proto, source, sock, reactor).start()
    proto.download_path = "producer"
    return source.send(AsciiConsumer(proto) if ascii else proto)


@implementer(IPushProducer, IWriteDescriptor)
class SendfileSender:
    """Sends one file with sendfile whenever the socket is writable, until its end."""

    def __init__(self, proto: DataProtocol, source: Any, sock: int, reactor: Any) -> None:
        self._proto = proto
        self._source = source
        self._reactor = reactor
        self._file, self._offset = source.file_descriptor()
        self._sock = sock
        self._fd = -1  # the socket's duplicate the reactor watches, made when needed
        self._sent = 0
        self._watching = False
        self._paused = False
        self._deferred: Deferred[int] | None = None

    # Downloads under way by sendfile in this process (one reactor), for the share.
    active = 0

    @classmethod
    def budget(cls) -> int:
        """What one writable event may send now (see SHARE)."""
        return max(CHUNK, min(BURST, SHARE // max(cls.active, 1)))

    def start(self) -> Deferred[int]:
        self._deferred = d = Deferred()
        SendfileSender.active += 1
        self._proto.transport.registerProducer(self, True)
        # A new data connection is writable: the first burst goes at once, so a
        # small file is sent without a reactor turn or a descriptor to watch.
        if self._burst(self._sock):
            self._watch(True)
        return d

    # IWriteDescriptor, for the reactor.

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:  # noqa: N802 - Twisted interface name
        return "SendfileSender"

    def doWrite(self) -> None:  # noqa: N802
        if self._proto.aborted or self._proto.lost is not None:
            self._finish(TransferAborted())
            return
        self._burst(self._fd)

    def _burst(self, fd: int) -> bool:
        """Send up to a budget's bytes into ``fd``; True when more is left for a later
        writable event, False when the transfer ended (or waits to end)."""
        budget = self.budget()
        while budget > 0:
            room = self._proto.room()
            count = budget if room is None else min(budget, room)
            try:
                sent = os.sendfile(fd, self._file, self._offset, count)
            except BlockingIOError:
                return True  # the socket is full: wait for the next writable event
            except InterruptedError:
                continue
            except ConnectionError:  # reset or broken pipe: the peer went away
                self._finish(TransferAborted())
                return False
            except OSError as e:
                self._failed(e)
                return False
            if sent == 0:
                self._finish(None)
                return False
            self._offset += sent
            self._sent += sent
            budget -= sent
            self._proto.sent_directly(sent)
            if self._proto.aborted:
                # The byte limit hung up (flushing first); the transport's
                # stopProducing ends the transfer once the connection is gone.
                self._watch(False)
                return False
        return True

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        """The reactor dropped our descriptor: the socket reported an error or a
        hang-up (the peer went away), or doWrite raised (a bug)."""
        self._watching = False  # the reactor has already stopped watching it
        if reason.check(error.ConnectionDone, error.ConnectionLost):
            self._finish(TransferAborted())
            return
        log.failure("sendfile failed", reason)
        self._finish(LocalError())

    # IPushProducer, for the transport.

    def pauseProducing(self) -> None:  # noqa: N802
        self._paused = True
        self._watch(False)

    def resumeProducing(self) -> None:  # noqa: N802
        self._paused = False
        self._watch(True)

    def stopProducing(self) -> None:  # noqa: N802
        """The connection is gone (or going): the transfer did not complete."""
        self._finish(TransferAborted(), unregister=False)

    def _watch(self, on: bool) -> None:
        on = on and not self._paused and self._deferred is not None
        if on and self._fd < 0:
            # Non-blocking like the original: the flag belongs to the shared open socket.
            self._fd = os.dup(self._sock)
        if on != self._watching:
            self._watching = on
            (self._reactor.addWriter if on else self._reactor.removeWriter)(self)

    def _failed(self, e: OSError) -> None:
        if e.errno in _UNSUPPORTED and self._sent == 0:
            self._fall_back()
            return
        log.error("Reading for a download failed: {error}", error=e)
        self._finish(LocalError())

    def _fall_back(self) -> None:
        """This file cannot be sendfile'd: send it through the producer path instead
        (nothing was sent yet, and the file's position was never moved)."""
        d = self._release(unregister=True)
        if d is not None:
            self._proto.download_path = "producer"
            self._source.send(self._proto).chainDeferred(d)

    def _finish(self, error: FTPError | None, *, unregister: bool = True) -> None:
        d = self._release(unregister=unregister)
        if d is None:
            return
        self._source.close()
        if error is None:
            d.callback(self._sent)
        else:
            d.errback(error)

    def _release(self, *, unregister: bool) -> Deferred[int] | None:
        """Stop watching and close the duplicate (before the transport closes the socket,
        so a reset still goes out); the pending Deferred, or None if already done."""
        d, self._deferred = self._deferred, None
        if d is None:
            return None
        SendfileSender.active -= 1
        self._watch(False)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if unregister:
            self._proto.transport.unregisterProducer()
        return d
