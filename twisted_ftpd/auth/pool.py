# -*- test-case-name: tests.test_login_pool -*-
"""Password checks in a small thread pool of their own, behind a bounded queue that
is fair across client addresses.

A check costs ~50 ms of CPU and 16 MiB of scrypt memory while it runs. In Twisted's
shared pool with its unbounded queue, 300 parallel bad logins put 300 checks ahead
of a real user's (seconds of waiting) and ten in memory at once. Here at most
``WORKERS`` (two) run, at most ``MAX_WAITING`` wait (``MAX_WAITING_PER_ADDRESS`` from one
address), and waiting checks are taken round-robin by address, so a flood from a
few addresses delays a login from anywhere else by about one check. Past those
bounds a login is refused at once (``LoginsBusy``, answered 421), never queued.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool

from twisted_ftpd.malloc import keep_big_blocks_mapped
from twisted_ftpd.protocol.addresses import normalize

Runner = Callable[..., "defer.Deferred[Any]"]

# Two checks at a time, but always a CPU left for the reactor: on a 2-CPU machine two
# busy hashing threads doubled the login time of a real user during a flood.
WORKERS = max(1, min(2, (os.cpu_count() or 1) - 1))
MAX_WAITING = 128
MAX_WAITING_PER_ADDRESS = 8


class LoginsBusy(Exception):
    """No room in the queue: for anyone (``per_address`` false) or for this address."""

    def __init__(self, per_address: bool) -> None:
        super().__init__("per address" if per_address else "server")
        self.per_address = per_address


class VerificationQueue:
    """Runs checks through ``run`` (a thread pool, in production), ``workers`` at a time."""

    def __init__(self, run: Runner, workers: int = WORKERS, max_waiting: int = MAX_WAITING,
                 max_waiting_per_address: int = MAX_WAITING_PER_ADDRESS) -> None:
        self._run = run
        self.workers = workers
        self.max_waiting = max_waiting
        self.max_waiting_per_address = max_waiting_per_address
        self.running = 0
        self.waiting = 0
        # address -> its waiting checks; the address served next comes first.
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()

    def waiting_from(self, peer: str) -> int:
        return len(self._queues.get(normalize(peer), ()))

    def submit(self, peer: str, f: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """``f(*args)`` through the pool, when a worker is free; fails with LoginsBusy
        when no check may wait. Cancelling a waiting check drops it unrun."""
        if self.running < self.workers:  # nothing waits while a worker is free
            result: defer.Deferred[Any] = defer.Deferred()
            self._start(_Job(f, args, result))
            return result
        key = normalize(peer)
        queue = self._queues.get(key)
        if self.waiting >= self.max_waiting:
            return defer.fail(LoginsBusy(per_address=False))
        if queue is not None and len(queue) >= self.max_waiting_per_address:
            return defer.fail(LoginsBusy(per_address=True))
        if queue is None:
            queue = self._queues[key] = deque()
        job = _Job(f, args, defer.Deferred(lambda _: self._drop(key, job)))
        queue.append(job)
        self.waiting += 1
        return job.result

    def _drop(self, key: str, job: _Job) -> None:
        queue = self._queues.get(key)
        if queue is not None and job in queue:
            queue.remove(job)
            self.waiting -= 1
            if not queue:
                del self._queues[key]

    def _start(self, job: _Job) -> None:
        self.running += 1
        work = defer.maybeDeferred(self._run, job.f, *job.args)
        work.addBoth(self._finished)
        # A cancelled caller stops waiting; the worker stays counted until it is done.
        work.chainDeferred(job.result)

    def _finished(self, result: object) -> object:
        self.running -= 1
        while self.running < self.workers and self._queues:
            key, queue = next(iter(self._queues.items()))
            job = queue.popleft()
            self.waiting -= 1
            if queue:
                self._queues.move_to_end(key)  # round-robin: the other addresses first
            else:
                del self._queues[key]
            self._start(job)
        return result


class _Job:
    __slots__ = ("f", "args", "result")

    def __init__(self, f: Callable[..., Any], args: tuple[Any, ...],
                 result: defer.Deferred[Any]) -> None:
        self.f, self.args, self.result = f, args, result


class PasswordPool:
    """A ThreadPool of ``size`` threads for password checks only, so that neither
    logins nor file work (in the reactor's pool) can crowd out the other.

    It starts with the first check and stops whenever the last one is done: a server
    stopped in-process (tests, the testing API) leaves no idle threads behind, and no
    service hook is needed; a thread start costs microseconds against a 50 ms check.
    The threads are daemons, so a reactor stopped mid-check cannot keep the process
    alive waiting for idle workers.
    """

    def __init__(self, reactor: IReactorFromThreads | None = None, size: int = WORKERS) -> None:
        self._reactor = reactor
        self.size = size
        self._pool: ThreadPool | None = None
        self._busy = 0

    @property
    def started(self) -> bool:
        return self._pool is not None

    def run(self, f: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """``f(*args)`` in one of the pool's threads; fires in the reactor thread."""
        if self._reactor is None:
            from twisted.internet import reactor  # only when used: importing installs it

            self._reactor = reactor
        if self._pool is None:
            keep_big_blocks_mapped()  # scrypt's 16 MiB buffer
            self._pool = ThreadPool(0, self.size, name="twisted-ftpd-passwords")
            self._pool.threadFactory = functools.partial(threading.Thread, daemon=True)
            self._pool.start()
        self._busy += 1
        d = threads.deferToThreadPool(self._reactor, self._pool, f, *args)  # type: ignore[arg-type]
        return d.addBoth(self._done)

    def _done(self, result: object) -> object:
        self._busy -= 1
        if not self._busy and self._pool is not None:
            pool, self._pool = self._pool, None
            pool.stop()  # every worker is idle: this only waits for them to exit
        return result
