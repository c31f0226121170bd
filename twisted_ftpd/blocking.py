# -*- test-case-name: tests.test_blocking -*-
"""The server's blocking calls (opening and stat of files, reading the user file)
in a bounded pool of threads, one hand-off each way.

Twisted's reactor thread pool would do, but each call through
``deferToThreadPool`` passes a coordinator (``twisted._threads``' Team: a lock
worker, a queue per worker, a context copy, the worker's return to the idle set
through the coordinator again), which profiles of a login or a 4 KiB download
showed costing as much reactor time as the FTP work. Here a call is one put on
a queue; an idle thread takes it and hands its result back with
``callFromThread``. Like the reactor's pool it is bounded, starts threads as the
work needs them, and stops (waiting for the calls under way) when the reactor
shuts down.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

# As many threads as Twisted's reactor pool has at most.
MAX_THREADS = 10
_STOP = object()
_POOLS: weakref.WeakKeyDictionary[Any, BlockingPool] = weakref.WeakKeyDictionary()


class BlockingPool:
    """Up to ``size`` threads running ``f(*args)`` for the reactor's thread."""

    def __init__(self, reactor: Any, size: int = MAX_THREADS) -> None:
        self._reactor = reactor
        self.size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work
        self._waiting = 0  # calls queued that no thread has taken yet
        self.stopped = False
        reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        """``f(*args, **kwargs)`` in a pool thread; fires (or fails) in the reactor's."""
        if self.stopped:
            return defer.fail(RuntimeError("the blocking-call pool has stopped"))
        d: defer.Deferred[Any] = defer.Deferred()
        with self._lock:
            self._waiting += 1
            if self._waiting > self._idle and len(self.threads) < self.size:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"twisted-ftpd-blocking-{len(self.threads)}")
                self.threads.append(thread)
                thread.start()
        self._queue.put((f, args, kwargs, d))
        return d

    def _work(self) -> None:
        call_from_thread = self._reactor.callFromThread
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
                if item is not _STOP:
                    self._waiting -= 1
            if item is _STOP:
                return
            f, args, kwargs, d = item
            try:
                outcome = (d.callback, f(*args, **kwargs))
            except BaseException:
                outcome = (d.errback, Failure())
            call_from_thread(*outcome)
            item = f = args = kwargs = d = outcome = None  # hold no result while idle

    def stop(self) -> None:
        """No new calls; the threads finish what was queued, then end (joined here)."""
        self.stopped = True
        with self._lock:
            threads = list(self.threads)
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join()


def pool_for(reactor: Any) -> BlockingPool:
    """The one pool of ``reactor`` (each server on it shares it, as its thread pool)."""
    pool = _POOLS.get(reactor)
    if pool is None or pool.stopped:
        pool = _POOLS[reactor] = BlockingPool(reactor)
    return pool
