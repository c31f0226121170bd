# -*- test-case-name: tests.test_limits -*-
"""Live sessions per user, so a users.db line can say ``max_sessions=N``."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from twisted_ftpd.protocol.errors import TooManySessions
from twisted_ftpd.shared_state import SESSIONS, Hold, Refused, SharedState

#: The users.db option.
OPTION = "max_sessions"


def parse_max_sessions(text: str) -> int:
    """``max_sessions=`` holds a positive whole number."""
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(text)


class UserSessions:
    """Counts each user's logged-in sessions; ``open`` refuses one too many.

    With ``shared`` (``--shared-state``) the count is every node's: ``open`` then
    answers with a Deferred once Redis has (while Redis is down, by this node's
    count alone).
    """

    def __init__(self, shared: SharedState | None = None) -> None:
        self._counts: dict[str, int] = {}
        self.shared = shared

    def count(self, user: str) -> int:
        return self._counts.get(user, 0)

    def open(self, user: str, limit: int | None,
             ) -> Callable[[], None] | Deferred[Callable[[], None]]:
        """Count a new session of ``user`` (raising TooManySessions if it already has
        ``limit``); returns the call that ends it (the login's logout, idempotent)."""
        if limit is not None and self.count(user) >= limit:
            raise TooManySessions(user)
        self._counts[user] = self.count(user) + 1
        ended = False

        def close() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            left = self._counts.pop(user) - 1
            if left:
                self._counts[user] = left

        if self.shared is None:
            return close

        def decided(outcome: Hold | Refused) -> Callable[[], None]:
            if isinstance(outcome, Refused):
                close()
                raise TooManySessions(user)

            def end() -> None:
                close()
                outcome.release()

            return end

        return self.shared.acquire(SESSIONS, user, limit or 0).addCallback(decided)
