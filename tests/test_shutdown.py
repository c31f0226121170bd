"""A clean stop on the clock: idle sessions go at once, running transfers may finish
within the grace period, the rest are told 421, and interrupted uploads land first."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import error

from tests.harness import Harness, Session, close, held_harness, hidden, logged_in
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.shutdown import SHUTTING_DOWN, Shutdown

GRACE = 30.0


class Stop:
    """A Shutdown started on the harness's sessions, and whether it has finished."""

    def __init__(self, h: Harness, grace: float = GRACE) -> None:
        self.h = h
        self.shutdown = Shutdown(h.factory.sessions, grace, h.reactor)
        self.results: list[None] = []
        self.shutdown.start().addCallback(self.results.append)

    @property
    def done(self) -> bool:
        return self.results == [None]

    @property
    def deadline_pending(self) -> bool:
        return any(c.func == self.shutdown.force for c in self.h.reactor.getDelayedCalls())

    def assert_landed(self, name: str, data: bytes) -> None:
        """The stop has ended with ``name`` holding ``data`` and no ``.part`` file left."""
        assert self.done
        assert (self.h.root / name).read_bytes() == data
        assert hidden(self.h.root) == []


def lose_all(s: Session, data: DataProtocol | None = None) -> None:
    """The control connection goes, and (as a reactor would report) its data connection."""
    s.lose()
    if data is not None:
        close(data, error.ConnectionLost())


def told_to_go(s: Session) -> bool:
    """The session got the shutdown 421 and its connection is being closed."""
    lines = s.take()
    return lines[-1:] == [SHUTTING_DOWN.render().decode().strip()] and s.transport.disconnecting


def test_idle_sessions_are_told_421_at_once_and_the_stop_ends_when_they_are_gone(
        tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    other = h.connect()  # not logged in
    stop = Stop(h)
    assert told_to_go(s) and told_to_go(other)
    assert not stop.done and not stop.deadline_pending  # nobody to wait for
    s.lose()
    assert not stop.done
    other.lose()
    assert stop.done


def test_no_sessions_stops_at_once(tmp_path: Path) -> None:
    assert Stop(Harness(tmp_path)).done


def test_a_download_finishes_then_226_then_421(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("big.bin", b"x" * 1000)
    proto, transport = s.start("RETR big.bin")
    stop = Stop(h)
    assert stop.deadline_pending
    h.reactor.advance(GRACE - 1)
    assert s.take() == [] and not s.transport.disconnecting  # still transferring
    lines = s.finish(proto)
    assert [line[:3] for line in lines] == ["226", "421"]
    assert transport.value() == b"x" * 1000
    assert s.transport.disconnecting
    s.lose()
    assert stop.done and not stop.deadline_pending


def test_a_command_queued_behind_the_transfer_never_runs(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    proto, _ = s.start("RETR f")
    Stop(h)
    assert s.send("MKD made") == []  # waits behind the transfer
    assert [line[:3] for line in s.finish(proto)] == ["226", "421"]
    assert not (h.root / "made").exists()
    s.lose()


def test_after_the_grace_period_running_transfers_are_told_421(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("big.bin", b"x" * 1000)
    proto, _ = s.start("RETR big.bin")
    stop = Stop(h)
    h.reactor.advance(GRACE - 1)
    assert s.take() == []
    h.reactor.advance(1)
    assert told_to_go(s)
    lose_all(s, proto)
    assert stop.done


def test_an_interrupted_upload_to_a_new_name_is_kept_under_it(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    proto, _ = s.start("STOR new.bin")
    proto.dataReceived(b"first part")
    stop = Stop(h)
    h.reactor.advance(GRACE)
    assert told_to_go(s)
    lose_all(s, proto)
    stop.assert_landed("new.bin", b"first part")


def test_an_interrupted_overwrite_leaves_the_old_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("old.txt", b"the old contents")
    proto, _ = s.start("STOR old.txt")
    proto.dataReceived(b"new")
    stop = Stop(h)
    h.reactor.advance(GRACE)
    lose_all(s, proto)
    stop.assert_landed("old.txt", b"the old contents")


def test_an_upload_that_ends_in_the_grace_period_is_stored(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    proto, _ = s.start("STOR whole.bin")
    stop = Stop(h)
    proto.dataReceived(b"all of it")
    assert [line[:3] for line in s.finish(proto)] == ["226", "421"]
    s.lose()
    stop.assert_landed("whole.bin", b"all of it")


def test_the_stop_waits_for_the_interrupted_upload_to_land(tmp_path: Path) -> None:
    # The disk work runs in the thread pool, which the reactor stops right after the
    # shutdown triggers: the stop must not end before the partial file is in place.
    h, runner = held_harness(tmp_path)
    s = h.connect()
    s.send("USER alice")
    s.send("PASS secret")
    runner.flush()
    assert s.take()[-1].startswith("230")
    s.pasv()
    s.send("STOR new.bin")
    runner.flush()
    assert s.take()[0].startswith("150")
    proto, _ = s.open_passive()
    assert proto is not None
    proto.dataReceived(b"partial")
    stop = Stop(h)
    h.reactor.advance(GRACE)
    lose_all(s, proto)
    assert not stop.done and hidden(h.root) != []  # the .part is still being settled
    runner.flush()
    stop.assert_landed("new.bin", b"partial")


def test_grace_zero_tells_busy_sessions_at_the_next_turn(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    proto, _ = s.start("RETR f")
    Stop(h, grace=0)
    assert s.take() == []
    h.reactor.advance(0)
    assert told_to_go(s)
    lose_all(s, proto)


def test_force_skips_the_rest_of_the_grace(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    proto, _ = s.start("RETR f")
    stop = Stop(h)
    stop.shutdown.force()  # a second SIGTERM
    assert told_to_go(s) and not stop.deadline_pending
    lose_all(s, proto)
    assert stop.done


def test_a_session_already_closing_is_not_told_twice(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("QUIT") == [221]
    stop = Stop(h)
    assert s.take() == []
    s.lose()
    assert stop.done
