"""``--workers``: the options, the split of the passive range, the sockets the parent
binds for its workers and the settings it hands them; the processes themselves are
tested in tests/integration/test_workers.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from twisted_ftpd import worker
from twisted_ftpd.config import Options, ServerConfig, split_passive_ports
from twisted_ftpd.service import FTPService
from twisted_ftpd.workers import WorkerPool, bind_sockets, make_server


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_one_worker_is_the_single_process_server() -> None:
    assert parse().to_config().workers == 1
    reactor = MemoryReactorClock()
    assert isinstance(make_server(ServerConfig(), reactor), FTPService)
    assert isinstance(make_server(ServerConfig(workers=3), reactor), WorkerPool)


@pytest.mark.parametrize("count", ["0", "-1", "65", "two"])
def test_a_bad_worker_count_is_refused(count: str) -> None:
    with pytest.raises(usage.UsageError):
        parse("--workers", count)


def test_workers_and_metrics_are_refused_together() -> None:
    with pytest.raises(usage.UsageError, match="--metrics is not served with --workers"):
        parse("--workers", "2", "--metrics", "tcp:9102")


def test_a_passive_range_needs_a_port_per_worker() -> None:
    with pytest.raises(usage.UsageError, match="holds 2 port.*--workers 3"):
        parse("--workers", "3", "--passive-ports", "50000-50001")
    assert parse("--workers", "2", "--passive-ports", "50000-50001").to_config().workers == 2


@pytest.mark.parametrize(("ports", "workers", "parts"), [
    ((50000, 50009), 2, [(50000, 50004), (50005, 50009)]),
    ((50000, 50010), 3, [(50000, 50003), (50004, 50007), (50008, 50010)]),
    ((50000, 50002), 3, [(50000, 50000), (50001, 50001), (50002, 50002)]),
    ((50000, 50100), 1, [(50000, 50100)]),
    (None, 2, [None, None]),
])
def test_the_passive_range_is_split_into_disjoint_consecutive_parts(
        ports: tuple[int, int] | None, workers: int,
        parts: list[tuple[int, int] | None]) -> None:
    assert split_passive_ports(ports, workers) == parts


def test_each_worker_gets_a_socket_of_its_own_on_the_same_port() -> None:
    sockets = bind_sockets(["tcp:0:interface=127.0.0.1"], 3)
    try:
        assert len({id(s) for s in sockets}) == 3
        assert len({s.getsockname() for s in sockets}) == 1
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            assert sock.getblocking() is False
    finally:
        for sock in sockets:
            sock.close()


def test_a_port_in_use_falls_through_to_the_next_alternative() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(error.CannotListenError):
            bind_sockets([f"tcp:{port}:interface=127.0.0.1"], 2)
        sockets = bind_sockets([f"tcp:{port}:interface=127.0.0.1",
                                "tcp:0:interface=127.0.0.1"], 2)
    assert sockets[0].getsockname()[1] != port
    for sock in sockets:
        sock.close()


def test_the_settings_reach_the_worker_unchanged(pem: str) -> None:
    config = ServerConfig(passive_ports=(50000, 50004), listen=("systemd:domain=INET:index=0",),
                          tls_cert=pem, banner="two\nlines")
    text = Path(pem).read_text()
    decoded, tls = worker.decode(worker.encode(config, (text, text)))
    assert decoded == config
    assert tls is not None and tls.certificate.subject.rfc4514_string() == "CN=localhost"
    assert worker.decode(worker.encode(ServerConfig(), None)) == (ServerConfig(), None)


def test_the_pool_announces_what_a_single_server_would_and_no_password() -> None:
    from twisted.logger import capturedLogs

    from twisted_ftpd.workers import WorkerProcess, _Slot

    config = ServerConfig(workers=2, users="postgresql://ftpd:s3cret@127.0.0.1/ftpd",
                          storage="s3://bucket/ftp")
    pool = WorkerPool(config, MemoryReactorClock(), publish=lambda event: None)
    pool._addresses = "127.0.0.1:2121"
    pool.slots = [_Slot(i, [], b"") for i in range(2)]
    with capturedLogs() as events:
        for slot in pool.slots:
            slot.process = WorkerProcess(pool, slot)
            pool._ready(slot.process)
    [line] = [e for e in events if "worker processes" in e.get("log_format", "")]
    assert line["root"] == "s3://bucket/ftp"
    assert "s3cret" not in line["users"] and line["users"].startswith("postgresql://")
