"""Small helpers shared by the unit tests, for trial-style classes and pytest functions
alike: nothing here needs a pytest fixture, a reactor or the control harness."""

from __future__ import annotations

import shutil
import stat
import tempfile
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.values import FileInfo


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
