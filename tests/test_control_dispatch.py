"""dispatch.run: a handler that answers at once costs no coroutine and no Deferred
(its reply comes back as it is); asynchronous handlers and failures keep their replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer

from tests.harness import logged_in
from twisted_ftpd.control import dispatch
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.errors import FileNotFound, PermissionDenied
from twisted_ftpd.protocol.parser import Command


def _forbidden(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("a synchronous reply went through a coroutine or maybeDeferred")


def test_a_synchronous_reply_comes_back_without_a_deferred_or_coroutine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, s = logged_in(tmp_path)
    monkeypatch.setattr(defer, "maybeDeferred", _forbidden)
    monkeypatch.setattr(defer.Deferred, "fromCoroutine", staticmethod(_forbidden))
    for line, code in (("TYPE I", 200), ("NOOP", 200), ("EPSV", 229), ("MODE S", 200)):
        verb, _, arg = line.partition(" ")
        reply = dispatch.run(s.proto, Command(verb, arg))
        assert isinstance(reply, replies.Reply)
        assert reply.code == code


def test_the_end_to_end_replies_of_synchronous_commands(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes("TYPE I", "NOOP", "MODE S", "STRU F", "PWD") == [200, 200, 200, 200, 257]


@pytest.fixture
def handler():  # type: ignore[no-untyped-def]
    """Install a handler of ours for ALLO (restored after the test)."""
    saved = dispatch.HANDLERS["ALLO"]

    def install(func):  # type: ignore[no-untyped-def]
        dispatch.HANDLERS["ALLO"] = func

    yield install
    dispatch.HANDLERS["ALLO"] = saved


def test_a_handler_returning_none_sends_nothing(tmp_path: Path, handler) -> None:
    _, s = logged_in(tmp_path)
    handler(lambda ctx, arg: None)
    assert s.send("ALLO 10") == []
    assert s.codes("NOOP") == [200]


def test_a_deferred_and_a_coroutine_still_get_their_failures_as_replies(
        tmp_path: Path, handler) -> None:
    _, s = logged_in(tmp_path)
    events: list[dict] = []
    s.proto.server.events.observe(events.append)

    handler(lambda ctx, arg: defer.fail(FileNotFound("/x")))
    assert s.codes("ALLO 1") == [550]

    async def refused(ctx, arg):  # type: ignore[no-untyped-def]
        raise PermissionDenied()

    handler(refused)
    assert s.codes("ALLO 1") == [550]
    assert [e["code"] for e in events if e.get("ftpd_event") == "command_refused"] == [550]

    handler(lambda ctx, arg: defer.succeed(replies.ALLO_OK))
    assert s.codes("ALLO 1") == [202]
