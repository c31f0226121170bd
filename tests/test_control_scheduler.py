"""The command scheduler on its own: no transport, no protocol, just Deferreds."""

from __future__ import annotations

import pytest
from twisted.internet import defer

from twisted_ftpd.control.scheduler import MAX_QUEUED, CommandScheduler
from twisted_ftpd.protocol.parser import Command


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.running: dict[str, defer.Deferred[None]] = {}
        self.reading: list[bool] = []
        self.transferring = False

    def start(self, command: Command) -> defer.Deferred[None]:
        self.started.append(command.verb)
        d: defer.Deferred[None] = defer.Deferred()
        self.running[command.verb] = d
        return d

    def finish(self, verb: str) -> None:
        self.running.pop(verb).callback(None)


def make() -> tuple[CommandScheduler, Recorder]:
    r = Recorder()
    return CommandScheduler(r.start, r.reading.append, lambda: r.transferring), r


def cmd(verb: str) -> Command:
    return Command(verb, "")


def test_commands_run_one_at_a_time_in_order() -> None:
    s, r = make()
    for verb in ("PWD", "NOOP", "SYST"):
        s.push(cmd(verb))
    assert r.started == ["PWD"] and s.busy
    r.finish("PWD")
    assert r.started == ["PWD", "NOOP"]
    r.finish("NOOP")
    r.finish("SYST")
    assert r.started == ["PWD", "NOOP", "SYST"] and not s.busy


def test_nothing_runs_beside_a_command_that_is_not_transferring() -> None:
    s, r = make()
    s.push(cmd("RETR"))
    s.push(cmd("NOOP"))
    s.push(cmd("ABOR"))
    assert r.started == ["RETR"]


def test_during_a_transfer_abor_jumps_the_queue_and_noop_runs_at_the_head() -> None:
    s, r = make()
    s.push(cmd("RETR"))
    r.transferring = True
    s.push(cmd("PWD"))  # must wait for the transfer
    s.push(cmd("NOOP"))
    s.push(cmd("ABOR"))
    s.kick()
    assert r.started == ["RETR", "ABOR"]  # PWD heads the queue, so NOOP waits behind it
    r.transferring = False
    r.finish("RETR")
    assert r.started == ["RETR", "ABOR", "PWD"]


def test_noop_stat_help_at_the_head_run_beside_a_transfer() -> None:
    s, r = make()
    s.push(cmd("STOR"))
    r.transferring = True
    for verb in ("NOOP", "STAT", "HELP"):
        s.push(cmd(verb))
    assert r.started == ["STOR", "NOOP", "STAT", "HELP"]


def test_held_output_starts_nothing_until_released() -> None:
    s, r = make()
    s.hold()
    s.push(cmd("NOOP"))
    assert r.started == []
    s.release()
    assert r.started == ["NOOP"]


def test_a_long_queue_stops_reading_and_a_short_one_resumes_it() -> None:
    s, r = make()
    s.push(cmd("RETR"))  # holds the channel
    for _ in range(MAX_QUEUED):
        s.push(cmd("PWD"))
    assert r.reading == []
    s.push(cmd("PWD"))
    assert r.reading == [False]
    for _ in range(MAX_QUEUED // 2 + 1):
        r.finish(r.started[-1])
    assert r.reading == [False, True]


def test_stop_discards_the_queue_and_refuses_new_commands() -> None:
    s, r = make()
    s.push(cmd("PWD"))
    s.push(cmd("NOOP"))
    s.stop()
    s.push(cmd("SYST"))
    r.finish("PWD")
    assert r.started == ["PWD"] and len(s) == 0


def test_when_idle_fires_after_the_main_command() -> None:
    s, r = make()
    assert s.when_idle().called
    s.push(cmd("RETR"))
    idle = s.when_idle()
    assert not idle.called
    r.finish("RETR")
    assert idle.called


def test_a_long_pipeline_of_instant_commands_does_not_recurse() -> None:
    started: list[str] = []

    def start(command: Command) -> defer.Deferred[None]:
        started.append(command.verb)
        return defer.succeed(None)

    s = CommandScheduler(start, lambda _: None, lambda: False)
    s.hold()
    for _ in range(5000):
        s.push(cmd("NOOP"))
    s.release()
    assert len(started) == 5000


def test_commands_done_at_once_run_in_order_without_deferreds() -> None:
    """A start that returns None has finished already (most commands): the next
    command starts straight after it, and a waiter for idleness fires."""
    started: list[str] = []
    waiters: list[defer.Deferred[None]] = []
    s: CommandScheduler

    def start(command: Command) -> defer.Deferred[None] | None:
        started.append(command.verb)
        if command.verb == "RETR":  # runs on, as a transfer does
            waiters.append(s.when_idle())
            return defer.Deferred()
        return None

    s = CommandScheduler(start, lambda _: None, lambda: False)
    for verb in ("TYPE", "EPSV", "PWD"):
        s.push(cmd(verb))
    assert started == ["TYPE", "EPSV", "PWD"] and not s.busy and len(s) == 0
    assert s.when_idle().called
    s.push(cmd("RETR"))
    s.push(cmd("NOOP"))
    assert started[-1] == "RETR" and s.busy and len(s) == 1
    assert not waiters[0].called


def test_a_long_pipeline_answered_at_once_does_not_recurse() -> None:
    started: list[str] = []

    def start(command: Command) -> None:
        started.append(command.verb)

    s = CommandScheduler(start, lambda _: None, lambda: False)
    s.hold()
    for _ in range(5000):
        s.push(cmd("NOOP"))
    s.release()
    assert len(started) == 5000 and not s.busy


def test_a_command_that_raises_still_frees_the_scheduler() -> None:
    """A bug in a command's start propagates, but the session is not left busy for
    ever: what waits for it to be idle (a clean stop) still gets its answer."""

    def start(command: Command) -> None:
        if command.verb == "NOOP":
            raise RuntimeError("a bug")

    s = CommandScheduler(start, lambda _: None, lambda: False)
    with pytest.raises(RuntimeError):
        s.push(cmd("NOOP"))
    assert not s.busy and s.when_idle().called
    s.push(cmd("PWD"))
    assert not s.busy
