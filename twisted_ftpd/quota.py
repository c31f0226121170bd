# -*- test-case-name: tests.test_quota,tests.integration.test_quota -*-
"""Per-user storage quotas (``quota=SIZE``, ``quota_files=N`` in users.db).

Usage is counted per home tree: measured once off the reactor (the shell's
``disk_usage``, a walk in the thread pool) the first time an upload or a
delete needs it, shared by every session in that home, and kept current by
this server's own uploads, overwrites, deletes and renames over files. It is
measured again when an upload needs it ``rescan`` seconds after the last
walk and no upload in that home is running, so what changed behind the
server's back (a shell, another server) is seen then.

A running upload holds what it has received (less what it will free, for an
overwrite) against the quota, so two concurrent uploads cannot both use the
same room. When it ends, the count is settled from what is really on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from twisted_ftpd.protocol.errors import FileQuotaExceeded, FTPError, QuotaExceeded
from twisted_ftpd.units import parse_size

BYTES_OPTION = "quota"
FILES_OPTION = "quota_files"
DEFAULT_RESCAN = 3600.0  # seconds


def parse_quota(text: str) -> int:
    """``quota=``: a size (``500M``, ``2G``), more than 0."""
    value = parse_size(text)
    if value <= 0:
        raise ValueError("must be more than 0 (leave it out for no quota)")
    return value


def parse_quota_files(text: str) -> int:
    """``quota_files=``: a whole number of files, 1 or more."""
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError(f"{text!r} is not a number of files (1 or more)")
    return int(text)


def parse_rescan(text: str) -> float:
    """``--quota-rescan``: seconds, 0 for never."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(f"expected seconds (0 or more), got {text}")
    return value


@dataclass(frozen=True)
class QuotaLimits:
    """One user's limits; None is no limit."""

    bytes: int | None = None
    files: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> QuotaLimits | None:
        """The limits in a users.db line's options, or None when it sets none (the
        values were checked when the file was loaded)."""
        size, files = options.get(BYTES_OPTION), options.get(FILES_OPTION)
        if size is None and files is None:
            return None
        return cls(parse_quota(size) if size is not None else None,
                   parse_quota_files(files) if files is not None else None)


class Charge:
    """One running upload's claim on its home; the data channel's receive limit."""

    def __init__(self, home: HomeUsage, limits: QuotaLimits | None, credit: int,
                 new_file: bool) -> None:
        self.home = home
        self.limits = limits
        self.credit = credit  # bytes of an old file this upload replaces (or truncates)
        self.new_file = new_file
        self.received = 0

    @property
    def held(self) -> int:
        """What this upload takes from the room others see."""
        return max(0, self.received - self.credit)

    def admit(self, count: int) -> bool:
        """Whether ``count`` more received bytes keep the home within its quota."""
        self.received += count
        if self.limits is None or self.limits.bytes is None:
            return True
        return self.home.projected(self) <= self.limits.bytes

    def refusal(self) -> FTPError:
        assert self.limits is not None and self.limits.bytes is not None
        return QuotaExceeded(self.limits.bytes)


class HomeUsage:
    """The bytes and files in one home, shared by every session in it."""

    def __init__(self, clock: IReactorTime, rescan: float) -> None:
        self._clock = clock
        self._rescan = rescan
        self.bytes = 0
        self.files = 0
        self.scanned_at: float | None = None
        self.charges: set[Charge] = set()
        self._waiters: list[defer.Deferred[None]] | None = None  # a walk is running

    def _stale(self) -> bool:
        if self.scanned_at is None:
            return True
        due = self._rescan > 0 and self._clock.seconds() - self.scanned_at >= self._rescan
        return due and not self.charges  # never under a running upload: it would count twice

    async def current(self, scan: Callable[[], defer.Deferred[tuple[int, int]]]) -> None:
        """Make the count usable: walk the home with ``scan`` unless a walk is recent
        (or running: then wait for it). Raises what the walk raised."""
        if self._waiters is not None:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._waiters.append(waiter)
            await waiter
            return
        if not self._stale():
            return
        self._waiters = []
        failure: Exception | None = None
        try:
            self.bytes, self.files = await scan()
            self.scanned_at = self._clock.seconds()
        except Exception as e:
            failure = e
        waiters, self._waiters = self._waiters, None
        for waiter in waiters:
            if failure is None:
                waiter.callback(None)
            else:
                waiter.errback(failure)
        if failure is not None:
            raise failure

    def projected(self, charge: Charge) -> int:
        """The home's size if every running upload ended now, as ``charge`` sees it."""
        others = sum(c.held for c in self.charges if c is not charge)
        return self.bytes + others + charge.received - charge.credit

    def start(self, limits: QuotaLimits | None, credit: int, new_file: bool) -> Charge:
        """Register an upload about to open its file; FileQuotaExceeded or
        QuotaExceeded (552) when the home has no room for it at all."""
        charge = Charge(self, limits, credit, new_file)
        if limits is not None:
            if limits.files is not None and new_file:
                coming = sum(c.new_file for c in self.charges)
                if self.files + coming >= limits.files:
                    raise FileQuotaExceeded(limits.files)
            if limits.bytes is not None and self.projected(charge) >= limits.bytes:
                raise QuotaExceeded(limits.bytes)
        self.charges.add(charge)
        return charge

    def settle(self, charge: Charge, before: int | None, after: int | None) -> None:
        """The upload ended: the file held ``before`` bytes (None: no file) and now
        holds ``after``."""
        self.charges.discard(charge)
        self.changed(before, after)

    def changed(self, before: int | None, after: int | None) -> None:
        """A regular file went from ``before`` bytes to ``after`` (None: absent)."""
        self.bytes = max(0, self.bytes + (after or 0) - (before or 0))
        self.files = max(0, self.files + (after is not None) - (before is not None))


class QuotaRegistry:
    """One server's usage counts, by home (the shell's ``usage_key``)."""

    def __init__(self, clock: IReactorTime, rescan: float = DEFAULT_RESCAN) -> None:
        self._clock = clock
        self._rescan = rescan
        self._homes: dict[object, HomeUsage] = {}

    def home(self, key: object) -> HomeUsage:
        """The count for ``key``, made (not yet measured) if this is its first use."""
        usage = self._homes.get(key)
        if usage is None:
            usage = self._homes[key] = HomeUsage(self._clock, self._rescan)
        return usage

    def tracked(self, key: object) -> HomeUsage | None:
        """The count for ``key`` if some user with a quota has needed it."""
        return self._homes.get(key)
