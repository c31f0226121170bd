"""Regression tests for the control channel's flow control and command ordering.

The session is its transport's push producer: a client that does not read its
replies stops command processing (and, through the bounded queue, reading).
Queued commands drain iteratively, in order; NOOP/STAT/HELP and ABOR run beside
a transfer only once its 150 is out. Closing connections are cut after a grace
period, and no timer outlives the session or the data connection it belongs to.

Everything runs on StringTransports and a MemoryReactorClock: no sockets, no sleeps.
"""

from __future__ import annotations

import os
import stat as statmod
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, error
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.harness import (
    Harness,
    ManualRunner,
    Session,
    close,
    connect_recording,
    held_harness,
    hidden,
    logged_in,
)
from tests.helpers import MemoryTarget
from twisted_ftpd.control import output as control_output
from twisted_ftpd.control import scheduler
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.data.streams import Receiver, finish_sending
from twisted_ftpd.protocol.errors import FileNotFound, TransferAborted
from twisted_ftpd.protocol.values import FileInfo

HELLO = b"0123456789" * 30  # 300 bytes


# -- helpers ----------------------------------------------------------------------------------


def codes_of(lines: list[str]) -> list[int]:
    """The codes of the final lines of each reply."""
    return [int(line[:3]) for line in lines if line[3:4] == " "]


def manual_login(s: Session, runner: ManualRunner, password: str = "secret") -> list[str]:
    s.proto.dataReceived(b"USER alice\r\n")
    runner.flush()
    s.proto.dataReceived(f"PASS {password}\r\n".encode())
    runner.flush()
    return s.take()


# -- 1. the session is its transport's push producer ------------------------------------------


