"""Scraping a real server's --metrics endpoint over HTTP after real ftplib sessions."""

from __future__ import annotations

import ftplib
import io
import urllib.request

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.logger import formatEvent, globalLogPublisher

from tests.integration.conftest import Server, in_thread

pytestmark = pytest.mark.integration

METRICS = "tcp:0:interface=127.0.0.1"


def scrape(server: Server, path: str = "/metrics") -> dict[tuple[str, tuple], float]:
    """Every sample the server's metrics endpoint serves: (name, labels) -> value."""
    port = server.service.reporting.metrics_port.getHost().port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def traffic(server: Server) -> None:
    """Two sessions: a failed login, then alice uploads 3000 bytes and downloads them twice."""
    with ftplib.FTP() as ftp:
        ftp.connect(server.host, server.port, timeout=30)
        with pytest.raises(ftplib.error_perm):
            ftp.login("alice", "wrong")
    with server.session() as ftp:
        ftp.storbinary("STOR m.bin", io.BytesIO(b"m" * 3000))
        for _ in range(2):
            ftp.retrbinary("RETR m.bin", lambda _: None)


@pytest_twisted.ensureDeferred
async def test_scrape_counts_what_the_sessions_did(server_factory) -> None:
    server = await server_factory(metrics=METRICS, login_delay=0.0)
    before = await in_thread(scrape, server)
    assert before[("ftpd_connections_total", ())] == 0
    await in_thread(traffic, server)
    await server.all_sessions_gone()
    after = await in_thread(scrape, server)
    assert after[("ftpd_connections_total", ())] == 2
    assert after[("ftpd_sessions", ())] == 0
    assert after[("ftpd_logins_total", (("result", "ok"),))] == 1
    assert after[("ftpd_logins_total", (("result", "failed"),))] == 1
    assert after[("ftpd_uploads_total", (("result", "ok"),))] == 1
    assert after[("ftpd_downloads_total", (("result", "ok"),))] == 2
    assert after[("ftpd_downloads_total", (("result", "failed"),))] == 0
    assert after[("ftpd_transfer_bytes_total", (("direction", "upload"),))] == 3000
    assert after[("ftpd_transfer_bytes_total", (("direction", "download"),))] == 6000
    assert after[("ftpd_transfer_duration_seconds_count", (("direction", "download"),))] == 2
    assert after[("ftpd_transfer_duration_seconds_bucket",
                  (("direction", "upload"), ("le", "+Inf")))] == 1
    assert after[("ftpd_bans_total", ())] == 0


@pytest_twisted.ensureDeferred
async def test_open_sessions_while_they_are_open(server_factory) -> None:
    server = await server_factory(metrics=METRICS)

    def two_open() -> dict[tuple[str, tuple], float]:
        with server.session(), server.session():
            return scrape(server)

    during = await in_thread(two_open)
    assert during[("ftpd_sessions", ())] == 2
    await server.all_sessions_gone()
    assert (await in_thread(scrape, server))[("ftpd_sessions", ())] == 0


@pytest_twisted.ensureDeferred
async def test_two_servers_in_one_process_count_apart(server_factory) -> None:
    busy = await server_factory(metrics=METRICS)
    idle = await server_factory(metrics=METRICS)

    def one_session() -> None:
        with busy.session() as ftp:
            ftp.voidcmd("NOOP")

    await in_thread(one_session)
    await busy.all_sessions_gone()
    assert (await in_thread(scrape, busy))[("ftpd_connections_total", ())] == 1
    assert (await in_thread(scrape, idle))[("ftpd_connections_total", ())] == 0


@pytest_twisted.ensureDeferred
async def test_stopping_the_server_closes_the_metrics_port(server_factory) -> None:
    server = await server_factory(metrics=METRICS)
    port = server.service.reporting.metrics_port.getHost().port
    await server.stop()
    with pytest.raises(OSError):
        await in_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/metrics", timeout=30)


@pytest_twisted.ensureDeferred
async def test_limit_refusals_and_bans_are_counted(server_factory) -> None:
    server = await server_factory(metrics=METRICS, login_delay=0.0, max_connections_per_ip=1,
                                  ban_after=2)

    def refused_then_banned() -> None:
        with server.session(user=None) as first:
            with pytest.raises(ftplib.error_temp, match="421"):
                ftplib.FTP().connect(server.host, server.port, timeout=30)  # one per address
            with pytest.raises(ftplib.error_perm):
                first.login("alice", "wrong")
            with pytest.raises(ftplib.error_temp, match="421"):
                first.login("alice", "wrong")  # the second failure bans the address
        with pytest.raises(ftplib.error_temp, match="421"):
            ftplib.FTP().connect(server.host, server.port, timeout=30)

    await in_thread(refused_then_banned)
    await server.all_sessions_gone()
    after = await in_thread(scrape, server)
    assert after[("ftpd_refused_total", (("reason", "max-connections-per-ip"),))] == 1
    assert after[("ftpd_refused_total", (("reason", "banned"),))] == 1
    assert after[("ftpd_bans_total", ())] == 1
    assert after[("ftpd_logins_total", (("result", "failed"),))] == 2
    assert after[("ftpd_connections_total", ())] == 3


@pytest_twisted.ensureDeferred
async def test_scrapes_leave_no_access_log_lines(server_factory) -> None:
    server = await server_factory(metrics=METRICS)
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        await in_thread(scrape, server)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert [formatEvent(e) for e in seen if "GET /metrics" in formatEvent(e)] == []
