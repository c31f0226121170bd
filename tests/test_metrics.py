"""Prometheus metrics counted from one server's session events."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from twisted.internet import error
from twisted.python import usage

from tests.harness import Harness, Session, close
from twisted_ftpd.config import Options
from twisted_ftpd.metrics import Metrics, parse_endpoint


def metered(tmp_path: Path) -> tuple[Harness, Metrics]:
    h = Harness(tmp_path)
    metrics = Metrics(h.factory.sessions)
    h.factory.events.observe(metrics)
    return h, metrics


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    assert found is not None, (name, labels)
    return found


def test_every_series_exists_from_the_start(tmp_path: Path) -> None:
    _, metrics = metered(tmp_path)
    text = generate_latest(metrics.registry).decode()
    for line in [
        "ftpd_connections_total 0.0", "ftpd_sessions 0.0",
        'ftpd_logins_total{result="ok"} 0.0', 'ftpd_logins_total{result="failed"} 0.0',
        'ftpd_uploads_total{result="ok"} 0.0', 'ftpd_downloads_total{result="failed"} 0.0',
        'ftpd_transfer_bytes_total{direction="upload"} 0.0',
        'ftpd_transfer_duration_seconds_count{direction="download"} 0.0',
        "ftpd_bans_total 0.0", 'ftpd_refused_total{reason="max-connections-per-ip"} 0.0',
        'ftpd_refused_total{reason="banned"} 0.0',
    ]:
        assert line in text.splitlines(), line


def test_connections_and_open_sessions(tmp_path: Path) -> None:
    h, metrics = metered(tmp_path)
    first, second = h.connect(), h.connect()
    assert value(metrics, "ftpd_connections_total") == 2
    assert value(metrics, "ftpd_sessions") == 2
    first.lose()
    assert value(metrics, "ftpd_sessions") == 1
    second.lose()
    assert (value(metrics, "ftpd_connections_total"), value(metrics, "ftpd_sessions")) == (2, 0)


def test_logins_by_result(tmp_path: Path) -> None:
    h, metrics = metered(tmp_path)
    s = h.connect()
    s.send("USER alice")
    s.send("PASS wrong")
    h.reactor.advance(h.config.login_delay)
    assert s.take() == ["530 Login incorrect."]
    s.login()
    assert value(metrics, "ftpd_logins_total", result="failed") == 1
    assert value(metrics, "ftpd_logins_total", result="ok") == 1


def logged_in_session(h: Harness) -> Session:
    s = h.connect()
    s.login()
    s.send("TYPE I")
    return s


def test_uploads_downloads_bytes_and_durations(tmp_path: Path) -> None:
    h, metrics = metered(tmp_path)
    s = logged_in_session(h)
    h.put("f", b"x" * 300)
    proto, _ = s.start("RETR f")
    h.reactor.advance(7)
    s.finish(proto)
    s.upload("STOR up", b"y" * 40)
    proto, _ = s.start("RETR f")
    s.finish(proto, error.ConnectionLost())  # a failed download still moved its bytes
    assert value(metrics, "ftpd_downloads_total", result="ok") == 1
    assert value(metrics, "ftpd_downloads_total", result="failed") == 1
    assert value(metrics, "ftpd_uploads_total", result="ok") == 1
    assert value(metrics, "ftpd_transfer_bytes_total", direction="download") == 600
    assert value(metrics, "ftpd_transfer_bytes_total", direction="upload") == 40
    assert value(metrics, "ftpd_transfer_duration_seconds_count", direction="download") == 2
    assert value(metrics, "ftpd_transfer_duration_seconds_sum", direction="download") == 7
    assert value(metrics, "ftpd_transfer_duration_seconds_bucket", direction="download",
                 le="5.0") == 1  # the instant one; the 7 s one is in the 10 s bucket
    assert value(metrics, "ftpd_transfer_duration_seconds_bucket", direction="download",
                 le="10.0") == 2


def test_listings_are_not_downloads(tmp_path: Path) -> None:
    h, metrics = metered(tmp_path)
    s = logged_in_session(h)
    s.listing("LIST")
    assert value(metrics, "ftpd_downloads_total", result="ok") == 0


def test_bans_and_refusals(tmp_path: Path) -> None:
    h, metrics = metered(tmp_path)
    h.factory.events.emit("refused", session="s", peer="192.0.2.7", reason="max-connections")
    h.factory.events.emit("refused", session="s", peer="192.0.2.7", reason="banned")
    h.factory.events.emit("refused", session="t", peer="192.0.2.7", reason="banned")
    h.factory.events.emit("ban", peer="192.0.2.7", seconds=600)
    assert value(metrics, "ftpd_refused_total", reason="max-connections") == 1
    assert value(metrics, "ftpd_refused_total", reason="banned") == 2
    assert value(metrics, "ftpd_refused_total", reason="max-sessions") == 0
    assert value(metrics, "ftpd_bans_total") == 1


def test_each_server_counts_alone_and_nothing_goes_to_the_global_registry(
        tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (h1, m1), (_, m2) = metered(tmp_path / "a"), metered(tmp_path / "b")
    h1.connect()
    assert (value(m1, "ftpd_connections_total"), value(m2, "ftpd_connections_total")) == (1, 0)
    assert REGISTRY.get_sample_value("ftpd_connections_total") is None


@pytest.mark.parametrize("good", ["tcp:9102", "tcp:9102:interface=127.0.0.1",
                                  "tcp6:9102:interface=\\:\\:1", "unix:/run/ftpd-metrics.sock"])
def test_metrics_endpoint_descriptions(good: str) -> None:
    assert parse_endpoint(good) == good
    options = Options()
    options.parseOptions(["--metrics", good])
    assert options.to_config().metrics == good


@pytest.mark.parametrize("bad", ["9102", "tcp:http", "nope:1", "tcp:9102:bogus=1"])
def test_bad_metrics_endpoints_are_usage_errors(bad: str) -> None:
    with pytest.raises(usage.UsageError, match="not a server endpoint"):
        Options().parseOptions(["--metrics", bad])


def test_metrics_and_xferlog_are_off_by_default() -> None:
    config = Options().to_config()
    assert (config.metrics, config.xferlog) == (None, None)


def test_xferlog_option() -> None:
    options = Options()
    options.parseOptions(["--xferlog", "/var/log/xferlog"])
    assert options.to_config().xferlog == "/var/log/xferlog"


def test_a_closed_data_connection_is_not_a_new_session(tmp_path: Path) -> None:
    h, metrics = metered(tmp_path)
    s = logged_in_session(h)
    h.put("f", b"z")
    proto, _ = s.start("RETR f")
    close(proto)
    assert (value(metrics, "ftpd_connections_total"), value(metrics, "ftpd_sessions")) == (1, 1)
