"""The blocking-call pool: calls run in its threads, results come back through the
reactor's callFromThread, at most ``size`` threads, and a clean stop."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from twisted_ftpd import blocking
from twisted_ftpd.blocking import BlockingPool, pool_for


class FakeReactor:
    """callFromThread queues the call for the test's thread to run, as a reactor would."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Any, tuple[Any, ...]]] = queue.Queue()
        self.triggers: list[tuple[str, str, Any]] = []

    def callFromThread(self, f: Any, *args: Any) -> None:  # noqa: N802
        self.calls.put((f, args))

    def addSystemEventTrigger(self, phase: str, event: str, f: Any) -> None:  # noqa: N802
        self.triggers.append((phase, event, f))

    def deliver(self, count: int = 1) -> None:
        for _ in range(count):
            f, args = self.calls.get(timeout=30)
            f(*args)


def results(d: Any) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_a_call_runs_in_a_pool_thread_and_fires_in_the_reactors() -> None:
    reactor = FakeReactor()
    pool = BlockingPool(reactor)
    got = results(pool.run(lambda a, b=0: (threading.get_ident(), a + b), 2, b=3))
    assert got == []  # nothing fires from the pool's thread itself
    reactor.deliver()
    ((ident, value),) = got
    assert value == 5 and ident != threading.get_ident()
    pool.stop()


def test_an_exception_fails_the_deferred() -> None:
    reactor = FakeReactor()
    pool = BlockingPool(reactor)
    got = results(pool.run(lambda: 1 / 0))
    reactor.deliver()
    assert got[0].check(ZeroDivisionError)
    pool.stop()


def test_at_most_size_threads_however_many_calls_wait() -> None:
    reactor = FakeReactor()
    pool = BlockingPool(reactor, size=2)
    release = threading.Event()
    started: queue.Queue[int] = queue.Queue()

    def slow(n: int) -> int:
        started.put(n)
        release.wait(30)
        return n

    got = [results(pool.run(slow, n)) for n in range(5)]
    started.get(timeout=30), started.get(timeout=30)
    assert len(pool.threads) == 2
    assert started.empty()  # the other three wait for a thread
    release.set()
    reactor.deliver(5)
    assert [g[0] for g in got] == [0, 1, 2, 3, 4] and len(pool.threads) == 2
    pool.stop()


def test_an_idle_thread_is_reused_rather_than_a_new_one_started() -> None:
    reactor = FakeReactor()
    pool = BlockingPool(reactor)
    for n in range(20):
        got = results(pool.run(lambda n=n: n))
        reactor.deliver()
        assert got == [n]
    assert len(pool.threads) <= 2  # sequential calls: no thread per call
    pool.stop()


def test_stop_ends_the_threads_at_shutdown_and_refuses_new_calls() -> None:
    reactor = FakeReactor()
    pool = BlockingPool(reactor)
    got = results(pool.run(lambda: "done"))
    reactor.deliver()
    [(phase, event, stop)] = reactor.triggers
    assert (phase, event) == ("during", "shutdown")
    stop()
    assert pool.stopped and not any(t.is_alive() for t in pool.threads)
    assert got == ["done"]
    refused = results(pool.run(lambda: "late"))
    assert refused[0].check(RuntimeError)


def test_one_pool_per_reactor_until_it_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocking, "_POOLS", blocking.weakref.WeakKeyDictionary())
    reactor, other = FakeReactor(), FakeReactor()
    first = pool_for(reactor)
    assert pool_for(reactor) is first and pool_for(other) is not first
    first.stop()
    assert pool_for(reactor) is not first
