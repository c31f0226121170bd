"""--upload-check and --on-upload, in memory: the runner with a fake process (on a
Clock), the check wrapper around a file, and whole STOR/APPE/STOU sessions on the
harness. Real /bin/sh children are the integration tests' business."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, error, task
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from tests.harness import Harness, Session, hidden, logged_in
from tests.helpers import sync_run
from twisted_ftpd import hooks
from twisted_ftpd.fs.memory import MemoryFilesystem, MemoryShell
from twisted_ftpd.hooks import HookedWriteFile, HookRunner, UploadHooks, UploadInfo
from twisted_ftpd.protocol.errors import UploadRejected
from twisted_ftpd.protocol.values import Staged

INFO = UploadInfo(path="/in/a.bin", user="alice", client="192.0.2.7", session="0000abcd")


class FakeProcessTransport:
    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.stdin_closed = False
        self.lost = False
        self.signals: list[str] = []
        self.reaps = 0
        self.exited: Callable[[], None] | None = None  # what reapProcess finds, once exited

    def reapProcess(self) -> None:  # noqa: N802
        self.reaps += 1
        if self.exited is not None:
            self.exited()

    def closeStdin(self) -> None:  # noqa: N802
        self.stdin_closed = True

    def loseConnection(self) -> None:  # noqa: N802
        self.lost = True

    def signalProcess(self, name: str) -> None:  # noqa: N802
        self.signals.append(name)


@dataclass
class Spawned:
    proto: ProcessProtocol
    executable: str
    args: list[str]
    env: dict[str, str]
    transport: FakeProcessTransport

    @property
    def command(self) -> str:
        return self.args[self.args.index("-c", 5) + 1]

    @property
    def file(self) -> str:
        return self.args[-1]

    def finish(self, code: int = 0, output: bytes = b"", signal: int | None = None) -> None:
        if output:
            self.proto.outReceived(output)
        if code == 0 and signal is None:
            reason: Exception = error.ProcessDone(0)
        else:
            reason = error.ProcessTerminated(exitCode=None if signal else code, signal=signal)
        self.proto.processEnded(Failure(reason))


@dataclass
class FakeSpawn:
    """Records spawnProcess calls; the test ends each process when it likes."""

    calls: list[Spawned] = field(default_factory=list)
    pid: int | None = None
    fail: bool = False

    def __call__(self, proto: ProcessProtocol, executable: str, args: list[str], *,
                 env: dict[str, str], childFDs: dict[int, str]) -> FakeProcessTransport:  # noqa: N803
        if self.fail:
            raise OSError("no processes left")
        assert childFDs == {0: "w", 1: "r", 2: "r"}
        transport = FakeProcessTransport(self.pid)
        proto.makeConnection(transport)
        self.calls.append(Spawned(proto, executable, list(args), dict(env), transport))
        return transport


# -- the runner ----------------------------------------------------------------------------


def run(runner: HookRunner, command: str = "scan \"$1\"", file: str = "/tmp/x") -> defer.Deferred:
    return defer.ensureDeferred(runner.run(command, "upload-check", file, {"FTPD_PATH": "/x"}))


def test_a_hook_is_sh_minus_c_in_a_new_session_with_no_input() -> None:
    spawn, clock = FakeSpawn(), task.Clock()
    d = run(HookRunner(spawn, clock, 4, 60))
    (call,) = spawn.calls
    assert call.executable == sys.executable
    assert call.args[-5:] == ["/bin/sh", "-c", 'scan "$1"', "upload-check", "/tmp/x"]
    assert "os.setsid()" in call.args[call.args.index("-c") + 1]
    assert call.env == {"FTPD_PATH": "/x"}
    assert call.transport.stdin_closed
    call.finish(0, b"all clean\n")
    result = d.result
    assert (result.ok, result.reason, result.output) == (True, "", "all clean\n")
    assert not clock.getDelayedCalls()


@pytest.mark.parametrize("code, signal, output, reason", [
    (1, None, b"\n  /tmp/x: Eicar-Signature FOUND \nmore\n", "/tmp/x: Eicar-Signature FOUND"),
    (3, None, b"", "exit status 3"),
    (2, None, b"bad\x1b[31m colour\n", "bad?[31m colour"),
    (0, 9, b"", "killed by signal 9"),
])
def test_a_failing_hook_gives_its_first_output_line_or_its_status(
        code: int, signal: int | None, output: bytes, reason: str) -> None:
    spawn = FakeSpawn()
    d = run(HookRunner(spawn, task.Clock(), 4, 60))
    spawn.calls[0].finish(code, output, signal)
    assert (d.result.ok, d.result.reason) == (False, reason)


def test_output_is_kept_up_to_the_limit_and_the_reason_is_short() -> None:
    spawn = FakeSpawn()
    d = run(HookRunner(spawn, task.Clock(), 4, 60))
    call = spawn.calls[0]
    call.proto.outReceived(b"x" * 3000)
    call.proto.errReceived(b"y" * 3000)  # stderr counts too
    call.finish(1)
    assert d.result.output == "x" * 3000 + "y" * (hooks.OUTPUT_LIMIT - 3000)
    assert d.result.reason == "x" * hooks.REASON_LIMIT


def test_a_hook_past_its_timeout_is_killed_with_its_process_group(monkeypatch) -> None:
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(hooks.os, "killpg", lambda pid, sig: killed.append((pid, sig)))
    spawn, clock = FakeSpawn(pid=4242), task.Clock()
    d = run(HookRunner(spawn, clock, 4, 60))
    clock.advance(59)
    assert not killed
    clock.advance(1)
    assert killed == [(4242, hooks.signal.SIGKILL)]
    assert spawn.calls[0].transport.lost  # its pipes are closed: a grandchild cannot hold it
    spawn.calls[0].finish(0, b"late output\n", signal=9)
    assert (d.result.ok, d.result.reason) == (False, "timed out after 60 s")


def test_a_hook_not_yet_its_own_group_is_killed_alone(monkeypatch) -> None:
    def no_group(pid: int, sig: int) -> None:
        raise ProcessLookupError()

    monkeypatch.setattr(hooks.os, "killpg", no_group)
    spawn, clock = FakeSpawn(pid=4242), task.Clock()
    run(HookRunner(spawn, clock, 4, 1.5))
    clock.advance(1.5)
    assert spawn.calls[0].transport.signals == ["KILL"]
    spawn.calls[0].finish(signal=9)


def test_stopping_kills_every_running_hook_and_says_why(monkeypatch) -> None:
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(hooks.os, "killpg", lambda pid, sig: killed.append((pid, sig)))
    spawn, clock = FakeSpawn(pid=4242), task.Clock()
    runner = HookRunner(spawn, clock, 1, 60)
    first, waiting = run(runner), run(runner)  # one slot: the second waits for it
    assert runner.stop() == 1  # only what runs has a process to kill
    assert killed == [(4242, hooks.signal.SIGKILL)] and spawn.calls[0].transport.lost
    spawn.calls[0].finish(signal=9)
    assert (first.result.ok, first.result.reason) == (False, "stopped with the server")
    assert runner.stop() == 1  # the waiting one started in the freed slot: killed too
    spawn.calls[1].finish(signal=9)
    assert waiting.result.reason == "stopped with the server" and runner.stop() == 0


def test_a_stopping_server_waits_for_its_killed_on_upload_commands(monkeypatch) -> None:
    monkeypatch.setattr(hooks.os, "killpg", lambda pid, sig: None)
    spawn = FakeSpawn(pid=4242)
    upload_hooks = UploadHooks(None, "notify", spawn, task.Clock(), sync_run)
    upload_hooks.landed(INFO, Staged("/f", 1, "/f"))
    stopped = upload_hooks.stop()
    assert not stopped.called  # the command is killed, not yet ended
    spawn.calls[0].finish(signal=9)
    assert stopped.result == 1 and not upload_hooks.running


def test_a_child_not_reaped_when_its_pipes_closed_is_asked_for_again() -> None:
    # A reactor without signal handlers (ServerThread's) never hears SIGCHLD.
    spawn, clock = FakeSpawn(), task.Clock()
    d = run(HookRunner(spawn, clock, 4, 60))
    call = spawn.calls[0]
    call.proto.childConnectionLost(0)
    call.proto.childConnectionLost(1)
    assert len(clock.getDelayedCalls()) == 1  # only the timeout: stderr is still open
    call.proto.childConnectionLost(2)
    clock.advance(hooks.REAP_FIRST)
    assert call.transport.reaps == 1 and not d.called
    call.transport.exited = lambda: call.finish(1, b"no\n")
    clock.advance(2 * hooks.REAP_FIRST)
    assert call.transport.reaps == 2
    assert (d.result.ok, d.result.reason) == (False, "no")
    assert not clock.getDelayedCalls()  # neither the reaper nor the timeout is left


def test_at_most_concurrency_hooks_run_at_once() -> None:
    spawn = FakeSpawn()
    runner = HookRunner(spawn, task.Clock(), 2, 60)
    results = [run(runner, file=f"/tmp/{n}") for n in range(3)]
    assert [c.file for c in spawn.calls] == ["/tmp/0", "/tmp/1"]
    assert runner.waiting == 1
    spawn.calls[1].finish()
    assert [c.file for c in spawn.calls] == ["/tmp/0", "/tmp/1", "/tmp/2"]
    spawn.calls[0].finish()
    spawn.calls[2].finish()
    assert all(d.result.ok for d in results)


def test_a_hook_that_cannot_start_is_a_failure_not_an_exception() -> None:
    runner = HookRunner(FakeSpawn(fail=True), task.Clock(), 1, 60)
    d = run(runner)
    assert (d.result.ok, d.result.reason) == (False, "could not be started (OSError)")
    assert runner.slots.tokens == 1  # its slot is free again


def test_the_environment_describes_the_upload(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    monkeypatch.setenv("FTPD_USER", "stale")
    env = hooks.environment(INFO, "/srv/ftp/in/.a.bin.x.part", 1234)
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert {k: v for k, v in env.items() if k.startswith("FTPD_")} == {
        "FTPD_FILE": "/srv/ftp/in/.a.bin.x.part", "FTPD_PATH": "/in/a.bin",
        "FTPD_USER": "alice", "FTPD_SIZE": "1234", "FTPD_CLIENT": "192.0.2.7",
        "FTPD_SESSION": "0000abcd"}


# -- the check around one file ---------------------------------------------------------------


def memory_hooks(spawn: FakeSpawn, check: str | None = "scan", on_upload: str | None = None,
                 ) -> UploadHooks:
    return UploadHooks(check, on_upload, spawn, task.Clock(), sync_run)


def memory_upload(fs: MemoryFilesystem, name: str = "a.bin") -> Any:
    shell = MemoryShell(fs, "elradfmwMT")
    return shell.open_for_writing((name,)).result


def test_an_in_memory_upload_is_spooled_to_a_file_for_the_check() -> None:
    spawn, fs = FakeSpawn(), MemoryFilesystem()
    upload = HookedWriteFile(memory_upload(fs), memory_hooks(spawn), INFO)
    upload.write(b"payload")
    d = upload.commit()
    (call,) = spawn.calls
    assert Path(call.file).read_bytes() == b"payload"
    assert call.env["FTPD_FILE"] == call.file and call.env["FTPD_SIZE"] == "7"
    assert not fs.exists("a.bin")  # nothing lands before the check has said yes
    call.finish(0)
    assert d.result is None
    assert fs.read("a.bin") == b"payload"
    assert not os.path.exists(call.file)  # the spool is gone


def test_a_rejection_discards_the_upload_and_keeps_the_old_file() -> None:
    spawn, fs = FakeSpawn(), MemoryFilesystem()
    fs.put("a.bin", b"old")
    upload = HookedWriteFile(memory_upload(fs), memory_hooks(spawn), INFO)
    upload.write(b"new")
    d = upload.commit()
    spawn.calls[0].finish(1, b"infected\n")
    failure = d.result
    d.addErrback(lambda _: None)
    assert isinstance(failure.value, UploadRejected)
    assert failure.value.reply() == (550, "/in/a.bin: Upload rejected: infected")
    assert fs.read("a.bin") == b"old"
    assert upload.landed is None
    assert upload.abort().result is None  # already settled: nothing more happens


def test_while_checking_an_interrupted_upload_keeps_nothing() -> None:
    fs = MemoryFilesystem()
    upload = HookedWriteFile(memory_upload(fs), memory_hooks(FakeSpawn()), INFO)
    upload.write(b"half of it")
    upload.abort()
    assert not fs.exists("a.bin")


def test_without_a_check_an_interrupted_upload_is_kept_as_usual() -> None:
    fs = MemoryFilesystem()
    upload = HookedWriteFile(memory_upload(fs), memory_hooks(FakeSpawn(), None, "notify"), INFO)
    upload.write(b"half of it")
    upload.abort()
    assert fs.read("a.bin") == b"half of it"


def test_on_upload_runs_after_landing_with_the_final_file() -> None:
    spawn = FakeSpawn()
    upload_hooks = memory_hooks(spawn, None, "notify")
    d = upload_hooks.landed(INFO, Staged("/srv/.a.bin.x.part", 5, "/srv/a.bin"))
    (call,) = spawn.calls
    assert (call.command, call.file, call.env["FTPD_FILE"]) == ("notify", "/srv/a.bin",
                                                               "/srv/a.bin")
    assert upload_hooks.running == {d}
    call.finish(1, b"mail server down\n")  # logged, nothing else
    assert d.called and not upload_hooks.running


def test_on_upload_backlog_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(hooks, "BACKLOG_LIMIT", 2)
    spawn = FakeSpawn()
    upload_hooks = UploadHooks(None, "notify", spawn, task.Clock(), sync_run, concurrency=1)
    started = [upload_hooks.landed(INFO, Staged("/f", 1, "/f")) for _ in range(4)]
    assert started[3] is None  # one running, two waiting: the fourth is skipped
    for _ in range(3):
        spawn.calls[-1].finish()
    assert all(d.called for d in started[:3])


# -- whole sessions --------------------------------------------------------------------------


def hooked(tmp_path: Path, check: str | None = "scan \"$1\"", on_upload: str | None = None,
           **options: Any) -> tuple[Harness, Session, FakeSpawn]:
    """A harness whose server runs fake hook processes, and alice logged in."""
    spawn = FakeSpawn()
    h = Harness(tmp_path, **options)
    h.factory.upload_hooks = UploadHooks(check, on_upload, spawn, h.reactor, sync_run)
    s = h.connect()
    s.login()
    return h, s, spawn


def stor(s: Session, line: str, data: bytes) -> list[str]:
    """An upload whose data arrived whole; the replies up to the end of the data."""
    proto, _ = s.start(line)
    proto.dataReceived(data)
    return s.finish(proto)


def test_stor_waits_for_the_check_then_lands(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path)
    h.put("a.bin", b"old")
    assert stor(s, "STOR a.bin", b"new data") == []  # no 226 before the verdict
    (call,) = spawn.calls
    assert Path(call.file).read_bytes() == b"new data"
    assert Path(call.file).parent == h.root and Path(call.file).name.endswith(".part")
    assert call.env["FTPD_PATH"] == "/a.bin" and call.env["FTPD_SIZE"] == "8"
    assert call.env["FTPD_USER"] == "alice" and call.env["FTPD_CLIENT"] == "192.0.2.7"
    assert call.env["FTPD_SESSION"] == getattr(s.proto, "session_id", "")
    assert (h.root / "a.bin").read_bytes() == b"old"  # not yet replaced
    call.finish(0)
    assert s.take()[-1].startswith("226")
    assert (h.root / "a.bin").read_bytes() == b"new data"
    assert hidden(h.root) == []


def test_a_rejected_stor_is_550_with_the_reason_and_changes_nothing(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path)
    h.put("a.bin", b"old")
    stor(s, "STOR a.bin", b"EICAR")
    spawn.calls[0].finish(1, b"infected\n")
    assert s.take() == ["550 /a.bin: Upload rejected: infected"]
    assert (h.root / "a.bin").read_bytes() == b"old"
    assert hidden(h.root) == []  # the temporary file is gone, not kept as a partial
    stor(s, "STOR new.bin", b"EICAR")
    spawn.calls[1].finish(1, b"infected\n")
    assert s.take() == ["550 /new.bin: Upload rejected: infected"]
    assert sorted(os.listdir(h.root)) == ["a.bin"]


def test_a_check_that_times_out_rejects_the_upload(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(hooks.os, "killpg", lambda pid, sig: None)
    h, s, spawn = hooked(tmp_path)
    stor(s, "STOR a.bin", b"data")
    h.reactor.advance(60)
    spawn.calls[0].finish(signal=9)
    assert s.take() == ["550 /a.bin: Upload rejected: timed out after 60 s"]
    assert os.listdir(h.root) == []


def test_an_interrupted_upload_leaves_nothing_while_checked(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path)
    proto, _ = s.start("STOR a.bin")
    proto.dataReceived(b"half")
    assert s.finish(proto, error.ConnectionLost())[-1].startswith("426")
    assert spawn.calls == [] and os.listdir(h.root) == []


def test_type_a_uploads_are_checked_as_stored(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path)
    assert s.codes("TYPE A") == [200]
    stor(s, "STOR t.txt", b"one\r\ntwo\r")
    assert Path(spawn.calls[0].file).read_bytes() == b"one\ntwo\r"
    spawn.calls[0].finish(0)
    assert s.take()[-1].startswith("226")


@pytest.mark.parametrize("lines, refused", [
    (["APPE log.txt"], "550 /log.txt: APPE refused"),
    (["REST 2", "STOR log.txt"], "550 /log.txt: REST+STOR refused"),
])
def test_writing_into_an_existing_file_is_refused_while_checked(
        tmp_path: Path, lines: list[str], refused: str) -> None:
    h, s, spawn = hooked(tmp_path)
    h.put("log.txt", b"line\n")
    s.pasv()
    replies = [r for line in lines for r in s.send(line)]
    assert replies[-1].startswith(refused), replies
    assert "send it whole with STOR" in replies[-1]
    assert (h.root / "log.txt").read_bytes() == b"line\n" and spawn.calls == []


def test_appe_to_a_new_name_is_checked_before_it_appears(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path)
    stor(s, "APPE new.log", b"first\n")
    assert not (h.root / "new.log").exists()
    spawn.calls[0].finish(0)
    assert s.take()[-1].startswith("226")
    assert (h.root / "new.log").read_bytes() == b"first\n"


def test_a_rejected_stou_file_is_removed(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path)
    proto, _ = s.start("STOU")
    proto.dataReceived(b"bad")
    s.finish(proto)
    spawn.calls[0].finish(1, b"not allowed here\n")
    assert s.take()[-1].endswith("Upload rejected: not allowed here")
    assert os.listdir(h.root) == []


def test_on_upload_runs_once_the_file_landed(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path, check=None, on_upload="notify \"$1\"")
    assert stor(s, "STOR a.bin", b"12345")[-1].startswith("226")  # never waits for it
    (call,) = spawn.calls
    assert call.file == call.env["FTPD_FILE"] == str(h.root / "a.bin")
    assert call.env["FTPD_SIZE"] == "5" and call.args[-2] == "on-upload"
    call.finish(0)
    assert not h.factory.upload_hooks.running


def test_on_upload_follows_a_passed_check_only(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path, on_upload="notify")
    stor(s, "STOR bad.bin", b"x")
    spawn.calls[0].finish(1, b"no\n")
    stor(s, "STOR good.bin", b"y")
    spawn.calls[1].finish(0)
    assert [c.args[-2] for c in spawn.calls] == ["upload-check", "upload-check", "on-upload"]
    assert spawn.calls[2].file == str(h.root / "good.bin")
    spawn.calls[2].finish(0)


def test_a_failed_upload_runs_no_on_upload(tmp_path: Path) -> None:
    h, s, spawn = hooked(tmp_path, check=None, on_upload="notify")
    proto, _ = s.start("STOR a.bin")
    proto.dataReceived(b"part")
    s.finish(proto, error.ConnectionLost())
    assert spawn.calls == []


def test_the_config_options_make_the_hooks(tmp_path: Path) -> None:
    h, _ = logged_in(tmp_path, upload_check="clamdscan --no-summary \"$1\"", hook_timeout=5.0,
                     hook_concurrency=2)
    made = h.factory.upload_hooks
    assert made is not None and made.checking and made.on_upload_command is None
    assert made._checks.slots.limit == 2
    (tmp_path / "plain").mkdir()
    h2, _ = logged_in(tmp_path / "plain")
    assert h2.factory.upload_hooks is None
