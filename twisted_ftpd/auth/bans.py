# -*- test-case-name: tests.test_bans -*-
"""Failed logins per client address: growing delays, then a temporary ban.

A password guesser is slowed down per address, not per connection (it opens
many), and then shut out for a while; a user logging in from another address
never notices. The table is bounded, so a flood of addresses cannot grow it
without limit.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from twisted_ftpd.protocol.addresses import normalize

log = Logger()
Emit = Callable[..., None]  # emit(event, **fields), as twisted_ftpd.events.EventLog.emit


def log_event(event: str, **fields: Any) -> None:
    """Emit a session event straight to the global log (when no EventLog is given)."""
    log.warn("{ftpd_event}: {peer}", ftpd_event=event, **fields)

#: Addresses remembered at most; the least recently active is forgotten first.
MAX_ENTRIES = 10_000
#: Failures from one address answered after the plain login delay; each one
#: beyond doubles it (a user's few typos cost nothing extra) ...
FREE_FAILURES = 3
#: ... up to this factor.
MAX_DELAY_FACTOR = 16
#: Repeat bans double, up to a day (or the first ban's length, if longer).
MAX_BAN = 86400.0


def delay_factor(failures: int) -> float:
    """What the login delay is multiplied by after ``failures`` recent failures."""
    return float(min(2 ** max(0, failures - FREE_FAILURES), MAX_DELAY_FACTOR))


@dataclass(frozen=True)
class Verdict:
    """What one failed login from an address leads to."""

    delay_factor: float  # multiplies the login delay
    banned: bool = False  # the address is banned (by this failure, or already)


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)  # recent failure times
    banned_until: float = 0.0
    bans: int = 0  # how often it was banned (repeat offenders get longer bans)
    last_ban: float = 0.0  # length of its last ban


class BanTable:
    """Failed logins by address, on ``clock``: ``failure`` records one, ``banned`` asks.

    ``ban_after`` failures within ``window`` seconds ban the address for
    ``ban_time`` seconds, doubled for each earlier ban it is still remembered for
    (an address is forgotten once it has stayed clean for as long as its last
    ban). ``ban_after=0`` never bans; the delays still grow.
    """

    def __init__(self, clock: IReactorTime, ban_after: int, window: float, ban_time: float,
                 max_entries: int = MAX_ENTRIES, emit: Emit = log_event) -> None:
        self.clock = clock
        self.emit = emit
        self.ban_after = ban_after
        self.window = window
        self.ban_time = ban_time
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Enough failure times to decide a ban and the largest delay.
        self._keep = max(ban_after, FREE_FAILURES + MAX_DELAY_FACTOR.bit_length())

    def __len__(self) -> int:
        return len(self._entries)

    def banned(self, host: str) -> bool:
        """Whether ``host`` is banned now (asking keeps a banned address remembered)."""
        key, now = normalize(host), self.clock.seconds()
        entry = self._live(key, now)
        if entry is None or entry.banned_until <= now:
            return False
        self._entries.move_to_end(key)
        return True

    def failure(self, host: str) -> Verdict:
        """Record a failed login from ``host``: how long to delay it, and whether it
        started a ban (logged as a ``ban`` event)."""
        key = normalize(host)
        now = self.clock.seconds()
        entry = self._live(key, now)
        if entry is None:
            self._make_room(now)
            entry = self._entries[key] = _Entry()
        self._entries.move_to_end(key)
        if entry.banned_until > now:  # a login that was under way when the ban began
            return Verdict(1.0, banned=True)
        failures = entry.failures
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        while len(failures) > self._keep:
            failures.popleft()
        if self.ban_after and len(failures) >= self.ban_after:
            self._ban(key, entry, now)
            return Verdict(1.0, banned=True)
        return Verdict(delay_factor(len(failures)))

    def impose(self, host: str, seconds: float, announce: bool = False) -> None:
        """Ban ``host`` for ``seconds`` from now on a word from elsewhere (another node,
        through the shared state); ``announce`` logs the ``ban`` event, as for a ban
        of this table's own."""
        key, now = normalize(host), self.clock.seconds()
        entry = self._live(key, now)
        if entry is None:
            self._make_room(now)
            entry = self._entries[key] = _Entry()
        self._entries.move_to_end(key)
        entry.banned_until = max(entry.banned_until, now + seconds)
        entry.last_ban = max(entry.last_ban, seconds)
        entry.failures.clear()
        if announce:
            self.emit("ban", peer=key, seconds=seconds)

    def _ban(self, key: str, entry: _Entry, now: float) -> None:
        seconds = min(self.ban_time * 2 ** min(entry.bans, 32), max(MAX_BAN, self.ban_time))
        entry.bans += 1
        entry.last_ban = seconds
        entry.banned_until = now + seconds
        entry.failures.clear()  # after the ban, it starts again from nothing
        self.emit("ban", peer=key, seconds=seconds)

    def _forget_at(self, entry: _Entry) -> float:
        last_failure = entry.failures[-1] if entry.failures else 0.0
        return max(last_failure + self.window, entry.banned_until + entry.last_ban)

    def _live(self, key: str, now: float) -> _Entry | None:
        """``key``'s entry, unless it is due to be forgotten (then it is dropped)."""
        entry = self._entries.get(key)
        if entry is not None and self._forget_at(entry) <= now:
            del self._entries[key]
            return None
        return entry

    def _make_room(self, now: float) -> None:
        """Before adding an entry: drop forgotten ones from the cold end, and the
        least recently active ones while the table is full."""
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if self._forget_at(entry) > now and len(self._entries) < self.max_entries:
                break
            del self._entries[key]
