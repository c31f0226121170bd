# -*- test-case-name: tests.test_data_throttle -*-
"""Bandwidth limits per session (``--max-download-rate``, ``--max-upload-rate``).

A token bucket on the reactor's clock: bytes spend tokens, and a session that has
spent more than its rate allows is paused (its file producer for downloads, its
socket for uploads) until the bucket has refilled. Nothing sleeps or spins; the
pause is one timer. Limits apply to the file's bytes, so they hold the same under
TLS and TYPE A. Twisted's ``ThrottlingFactory`` limits a whole factory, not one
session, which is why this exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from twisted_ftpd.units import parse_rate

# How far ahead of its rate a transfer may run (a burst), in seconds of rate.
BURST_SECONDS = 0.1


class TokenBucket:
    """``rate`` bytes per second, measured on ``clock``; may run ``burst`` bytes ahead."""

    def __init__(self, rate: int, clock: IReactorTime) -> None:
        self.rate = rate
        self._clock = clock
        self._burst = max(rate * BURST_SECONDS, 1.0)
        self._tokens = self._burst
        self._stamp = clock.seconds()

    def spend(self, nbytes: int) -> float:
        """Take ``nbytes``; the seconds to wait before sending (or reading) more."""
        now = self._clock.seconds()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= nbytes
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class SessionRates:
    """One session's buckets: the server's limits, or the user's own (users.db
    ``download_rate=``/``upload_rate=``, where ``0`` lifts the limit for that user)."""

    def __init__(self, clock: IReactorTime, download: int, upload: int,
                 options: Mapping[str, str] | None = None) -> None:
        options = options or {}
        if "download_rate" in options:
            download = parse_rate(options["download_rate"])
        if "upload_rate" in options:
            upload = parse_rate(options["upload_rate"])
        self.clock = clock
        self.download = TokenBucket(download, clock) if download > 0 else None
        self.upload = TokenBucket(upload, clock) if upload > 0 else None

    def apply(self, proto: Any) -> None:
        """Limit a new data connection of this session (the DataSlot, as it opens)."""
        if self.download is not None or self.upload is not None:
            proto.limit_rates(self.clock, self.download, self.upload)


class Gate:
    """Pauses something for as long as a bucket says, with one timer at a time."""

    def __init__(self, bucket: TokenBucket, clock: IReactorTime,
                 pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._bucket = bucket
        self._clock = clock
        self._pause = pause
        self._resume = resume
        self._timer: IDelayedCall | None = None

    @property
    def closed(self) -> bool:
        """Over the rate: waiting for the bucket to refill."""
        return self._timer is not None

    def passed(self, nbytes: int) -> None:
        delay = self._bucket.spend(nbytes)
        if delay > 0 and self._timer is None:
            self._timer = self._clock.callLater(delay, self._open)
            self._pause()

    def _open(self) -> None:
        self._timer = None
        self._resume()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@implementer(IPushProducer)
class ThrottledProducer:
    """Stands between a download's push producer and the transport: the producer runs
    only while the transport wants data *and* the rate allows it."""

    def __init__(self, producer: Any, bucket: TokenBucket, clock: IReactorTime) -> None:
        self._producer = producer
        self._transport_paused = False
        self._paused = False
        self.gate = Gate(bucket, clock, self._update, self._update)

    def sent(self, nbytes: int) -> None:
        self.gate.passed(nbytes)

    def _update(self) -> None:
        pause = self._transport_paused or self.gate.closed
        if pause != self._paused:
            self._paused = pause
            (self._producer.pauseProducing if pause else self._producer.resumeProducing)()

    def pauseProducing(self) -> None:
        self._transport_paused = True
        self._update()

    def resumeProducing(self) -> None:
        self._transport_paused = False
        self._update()

    def stopProducing(self) -> None:
        self.gate.cancel()
        self._producer.stopProducing()
