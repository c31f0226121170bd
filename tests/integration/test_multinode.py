"""Two real nodes (server.py processes on 127.0.0.2 and 127.0.0.3) behind a real
HAProxy on 127.0.0.1, clients from 127.0.0.5: the scenario of tests/multinode.py and
README "Running several nodes", twice: sharing one root on disk, and as a whole
cluster — users in a real PostgreSQL, bans and counts in a real Redis, files in a real
S3 server (SeaweedFS)."""

from __future__ import annotations

import ftplib
import io
import itertools
import json
import os
import re
import socket
from pathlib import Path

import pytest

from tests.integration.conftest import FTP_TIMEOUT, close_quietly, require_binary, sha256
from tests.multinode import BALANCER, Cluster, start_cluster, whole_cluster

pytestmark = pytest.mark.integration

CLIENT = "127.0.0.5"
STRANGER = "127.0.0.6"


def whole_cluster_options(request: pytest.FixtureRequest) -> list[str]:
    """Users from PostgreSQL, shared state in Redis, homes in S3: every node the same."""
    postgres = request.getfixturevalue("postgres_server")
    redis = request.getfixturevalue("redis_server")
    s3 = request.getfixturevalue("s3_server")  # its client settings are in os.environ
    redis.client().flushall()
    return whole_cluster(postgres.database(), redis.url, s3.bucket,
                         f"cluster-{os.getpid()}-{next(_clusters)}")


_clusters = itertools.count()


@pytest.fixture(params=["shared-disk", "postgresql-redis-s3"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    require_binary("haproxy")
    try:
        with socket.socket() as probe:
            probe.bind((CLIENT, 0))
    except OSError:
        pytest.skip(f"{CLIENT} is not a local address here")
    whole = whole_cluster_options(request) if request.param != "shared-disk" else []
    running = start_cluster(tmp_path, "--shutdown-grace", "0", "--log-format", "json",
                            *whole)
    running.keeps_partial_uploads = not whole
    yield running
    running.stop()


def login(c: Cluster) -> tuple[ftplib.FTP, str]:
    """A session through the balancer, and the name of the node that took it."""
    ftp = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=(CLIENT, 0))
    banner = ftp.connect(BALANCER, c.balancer.port)
    ftp.login("alice", "secret")
    found = re.search(r"node (\w+) ready", banner)
    assert found, banner
    return ftp, found.group(1)


def in_range(c: Cluster, node: str, port: int) -> bool:
    low, high = c.nodes[node].node.passive
    return low <= port <= high


def epsv_retr(ftp: ftplib.FTP, name: str) -> tuple[int, bytes]:
    """RETR over EPSV (ftplib itself asks PASV on IPv4): the port, and the bytes."""
    reply = ftp.sendcmd("EPSV")
    port = int(re.search(r"\|\|\|(\d+)\|", reply).group(1))  # type: ignore[union-attr]
    with socket.create_connection((BALANCER, port), timeout=FTP_TIMEOUT,
                                  source_address=(CLIENT, 0)) as data:
        assert ftp.sendcmd(f"RETR {name}").startswith("150")
        chunks = []
        while chunk := data.recv(65536):
            chunks.append(chunk)
    assert ftp.voidresp().startswith("226")
    return port, b"".join(chunks)


def logged_peers(c: Cluster, node: str) -> set[str]:
    peers = set()
    for line in c.nodes[node].log:
        if line.startswith("{"):
            peers.add(json.loads(line).get("peer"))
    return peers - {None}


def test_two_nodes_share_the_work_and_survive_one_stopping(cluster: Cluster) -> None:
    c = cluster
    first, node_1 = login(c)
    second, node_2 = login(c)
    assert {node_1, node_2} == {"a", "b"}  # logins reach both nodes
    sessions = {node_1: first, node_2: second}
    data = os.urandom(500_000)
    try:
        # Upload via one node, download via the other (the shared root).
        sessions["a"].storbinary("STOR shared.bin", io.BytesIO(data))
        chunks: list[bytes] = []
        sessions["b"].retrbinary("RETR shared.bin", chunks.append)
        assert sha256(b"".join(chunks)) == sha256(data)
        # PASV (ftplib's) and EPSV on both, each in its own node's range.
        for name, ftp in sessions.items():
            host, port = ftplib.parse227(ftp.sendcmd("PASV"))
            assert host == BALANCER and in_range(c, name, port)
            port, got = epsv_retr(ftp, "shared.bin")
            assert in_range(c, name, port) and got == data
    finally:
        close_quietly(sessions["b"])

    # Node a stops in the middle of an upload; the client comes back through the
    # balancer, lands on b, and resumes from what a had stored.
    big = os.urandom(16 << 20)
    sent = 0

    def arrived() -> bool:
        """Node a has stored some of it (on disk; an S3 upload shows nothing before)."""
        return not c.keeps_partial_uploads or any(
            p.stat().st_size > 0 for p in c.shared.iterdir() if "big.bin" in p.name)

    def stop_a_midway(block: bytes) -> None:
        nonlocal sent
        sent += len(block)
        if sent >= 512 * 1024 and c.nodes["a"].process.poll() is None and arrived():
            c.nodes["a"].stop()

    with pytest.raises((OSError, EOFError, ftplib.Error)):
        sessions["a"].storbinary("STOR big.bin", io.BytesIO(big), 65536, stop_a_midway)
    sessions["a"].close()
    again, node = login(c)
    try:
        assert node == "b"
        again.voidcmd("TYPE I")
        if c.keeps_partial_uploads:
            kept = again.size("big.bin") or 0
            assert 0 < kept < len(big)
        else:  # an object appears only once complete: the client starts again
            with pytest.raises(ftplib.error_perm, match="^550"):
                again.size("big.bin")
            kept = 0
        again.storbinary("STOR big.bin", io.BytesIO(big[kept:]), rest=kept)
        stored: list[bytes] = []
        again.retrbinary("RETR big.bin", stored.append)
        assert sha256(b"".join(stored)) == sha256(big)
    finally:
        close_quietly(again)
    for name in ("a", "b"):
        assert logged_peers(c, name) == {CLIENT}, name

    # A third address forging a header straight to a node is dropped, and logged.
    node_b = c.nodes["b"].node
    with socket.create_connection((node_b.host, node_b.port), timeout=FTP_TIMEOUT,
                                  source_address=(STRANGER, 0)) as forger:
        assert forger.recv(4096).startswith(b"220 ")  # served directly, until it forges
        forger.sendall(f"PROXY TCP4 10.9.9.9 {node_b.host} 1234 21\r\n".encode())
        try:
            assert forger.recv(4096) == b""
        except ConnectionResetError:
            pass  # dropped with a reset: the same refusal
    c.nodes["b"].stop()  # its log is complete once it has exited
    assert any(STRANGER in line and "not one of the balancers" in line
               for line in c.nodes["b"].log)
