"""Bandwidth limits: the token bucket, the throttled download producer, the upload gate,
and whole throttled transfers on the in-memory harness, all on a Clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.harness import Harness, close
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.userdb import UserDB, UserDBError, parse, set_user
from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.data.throttle import SessionRates, ThrottledProducer, TokenBucket
from twisted_ftpd.units import parse_rate, parse_size

MiB = 1024 * 1024


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("512", 512), ("500K", 512_000), ("10M", 10 * MiB), ("1.5G", 3 * 1024**3 // 2),
    ("10m", 10 * MiB), ("64KB", 65536),
])
def test_sizes_and_rates(text: str, value: int) -> None:
    assert parse_size(text) == value
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["", "ten", "10T", "-5", "5 M"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_bucket_lets_a_burst_through_then_asks_to_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock)  # burst: 100 bytes
    assert bucket.spend(100) == 0.0
    assert bucket.spend(100) == pytest.approx(0.1)
    clock.advance(0.1)
    assert bucket.spend(0) == 0.0


class Producer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:  # noqa: N802
        self.events.append("pause")

    def resumeProducing(self) -> None:  # noqa: N802
        self.events.append("resume")

    def stopProducing(self) -> None:  # noqa: N802
        self.events.append("stop")


def test_throttled_producer_pauses_over_the_rate_and_resumes_on_time() -> None:
    clock, producer = Clock(), Producer()
    throttled = ThrottledProducer(producer, TokenBucket(1000, clock), clock)
    throttled.sent(600)  # 500 bytes over: half a second
    assert producer.events == ["pause"]
    clock.advance(0.49)
    assert producer.events == ["pause"]
    clock.advance(0.01)
    assert producer.events == ["pause", "resume"]


def test_throttled_producer_honours_the_transport_too() -> None:
    clock, producer = Clock(), Producer()
    throttled = ThrottledProducer(producer, TokenBucket(1000, clock), clock)
    throttled.pauseProducing()  # the socket is full
    throttled.sent(600)
    clock.advance(1)  # the rate allows more, the socket still does not
    assert producer.events == ["pause"]
    throttled.resumeProducing()
    assert producer.events == ["pause", "resume"]
    throttled.stopProducing()
    assert producer.events[-1] == "stop" and clock.getDelayedCalls() == []


def test_upload_gate_pauses_reading_and_keeps_the_owners_pause() -> None:
    clock = Clock()
    proto = DataProtocol()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.claim(lambda data: None)
    proto.resume()
    proto.limit_rates(clock, None, TokenBucket(1000, clock))
    proto.dataReceived(b"x" * 600)
    assert transport.producerState == "paused"
    proto.pause()  # the owner's disk is busy too
    clock.advance(1)
    assert transport.producerState == "paused"  # the rate lets go, the owner does not
    proto.resume()
    assert transport.producerState == "producing"


def test_session_rates_come_from_the_server_or_the_user() -> None:
    clock = Clock()
    server = SessionRates(clock, 1000, 0)
    assert server.download is not None and server.download.rate == 1000 and server.upload is None
    user = SessionRates(clock, 1000, 0, {"download_rate": "0", "upload_rate": "2K"})
    assert user.download is None  # 0: this user is not limited
    assert user.upload is not None and user.upload.rate == 2048


@pytest.mark.parametrize("rate", [1 * MiB, 3 * MiB])
def test_download_holds_its_rate_within_ten_percent_over_ten_seconds(tmp_path: Path,
                                                                       rate: int) -> None:
    h = Harness(tmp_path, max_download_rate=rate)
    h.put("big.bin", b"\0" * (4 * rate * 10))
    s = h.connect()
    s.login()
    s.send("TYPE I")
    s.pasv()
    assert s.codes("RETR big.bin") == [150]
    proto, transport = s.open_passive()
    for _ in range(100):
        h.reactor.advance(0.1)
        if transport.producer is not None and transport.producerState == "paused":
            transport.producer.resumeProducing()  # the client reads everything at once
    sent = len(transport.value())
    assert 0.9 * rate * 10 <= sent <= 1.1 * rate * 10, sent / rate
    # The client hangs up mid-file, as a real transport would report it.
    transport.producer.stopProducing()
    close(proto, ConnectionLost())
    assert s.take()[-1].startswith("426")
    assert [c for c in h.reactor.getDelayedCalls() if c.active()
            and getattr(c.func, "__self__", None) not in (s.proto, s.proto.idle)] == []


def test_unlimited_sessions_get_no_throttle(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.put("f.bin", b"data" * 1000)
    s = h.connect()
    s.login()
    s.send("TYPE I")
    s.pasv()
    s.codes("RETR f.bin")
    proto, transport = s.open_passive()
    assert not isinstance(transport.producer, ThrottledProducer)
    assert proto is not None and proto._throttled is None


def test_a_users_own_rates_apply_from_its_users_db_options(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_download_rate=MiB, max_upload_rate=MiB)
    alice = UserDB(h.config.users).lookup("alice")
    assert alice is not None
    set_user(h.config.users,
             dataclasses.replace(alice, options={"download_rate": "1K", "upload_rate": "0"}))
    s = h.connect()
    s.login()
    rates = s.proto.data.rates
    assert rates is not None and rates.download is not None and rates.download.rate == 1024
    assert rates.upload is None  # upload_rate=0: not limited
    s.send("REIN")
    assert s.proto.data.rates is None


def test_bad_rate_in_users_db_is_refused_with_its_line() -> None:
    text = "alice:" + hash_password("x") + ":elr::download_rate=fast\n"
    with pytest.raises(UserDBError, match="line 1: option download_rate"):
        parse(text)
