"""The password-check queue and pool: how many run, how many wait, in what order, and
what happens past the bounds (also over the control channel); all on held
Deferreds, no threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.cred.credentials import IUsernamePassword
from twisted.internet import defer, threads
from twisted.python.failure import Failure

from tests.harness import PEER, Harness, ManualRunner
from twisted_ftpd import malloc
from twisted_ftpd.auth.pool import LoginsBusy, PasswordPool, VerificationQueue

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"


class HeldRunner:
    """A ``run`` whose calls finish only when the test says so."""

    def __init__(self) -> None:
        self.running: list[tuple[str, defer.Deferred[Any]]] = []

    def __call__(self, f: Any, *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.running.append((f(*args), d))
        return d

    def names(self) -> list[str]:
        return [name for name, _ in self.running]

    def finish(self, name: str) -> None:
        for index, (running, d) in enumerate(self.running):
            if running == name:
                del self.running[index]
                d.callback(name)
                return
        raise AssertionError(f"{name} is not running")


def queue(**bounds: int) -> tuple[VerificationQueue, HeldRunner]:
    runner = HeldRunner()
    return VerificationQueue(runner, **bounds), runner


def submit(q: VerificationQueue, peer: str, name: str) -> defer.Deferred[Any]:
    return q.submit(peer, lambda: name)


def test_at_most_workers_run_and_the_rest_wait() -> None:
    q, runner = queue(workers=2)
    results = [submit(q, A, f"a{i}") for i in range(5)]
    assert runner.names() == ["a0", "a1"]
    assert (q.running, q.waiting) == (2, 3)
    runner.finish("a0")
    assert runner.names() == ["a1", "a2"]
    assert results[0].result == "a0"
    assert (q.running, q.waiting) == (2, 2)


def test_waiting_checks_are_taken_round_robin_by_address() -> None:
    q, runner = queue(workers=1)
    for name in ("a0", "a1", "a2", "a3"):
        submit(q, A, name)
    submit(q, B, "b0")
    submit(q, C, "c0")
    order = []
    while runner.running:
        order.append(runner.names()[0])
        runner.finish(order[-1])
    # The flood from A does not hold up B and C: each waits behind one check of A's.
    assert order == ["a0", "a1", "b0", "c0", "a2", "a3"]


def test_one_address_may_only_have_so_many_waiting() -> None:
    q, runner = queue(workers=1, max_waiting_per_address=2)
    submit(q, A, "a0")
    submit(q, A, "a1")
    submit(q, A, "a2")
    refused = submit(q, f"::ffff:{A}", "a3")  # the same client, however spelled
    assert refused.result.check(LoginsBusy)
    assert refused.result.value.per_address
    refused.addErrback(lambda _: None)
    assert not submit(q, B, "b0").called  # another address still waits its turn
    assert q.waiting_from(A) == 2


def test_the_whole_queue_is_bounded() -> None:
    q, runner = queue(workers=1, max_waiting=2)
    submit(q, A, "a0")
    submit(q, A, "a1")
    submit(q, B, "b0")
    refused = submit(q, C, "c0")
    assert not refused.result.value.per_address
    refused.addErrback(lambda _: None)
    assert (q.running, q.waiting) == (1, 2)
    assert runner.names() == ["a0"]


def test_a_cancelled_waiting_check_never_runs() -> None:
    q, runner = queue(workers=1)
    submit(q, A, "a0")
    waiting = submit(q, B, "b0")
    waiting.cancel()
    waiting.addErrback(lambda f: f.trap(defer.CancelledError))
    assert (q.waiting, q.waiting_from(B)) == (0, 0)
    runner.finish("a0")
    assert runner.names() == []
    assert q.running == 0


def test_a_cancelled_running_check_keeps_its_worker_until_it_ends() -> None:
    q, runner = queue(workers=1)
    running = submit(q, A, "a0")
    submit(q, B, "b0")
    running.cancel()
    running.addErrback(lambda f: f.trap(defer.CancelledError))
    assert runner.names() == ["a0"]  # its thread still works: nothing else may start
    runner.finish("a0")
    assert runner.names() == ["b0"]


def test_a_failed_check_fails_its_caller_and_frees_the_worker() -> None:
    q, runner = queue(workers=1)
    first = submit(q, A, "a0")
    submit(q, B, "b0")
    _, d = runner.running.pop(0)
    d.errback(Failure(ValueError("boom")))
    assert first.result.check(ValueError)
    first.addErrback(lambda _: None)
    assert runner.names() == ["b0"]


def test_checks_that_finish_at_once_never_queue() -> None:
    q = VerificationQueue(lambda f, *a: defer.succeed(f(*a)), workers=1, max_waiting=0)
    assert [submit(q, A, str(i)).result for i in range(100)] == [str(i) for i in range(100)]


class FakeThreads:
    """``threads.deferToThreadPool`` for PasswordPool, held until the test fires it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, defer.Deferred[Any]]] = []

    def __call__(self, reactor: Any, pool: Any, f: Any, *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.calls.append((pool, d))
        return d


@pytest.fixture
def fake_threads(monkeypatch: pytest.MonkeyPatch) -> FakeThreads:
    fake = FakeThreads()
    monkeypatch.setattr(threads, "deferToThreadPool", fake)
    return fake


def test_the_pool_starts_on_demand_and_stops_once_idle(fake_threads: FakeThreads) -> None:
    pool = PasswordPool(reactor=object(), size=2)  # type: ignore[arg-type]
    assert not pool.started
    pool.run(str, 1)
    pool.run(str, 2)
    (first, d1), (second, d2) = fake_threads.calls
    assert first is second and (first.min, first.max) == (0, 2)
    assert first.started
    d1.callback("1")
    assert pool.started  # one check still running
    d2.callback("2")
    assert not pool.started and first.joined
    pool.run(str, 3)
    assert fake_threads.calls[-1][0] is not first  # a fresh pool for the next burst
    fake_threads.calls[-1][1].callback("3")


def test_the_pool_threads_are_daemons(fake_threads: FakeThreads) -> None:
    pool = PasswordPool(reactor=object())  # type: ignore[arg-type]
    pool.run(str, 1)
    thread_pool, d = fake_threads.calls[0]
    thread = thread_pool.threadFactory(target=lambda: None)
    assert thread.daemon
    d.callback("1")


def test_past_the_login_queue_a_login_gets_421_without_a_check(tmp_path: Path) -> None:
    runner = ManualRunner()
    h = Harness(tmp_path, run=runner)
    checker = h.factory.portal.checkers[IUsernamePassword]
    checker.queue.workers, checker.queue.max_waiting_per_address = 2, 1
    sessions = [h.connect() for _ in range(4)]
    for s in sessions:
        s.send("USER alice")
    for s in sessions[:3]:
        assert s.send("PASS secret") == []
    runner.run_calls_of(checker._look_up)  # the users.db reads: two checks run, one waits
    assert sessions[3].send("PASS secret") == []  # after the login delay, like a failure,
    runner.run_calls_of(checker._look_up)
    h.reactor.advance(h.config.login_delay)  # so a refused client cannot loop faster
    assert sessions[3].take() == ["421 Too many logins in progress; try again later."]
    assert sessions[3].transport.disconnecting
    assert len(runner.calls) == 2
    runner.flush()
    assert [s.take() for s in sessions[:3]] == [["230 Login successful."]] * 3
    assert not h.factory.limits.bans.banned(PEER)  # a busy server is not the client's fault


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def test_scrypt_buffers_are_returned_to_the_system(monkeypatch: pytest.MonkeyPatch,
                                                   fake_threads: FakeThreads) -> None:
    """The first check fixes glibc's mmap threshold below scrypt's 16 MiB, once, so the
    pool's threads do not keep that buffer in their heaps between checks."""
    libc = FakeLibc()
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name: libc)
    malloc.keep_big_blocks_mapped.cache_clear()
    passwords = PasswordPool(reactor=object())  # type: ignore[arg-type]
    passwords.run(str, 1)
    passwords.run(str, 2)
    assert libc.calls == [(malloc.M_MMAP_THRESHOLD, malloc.MMAP_THRESHOLD)]
    assert 128 * 1024 <= malloc.MMAP_THRESHOLD < 128 * 8 * 2**14  # scrypt's n=2^14, r=8
    for _, d in fake_threads.calls:
        d.callback("done")
    malloc.keep_big_blocks_mapped.cache_clear()


def test_without_mallopt_nothing_is_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name: object())
    malloc.keep_big_blocks_mapped.cache_clear()
    assert malloc.keep_big_blocks_mapped() is False
    malloc.keep_big_blocks_mapped.cache_clear()
