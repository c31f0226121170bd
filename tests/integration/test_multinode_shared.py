"""The two-node cluster of tests/multinode.py (server.py processes behind a real
HAProxy) with its users in a real PostgreSQL, its bans in a real Redis and its files in
a real S3 server: logins from the database reach both nodes, and a ban earned through
one node holds on the other."""

from __future__ import annotations

import ftplib
import json
import os
import re
import socket
from pathlib import Path

import pytest

from tests.integration.conftest import FTP_TIMEOUT, require_binary
from tests.multinode import BALANCER, Cluster, start_cluster
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.pgusers import PostgresUsers
from twisted_ftpd.auth.userdb import UserRecord

pytestmark = pytest.mark.integration

CLIENT = "127.0.0.5"  # the one who guesses passwords
OTHER = "127.0.0.7"  # somebody else
BANNED = "421 Too many failed logins from your address; try again later."


@pytest.fixture
def cluster(tmp_path: Path, postgres_server, redis_server,  # type: ignore[no-untyped-def]
            s3_server):
    require_binary("haproxy")
    for address in (CLIENT, OTHER):
        try:
            with socket.socket() as probe:
                probe.bind((address, 0))
        except OSError:
            pytest.skip(f"{address} is not a local address here")
    database = postgres_server.database()
    users = PostgresUsers(database)
    users.create_schema()
    users.upsert(UserRecord("carol", hash_password("carolpw"), "elr", ""))
    users.close()
    redis_server.client().flushall()
    running = start_cluster(tmp_path, "--users", database, "--shared-state", redis_server.url,
                            "--storage", f"s3://{s3_server.bucket}/bans-{os.getpid()}",
                            "--ban-after", "3", "--shutdown-grace", "0",
                            "--log-format", "json")
    yield running
    running.stop()
    redis_server.client().flushall()


def attempt(c: Cluster, source: str, password: str) -> tuple[str, str]:
    """One new connection through the balancer: (the node, the reply to PASS or the
    refusal at connect)."""
    ftp = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=(source, 0))
    try:
        banner = ftp.connect(BALANCER, c.balancer.port)
    except ftplib.error_temp as e:
        return "?", str(e)
    node = re.search(r"node (\w+) ready", banner).group(1)  # type: ignore[union-attr]
    try:
        return node, ftp.login("carol", password)
    except ftplib.Error as e:
        return node, str(e)
    finally:
        ftp.close()


def test_users_from_postgresql_and_a_ban_shared_through_redis(cluster: Cluster) -> None:
    c = cluster
    logins = [attempt(c, OTHER, "carolpw") for _ in range(2)]
    assert sorted(logins) == [("a", "230 Login successful."), ("b", "230 Login successful.")]

    # Wrong passwords through the balancer land on both nodes, in turn: the third
    # failure bans the address, wherever it lands.
    failures = [attempt(c, CLIENT, "guess") for _ in range(3)]
    assert {node for node, _ in failures} == {"a", "b"}
    assert [reply[:3] for _, reply in failures] == ["530", "530", "421"]
    assert [attempt(c, CLIENT, "carolpw")[1] for _ in range(2)] == [BANNED, BANNED]
    assert attempt(c, OTHER, "carolpw")[1].startswith("230")  # nobody else is banned

    c.stop()  # the logs are complete once the nodes have exited
    banned_by = [name for name, node in c.nodes.items() for line in node.log
                 if line.startswith("{") and json.loads(line).get("ftpd_event") == "ban"]
    assert banned_by == [failures[2][0]]  # the node whose failure banned logs the ban
