# -*- test-case-name: tests.test_auth_cache -*-
"""Successful password checks, remembered for a while, so a user who logs in again
and again (a script, a client opening parallel connections) pays for scrypt once.

Like Dovecot's ``auth_cache``, only what succeeded is kept, never a failure, so a
guess is always checked the slow way. An entry holds no password: its key is an
HMAC, under a secret made fresh by each process, over the user's name, the
password and the stored hash. Because the stored hash is part of the key, a new
password (or any change of the stored hash) misses at once, and the old entry is
dropped when it is seen; a user gone from the user file is dropped when its
name is next tried. Entries expire ``ttl`` seconds after they were made; past
``size`` users the oldest entry goes first.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: How long a successful check is remembered, and for how many users at most.
DEFAULT_TTL = 600.0
DEFAULT_SIZE = 1000


def _field(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    return len(data).to_bytes(4, "big") + data  # length-prefixed: no two splits collide


class VerificationCache:
    """Thread-safe: checks look here from worker threads. ``ttl`` or ``size`` 0 turns
    it off. ``seconds`` is the time source (a reactor's or ``task.Clock``'s)."""

    def __init__(self, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE,
                 seconds: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._seconds = seconds
        self._secret = os.urandom(32)
        self._lock = threading.Lock()
        # name -> (key, stored hash, expiry), oldest first (insertion order is expiry order).
        self._entries: OrderedDict[str, tuple[bytes, str, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _key(self, name: str, password: str, stored_hash: str) -> bytes:
        message = _field(name) + _field(password) + _field(stored_hash)
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def hit(self, name: str, password: str, stored_hash: str) -> bool:
        """Whether this name, password and stored hash passed a check that is still fresh."""
        if not self.enabled:
            return False
        key = self._key(name, password, stored_hash)
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return False
            cached_key, cached_hash, expires = entry
            if cached_hash != stored_hash or self._seconds() >= expires:
                del self._entries[name]  # the user's entry changed, or it is stale
                return False
            return hmac.compare_digest(cached_key, key)  # a wrong password keeps the entry

    def add(self, name: str, password: str, stored_hash: str) -> None:
        """Remember a check that succeeded (never call it for one that failed)."""
        if not self.enabled:
            return
        key = self._key(name, password, stored_hash)
        with self._lock:
            now = self._seconds()
            self._entries.pop(name, None)
            self._entries[name] = (key, stored_hash, now + self.ttl)
            # Oldest first: drop what expired meanwhile, then what is over the size.
            while len(self._entries) > self.size or next(iter(self._entries.values()))[2] <= now:
                self._entries.popitem(last=False)

    def forget(self, name: str) -> None:
        """``name`` is no longer a user: drop its entry."""
        with self._lock:
            self._entries.pop(name, None)
