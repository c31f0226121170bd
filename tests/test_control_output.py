"""Reply output and its backpressure, and the test server's delayed variant."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from twisted_ftpd.control.output import ReplyOutput
from twisted_ftpd.control.timers import SessionTimers
from twisted_ftpd.faults import DelayedReplyOutput, Faults
from twisted_ftpd.protocol import replies


def test_pause_resume_and_stop_tell_the_scheduler() -> None:
    events: list[str] = []
    output = ReplyOutput(StringTransport(), lambda: events.append("full"),
                         lambda: events.append("drained"))
    output.pauseProducing()
    assert output.full
    output.resumeProducing()
    assert not output.full and events == ["full", "drained"]
    output.stopProducing()
    assert output.full and events == ["full", "drained", "full"]


def test_send_writes_the_rendered_reply() -> None:
    transport = StringTransport()
    ReplyOutput(transport, lambda: None, lambda: None).send(replies.NOOP_OK)
    assert transport.value() == b"200 NOOP ok.\r\n"


def test_delayed_output_holds_replies_but_not_immediate_ones() -> None:
    clock, transport, faults = Clock(), StringTransport(), Faults()
    faults.reply_delay = 2
    output = DelayedReplyOutput(transport, lambda: None, lambda: None, faults,
                                SessionTimers(clock))
    output.send(replies.NOOP_OK)
    output.send(replies.AUTH_OK("TLS"), immediate=True)
    assert transport.value().startswith(b"234 ")
    transport.clear()
    done: list[bool] = []
    output.then(done.append, True)
    assert output.delay == 2 and done == []
    clock.advance(2)
    assert transport.value() == b"200 NOOP ok.\r\n" and done == [True]