def test_control_protocol_is_registered_as_streaming_producer(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.transport.producer is s.proto.output
    assert s.transport.streaming is True


def test_paused_output_holds_replies_until_resumed(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    s.proto.output.pauseProducing()  # the transport's write buffer is full
    s.proto.dataReceived(b"NOOP\r\nNOOP\r\n")
    assert s.take() == []
    # Reading goes on: only the output is full, and the queue is still short.
    assert s.transport.producerState == "producing"
    s.proto.output.resumeProducing()
    assert codes_of(s.take()) == [200, 200]
    assert s.codes("NOOP") == [200]


def test_long_queue_behind_paused_output_pauses_reading(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    max_queued = scheduler.MAX_QUEUED
    s.proto.output.pauseProducing()
    s.proto.dataReceived(b"NOOP\r\n" * max_queued)
    assert s.take() == []
    assert s.transport.producerState == "producing"  # exactly MAX_QUEUED wait: still reading
    total = 2 * max_queued + 10
    s.proto.dataReceived(b"NOOP\r\n" * (total - max_queued - 1) + b"SYST\r\n")
    assert s.take() == []
    assert s.transport.producerState == "paused"  # more than MAX_QUEUED: reading stops
    s.proto.output.resumeProducing()
    replies = s.take()
    assert codes_of(replies) == [200] * (total - 1) + [215]
    assert s.transport.producerState == "producing"
    assert s.codes("NOOP") == [200]


def test_pause_during_a_pipeline_stops_the_rest_in_order(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    written: list[bytes] = []
    original = s.transport.write

    def write(data: bytes) -> None:
        written.append(data)
        original(data)
        if len(written) == 2:
            s.proto.output.pauseProducing()  # the buffer fills after the second reply

    s.transport.write = write  # type: ignore[method-assign]
    s.proto.dataReceived(b"NOOP\r\nHELP NOOP\r\nSYST\r\nPWD\r\n")
    assert codes_of(s.take()) == [200, 214]
    s.proto.output.resumeProducing()
    assert codes_of(s.take()) == [215, 530]


# -- 2. long pipelines drain iteratively ------------------------------------------------------


@pytest.mark.parametrize("outcome", ["error", "directory"])
def test_5000_noops_behind_a_running_command(tmp_path: Path, outcome: str) -> None:
    h, s = logged_in(tmp_path)
    pending: defer.Deferred = defer.Deferred()
    s.proto.shell.stat = lambda path: pending  # CWD waits on a slow disk
    s.proto.dataReceived(b"CWD x\r\n" + b"NOOP\r\n" * 5000)
    assert s.take() == []
    if outcome == "error":
        pending.errback(FileNotFound("/x"))
        first = 550
    else:
        pending.callback(FileInfo("x", statmod.S_IFDIR | 0o755, 0, 0.0))
        first = 250
    replies = s.take()
    assert codes_of(replies) == [first] + [200] * 5000
    assert len(s.proto.scheduler) == 0
    assert s.transport.producerState == "producing"
    expected = "/x" if outcome == "directory" else "/"
    assert s.send("PWD") == [f'257 "{expected}" is the current directory.']


# -- 3. ordering around transfers that have not started ---------------------------------------


def test_noop_after_retr_of_a_missing_file_waits_for_its_550(tmp_path: Path) -> None:
    h, runner = held_harness(tmp_path)
    s = h.connect()
    assert codes_of(manual_login(s, runner)) == [331, 230]
    s.pasv()
    s.proto.dataReceived(b"RETR missing\r\nNOOP\r\n")
    assert s.take() == []  # the file is still being opened: NOOP must wait its turn
    runner.flush()
    assert codes_of(s.take()) == [550, 200]


def test_noop_after_retr_of_a_missing_file_in_one_read(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    s.proto.dataReceived(b"RETR missing\r\nNOOP\r\n")
    assert codes_of(s.take()) == [550, 200]


def test_pipelined_abor_waits_for_the_stor_150(tmp_path: Path) -> None:
    h, runner = held_harness(tmp_path)
    s = h.connect()
    manual_login(s, runner)
    s.pasv()
    seen_at_abort: list[bytes] = []
    original = s.proto.data.abort

    def abort_transfer() -> None:
        seen_at_abort.append(s.transport.value())
        original()

    s.proto.data.abort = abort_transfer  # type: ignore[method-assign]
    s.proto.dataReceived(b"STOR new\r\nABOR\r\n")
    assert seen_at_abort == []  # not while the file is still being opened
    runner.flush()
    lines = s.take()
    codes = codes_of(lines)
    assert codes[0] == 150
    assert seen_at_abort and b"150 " in seen_at_abort[0]  # ABOR ran only after the 150
    assert codes[1] in (425, 426)  # the STOR's own end comes first
    assert codes[2] in (225, 226)
    assert len(codes) == 3
    assert not (h.root / "new").exists()  # no empty file from an upload that never began
    assert hidden(h.root) == []
    assert s.codes("NOOP") == [200]


def test_pipelined_abor_before_data_connection_sync(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    s.proto.dataReceived(b"STOR new\r\nABOR\r\n")
    codes = codes_of(s.take())
    assert codes[0] == 150
    assert codes[1] in (425, 426)
    assert codes[2] in (225, 226)
    assert len(codes) == 3
    assert os.listdir(h.root) == []
    assert s.codes("NOOP") == [200]


# -- 4. ABOR from anywhere in the queue during a transfer --------------------------------------


def test_abor_behind_type_runs_at_once_during_retr(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", HELLO)
    proto, data = s.start("RETR f")
    assert data.value() == HELLO
    assert not data.disconnected
    s.proto.dataReceived(b"TYPE I\r\nABOR\r\n")
    assert data.disconnected  # ABOR ran at once, ahead of TYPE I
    assert s.take() == []  # its 226 waits for the transfer's own 426
    assert s.finish(proto, error.ConnectionAborted()) == [
        "426 Connection closed; transfer aborted.",
        "226 ABOR successful; data connection closed.",
        "200 Type set to I.",
    ]
    assert s.codes("NOOP") == [200]


# -- 5. no timer outlives what it belongs to --------------------------------------------------


def test_passive_connection_closed_before_retr_leaves_no_stall_timer(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", HELLO)
    s.pasv()
    proto, _ = s.open_passive()
    close(proto)  # the client connects and hangs up before sending RETR
    codes = s.codes("RETR f")
    # A real transport refuses the download's producer once disconnected (426); the
    # StringTransport here does not, so only the end of the command is checked.
    assert codes[0] == 150 and codes[-1] in (226, 425, 426)
    s.lose()
    assert h.reactor.getDelayedCalls() == []


def test_failed_login_then_disconnect_leaves_no_timer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert s.codes("USER alice", "PASS wrong") == [331]  # the 530 waits for login_delay
    assert h.reactor.getDelayedCalls() != []
    s.lose()
    assert h.reactor.getDelayedCalls() == []


def test_failed_login_checked_after_disconnect_starts_no_timer(tmp_path: Path) -> None:
    h, runner = held_harness(tmp_path)
    s = h.connect()
    s.proto.dataReceived(b"USER alice\r\n")
    runner.flush()
    assert codes_of(s.take()) == [331]
    s.proto.dataReceived(b"PASS wrong\r\n")
    assert runner.calls  # the password check is still running...
    s.lose()  # ...when the client leaves
    runner.flush()  # then it fails
    assert h.reactor.getDelayedCalls() == []
    assert s.transport.value() == b""


# -- handler failures after the client left are not logged as server faults -----------------


@pytest.fixture
def logged_failures() -> Any:
    from twisted.logger import globalLogPublisher

    events: list[dict] = []

    def observe(event: dict) -> None:
        if event.get("log_failure") is not None:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def handler_failures(events: list[dict]) -> list[dict]:
    return [e for e in events if "Command handler failed" in e.get("log_format", "")]


def running_cwd(tmp_path: Path) -> tuple[Session, defer.Deferred]:
    """A logged-in session running CWD x, whose stat waits on the Deferred returned."""
    _, s = logged_in(tmp_path)
    pending: defer.Deferred = defer.Deferred()
    s.proto.shell.stat = lambda path: pending
    s.proto.dataReceived(b"CWD x\r\n")
    return s, pending


def test_handler_failure_after_disconnect_is_not_logged(tmp_path: Path,
                                                        logged_failures: list) -> None:
    s, pending = running_cwd(tmp_path)
    s.lose()  # the session is torn down under the running handler...
    pending.errback(RuntimeError("shell closed"))  # ...which then fails
    assert handler_failures(logged_failures) == []


def test_handler_failure_with_the_client_present_is_logged(tmp_path: Path,
                                                           logged_failures: list) -> None:
    s, pending = running_cwd(tmp_path)
    pending.errback(RuntimeError("a bug"))
    assert codes_of(s.take()) == [451]
    assert handler_failures(logged_failures) != []


# -- 6. a data connection that ended cleanly is not turned into an abort ----------------------


def lost_cleanly() -> DataProtocol:
    proto = DataProtocol()
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"early")
    proto.connectionLost(Failure(error.ConnectionDone()))
    proto.close()  # the session tidies up a connection the peer already closed
    return proto


def test_close_after_clean_connection_lost_is_not_an_abort() -> None:
    proto = lost_cleanly()
    assert proto.aborted is False
    assert proto.transport.disconnecting is False  # nothing to abort


def test_finish_sending_after_clean_close_succeeds() -> None:
    proto = lost_cleanly()
    results: list[object] = []
    defer.ensureDeferred(finish_sending(proto)).addBoth(results.append)
    assert results == [None]  # success, not a TransferAborted failure


def test_receiver_after_clean_close_commits() -> None:
    proto = lost_cleanly()
    target = MemoryTarget()
    results: list[object] = []
    defer.ensureDeferred(Receiver(proto, target).run()).addBoth(results.append)
    assert results == [5]
    assert target.committed and not target.aborted
    assert target.data == b"early"


def test_close_of_a_live_connection_still_aborts() -> None:
    proto = DataProtocol()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.close()
    assert proto.aborted is True
    assert transport.disconnected
    proto.connectionLost(Failure(error.ConnectionDone()))
    d = defer.ensureDeferred(finish_sending(proto))
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(TransferAborted)


def test_watch_on_a_lost_connection_starts_no_timer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    proto = DataProtocol()
    proto.makeConnection(StringTransport())
    proto.connectionLost(Failure(error.ConnectionDone()))
    proto.watch(h.reactor, 300.0)
    assert h.reactor.getDelayedCalls() == []


# -- 7. AUTH's 234 is never delayed -----------------------------------------------------------


def test_auth_234_is_written_at_once_and_before_starttls_with_reply_delay(
        tmp_path: Path, pem: str) -> None:
    h = Harness(tmp_path, tls_cert=pem)
    s, transport = connect_recording(h)
    h.faults.reply_delay = 5
    transport.events.clear()
    s.proto.dataReceived(b"AUTH TLS\r\n")
    assert transport.value().startswith(b"234 ")  # no clock advance needed
    kinds = [kind for kind, _ in transport.events]
    assert kinds == ["write", "startTLS"]
    assert transport.events[0][1].startswith(b"234 ")


def test_other_replies_still_honour_reply_delay(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    h.faults.reply_delay = 5
    assert s.send("NOOP") == []
    h.reactor.advance(5)
    assert codes_of(s.take()) == [200]


# -- 8. a REST before a listing is spent on it -------------------------------------------------


@pytest.mark.parametrize("listing", ["LIST", "NLST", "MLSD"])
def test_rest_before_a_listing_does_not_offset_the_next_retr(tmp_path: Path,
                                                              listing: str) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", HELLO)
    assert s.codes("TYPE I", "REST 100") == [200, 350]
    proto, _ = s.start(listing)
    assert codes_of(s.finish(proto)) == [226]
    replies, data = s.download("RETR f")
    assert data == HELLO  # from byte 0
    assert codes_of(replies) == [150, 226]


def test_rest_still_applies_to_the_next_retr(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", HELLO)
    assert s.codes("TYPE I", "REST 100") == [200, 350]
    assert s.download("RETR f")[1] == HELLO[100:]


# -- 9. closing connections are cut after a grace period ---------------------------------------


def test_quit_to_a_client_that_never_reads_is_aborted_after_grace(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s, transport = connect_recording(h)
    assert s.codes("QUIT") == [221]
    assert transport.disconnecting  # loseConnection: flush, then close
    grace = control_output.CLOSE_GRACE
    h.reactor.advance(grace - 0.5)
    assert transport.abort_calls == 0
    h.reactor.advance(0.5)
    assert transport.abort_calls == 1


def test_idle_timeout_to_a_client_that_never_reads_is_aborted_after_grace(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, idle_timeout=60.0)
    s, transport = connect_recording(h)
    h.reactor.advance(60.0)
    assert codes_of(s.take()) == [421]
    assert transport.disconnecting
    assert transport.abort_calls == 0
    h.reactor.advance(control_output.CLOSE_GRACE)
    assert transport.abort_calls == 1


def test_quit_that_closes_in_time_leaves_no_timer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s, transport = connect_recording(h)
    assert s.codes("QUIT") == [221]
    s.lose()  # the reply was flushed and the connection closed
    assert h.reactor.getDelayedCalls() == []
    h.reactor.advance(control_output.CLOSE_GRACE)
    assert transport.abort_calls == 0
