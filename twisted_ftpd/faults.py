# -*- test-case-name: tests.test_testing_faults -*-
"""Failures on demand, for people testing their FTP clients against this server.

A server normally has none of these switched on; ``twisted_ftpd.testing`` exposes
them so a client author can watch their error handling meet a slow server, a
data connection that breaks mid-transfer, or one that cannot be opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted_ftpd.control.output import ReplyOutput
from twisted_ftpd.control.timers import SessionTimers
from twisted_ftpd.protocol.replies import Reply


@dataclass
class Faults:
    reply_delay: float = 0.0  # seconds every control reply is held back
    _drop_after: list[int] = field(default_factory=list)
    _refusals: int = 0

    def drop_data_after(self, nbytes: int) -> None:
        """Break the next data connection once ``nbytes`` have crossed it."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        self._drop_after.append(nbytes)

    def refuse_next_data_connection(self, count: int = 1) -> None:
        """Fail the next ``count`` data connections as if they could not be opened (425)."""
        self._refusals += count

    def clear(self) -> None:
        self.reply_delay = 0.0
        self._drop_after.clear()
        self._refusals = 0

    def take_drop_limit(self) -> int | None:
        return self._drop_after.pop(0) if self._drop_after else None

    def take_refusal(self) -> bool:
        if self._refusals:
            self._refusals -= 1
            return True
        return False

    def install(self, proto: Any) -> None:
        """Hook these faults into one new control session (a ``session_hooks`` entry)."""
        proto.output_factory = lambda transport, on_full, on_drained: DelayedReplyOutput(
            transport, on_full, on_drained, self, proto.timers)
        proto.data.on_pending.append(self._maybe_refuse)
        proto.data.on_connected.append(lambda data: data.drop_after(self.take_drop_limit()))

    def _maybe_refuse(self, pending: Any) -> None:
        if self.take_refusal():
            pending.refuse()


class DelayedReplyOutput(ReplyOutput):
    """Replies held back by ``reply_delay`` (still in order); closing waits for them."""

    def __init__(self, transport: Any, on_full: Callable[[], None],
                 on_drained: Callable[[], None], faults: Faults, timers: SessionTimers) -> None:
        super().__init__(transport, on_full, on_drained)
        self._faults = faults
        self._timers = timers

    @property
    def delay(self) -> float:
        return self._faults.reply_delay

    def send(self, reply: Reply, immediate: bool = False) -> None:
        if self.delay and not immediate:
            self._timers.later(self.delay, self.write, reply.render())
        else:
            self.write(reply.render())

    def then(self, f: Callable[..., object], *args: object) -> None:
        if self.delay:
            self._timers.later(self.delay, f, *args)
        else:
            f(*args)
