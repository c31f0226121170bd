# -*- test-case-name: tests.test_testing_faults -*-
"""Failures on demand, for people testing their FTP clients against this server.

A server normally has none of these switched on; ``twisted_ftpd.testing`` exposes
them so a client author can watch their error handling meet a slow server, a
data connection that breaks mid-transfer, or one that cannot be opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
