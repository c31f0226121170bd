"""Session-level behaviour: idle timeout, slow shells, queueing, and client disconnects."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.harness import Harness, Session, close, failed_login, held_harness, logged_in
from twisted_ftpd.control.scheduler import MAX_QUEUED
from twisted_ftpd.protocol.errors import FileNotFound
from twisted_ftpd.protocol.values import FileInfo

# -- idle timeout ------------------------------------------------------------------------


def test_idle_timeout_closes_with_421(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    h.reactor.advance(h.config.idle_timeout - 1)
    assert s.take() == [] and not s.transport.disconnecting
    h.reactor.advance(1)
    reply = s.take()
    assert len(reply) == 1 and reply[0].startswith("421 ")
    assert s.transport.disconnecting


def test_idle_timeout_after_login(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, idle_timeout=60.0)
    h.reactor.advance(60)
    assert s.take()[0].startswith("421 ")
    assert s.transport.disconnecting


def test_a_command_resets_the_idle_timer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    idle = h.config.idle_timeout
    h.reactor.advance(idle - 1)
    assert s.codes("NOOP") == [200]
    h.reactor.advance(idle - 1)
    assert s.take() == [] and not s.transport.disconnecting
    assert s.codes("XYZZY") == [500]  # even an unknown command counts as activity
    h.reactor.advance(idle - 1)
    assert not s.transport.disconnecting
    h.reactor.advance(1)
    assert s.take()[0].startswith("421 ")


def test_idle_timeout_ends_other_sessions_independently(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = h.connect()
    h.reactor.advance(h.config.idle_timeout / 2)
    b = h.connect()
    h.reactor.advance(h.config.idle_timeout / 2)
    assert a.transport.disconnecting and not b.transport.disconnecting
    assert b.codes("NOOP") == [200]


# -- slow shells --------------------------------------------------------------------------


class SlowShell:
    """A shell whose stat answers only when the test says so."""

    permissions = "elradfmwMT"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.pending: list[defer.Deferred[FileInfo]] = []

    def stat(self, path: tuple[str, ...]) -> defer.Deferred[FileInfo]:
        self.calls.append(path)
        d: defer.Deferred[FileInfo] = defer.Deferred()
        self.pending.append(d)
        return d


DIR_INFO = FileInfo(name="sub", mode=stat.S_IFDIR | 0o755, size=0, mtime=0.0)


def slow_session(tmp_path: Path) -> tuple[Harness, Session, SlowShell]:
    """A logged-in session whose shell is a SlowShell."""
    h, s = logged_in(tmp_path)
    s.proto.shell = SlowShell()
    return h, s, s.proto.shell


def test_slow_shell_blocks_only_its_own_session(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = h.connect()
    a.login()
    b = h.connect()
    b.login()
    shell = SlowShell()
    a.proto.shell = shell
    assert a.send("CWD sub") == []
    assert shell.calls == [("sub",)]
    assert b.send("NOOP") == ["200 NOOP ok."]
    assert b.codes("PWD") == [257]
    assert a.send("NOOP") == []  # queued behind the CWD
    assert a.send("PWD") == []
    shell.pending[0].callback(DIR_INFO)
    assert a.take() == ["250 Directory changed to /sub.", "200 NOOP ok.",
                        '257 "/sub" is the current directory.']


def test_slow_shell_failure_becomes_the_reply_and_queue_goes_on(tmp_path: Path) -> None:
    _, s, shell = slow_session(tmp_path)
    assert s.codes("TYPE I") == [200]
    assert s.send("SIZE gone") == []
    assert s.send("NOOP") == []
    shell.pending[0].errback(FileNotFound("/gone"))
    assert s.take() == ["550 /gone: No such file or directory.", "200 NOOP ok."]


def test_unexpected_shell_error_is_451_and_session_goes_on(tmp_path: Path) -> None:
    _, s, shell = slow_session(tmp_path)
    assert s.send("CWD x") == []
    shell.pending[0].errback(RuntimeError("disk on fire"))
    assert s.take() == ["451 Requested action aborted: local error in processing."]
    assert s.codes("NOOP") == [200]


def test_many_queued_commands_pause_reading_until_the_queue_drains(tmp_path: Path) -> None:
    _, s, shell = slow_session(tmp_path)
    count = MAX_QUEUED + 6
    s.proto.dataReceived(b"CWD sub\r\n" + b"NOOP\r\n" * count)
    assert s.take() == []
    assert s.transport.producerState == "paused"
    shell.pending[0].callback(DIR_INFO)
    replies = s.take()
    assert replies == ["250 Directory changed to /sub."] + ["200 NOOP ok."] * count
    assert s.transport.producerState == "producing"


def test_disconnect_while_a_slow_command_runs_sends_nothing(tmp_path: Path) -> None:
    h, s, shell = slow_session(tmp_path)
    assert s.send("CWD sub") == []
    assert s.send("NOOP") == []
    s.lose()
    shell.pending[0].callback(DIR_INFO)
    assert s.transport.value() == b""
    assert s.proto not in h.factory.sessions


# -- client disconnects ----------------------------------------------------------------


def test_factory_tracks_live_sessions(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = h.connect()
    b = h.connect()
    assert h.factory.sessions == {a.proto, b.proto}
    a.lose()
    assert h.factory.sessions == {b.proto}


@pytest.mark.parametrize(("old", "sent", "kept"), [
    (b"old", b"new data", b"old"),  # an existing file is kept and no temporary file left
    (None, b"partial", b"partial"),  # a new file keeps the partial upload
], ids=["over-a-file-leaves-no-temp", "new-file-keeps-the-partial"])
def test_disconnect_during_stor_closes_the_data_connection(
        tmp_path: Path, old: bytes | None, sent: bytes, kept: bytes) -> None:
    h, s = logged_in(tmp_path)
    if old is not None:
        h.put("f", old)
    proto, transport = s.start("STOR f")
    proto.dataReceived(sent)
    s.lose(error.ConnectionLost())
    assert transport.disconnecting  # the server dropped the data connection
    close(proto, error.ConnectionAborted())
    assert s.transport.value() == b""
    assert os.listdir(h.root) == ["f"]
    assert (h.root / "f").read_bytes() == kept
    assert h.reactor.getDelayedCalls() == []


def test_disconnect_during_retr_closes_the_data_connection(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x" * 1000)
    proto, transport = s.start("RETR f")
    s.lose()
    assert transport.disconnecting
    close(proto, error.ConnectionAborted())
    assert s.transport.value() == b""
    assert h.reactor.getDelayedCalls() == []


def test_disconnect_while_waiting_for_the_data_connection(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"secret")
    s.pasv()
    assert s.codes("RETR f") == [150]
    factory = h.reactor.tcpServers[-1][1]
    s.lose()
    late = factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 1))
    sent = b""
    if late is not None:
        transport = StringTransport()
        late.makeConnection(transport)
        sent = transport.value()
    assert (late, sent) == (None, b"")
    assert h.reactor.getDelayedCalls() == []


def test_no_delayed_calls_after_quit(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.codes("QUIT") == [221]
    s.lose()
    assert h.reactor.getDelayedCalls() == []


def test_no_delayed_calls_after_disconnect_with_pending_pasv(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert h.reactor.getDelayedCalls() != []
    s.lose()
    assert h.reactor.getDelayedCalls() == []


def test_no_delayed_calls_after_disconnect_during_login_delay(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    s.send("USER alice")
    assert s.send("PASS wrong") == []
    s.lose()
    assert h.reactor.getDelayedCalls() == []
    h.reactor.advance(h.config.login_delay)
    assert s.transport.value() == b""


def test_no_delayed_calls_after_a_completed_login_failure_and_disconnect(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert failed_login(h, s, "alice", "wrong") == ["530 Login incorrect."]
    s.lose()
    assert h.reactor.getDelayedCalls() == []


def test_no_delayed_calls_after_a_transfer_and_disconnect(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.download("RETR f")[0][1:] == ["226 Transfer complete."]
    s.lose()
    assert h.reactor.getDelayedCalls() == []


def test_no_delayed_calls_after_active_setup_and_disconnect(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.codes("PORT 192,0,2,7,4,1", "RETR f") == [200, 150]
    s.lose()
    assert h.reactor.getDelayedCalls() == []


# -- a runner that the test drives (password checks and disk work wait for it) ----------


def test_slow_password_check_does_not_block_other_sessions(tmp_path: Path) -> None:
    h, runner = held_harness(tmp_path)
    a = h.connect()
    b = h.connect()
    assert a.send("USER alice") == ["331 Password required for alice."]
    assert a.send("PASS secret") == []
    assert a.send("NOOP") == []
    assert b.send("NOOP") == ["200 NOOP ok."]
    runner.flush()
    assert a.take() == ["230 Login successful.", "200 NOOP ok."]


def test_disconnect_during_a_slow_password_check_does_not_log_in(tmp_path: Path) -> None:
    h, runner = held_harness(tmp_path)
    s = h.connect()
    s.send("USER alice")
    assert s.send("PASS secret") == []
    s.lose()
    runner.flush()
    assert s.transport.value() == b""
    assert s.proto.shell is None and s.proto.logout is None
    assert h.reactor.getDelayedCalls() == []


def test_sessions_of_one_server_share_its_services(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first, second = h.connect(), h.connect()
    assert first.proto.server is second.proto.server is h.factory.services
    assert first.proto.server.limits.total == 2  # counted by the one server's limits
    replaced = object()
    h.factory.upload_hooks = replaced  # what the test server does, seen by every session
    assert second.proto.server.upload_hooks is replaced
    assert first.codes("QUIT") == [221]
    close(first.proto)
    assert h.factory.limits.total == 1
