"""Bans and limits shared by two nodes through a real Redis (started by the tests,
tests/integration/backends.py): two in-process servers, and one server process that is
killed to show that a crashed node's counts age out. Clients come from 127.0.0.1 and
127.0.0.2, two client addresses on loopback."""

from __future__ import annotations

import ftplib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import capturedLogs

from tests.harness import write_users
from tests.helpers import REPO, SERVER_PY
from tests.integration.backends import free_port
from tests.integration.conftest import FTP_TIMEOUT, close_quietly, in_thread
from twisted_ftpd.auth import userdb
from twisted_ftpd.auth.passwords import hash_password

pytestmark = pytest.mark.integration

OTHER = "127.0.0.2"
PASSWORDS = {"alice": ("secret", "elradfmwMT"), "carol": ("carolpw", "elr")}
TOO_MANY_FROM_ADDRESS = "421 Too many connections from your address; try again later."
BANNED = "421 Too many failed logins from your address; try again later."
WAIT = 30  # seconds; a safety net for the waits on real time below


@pytest.fixture
def users_file(tmp_path: Path) -> str:
    path = tmp_path / "users.db"
    write_users(path, {"alice": PASSWORDS["alice"]}, None)
    carol = userdb.UserRecord("carol", hash_password("carolpw"), "elr", "", {"max_sessions": "2"})
    with path.open("a") as f:
        f.write(userdb.format_record(carol) + "\n")
    return str(path)


@pytest.fixture
def redis_url(redis_server) -> Any:  # type: ignore[no-untyped-def]
    """The test Redis, empty before and after the test (bans on 127.0.0.1 included)."""
    client = redis_server.client()
    client.flushall()
    yield redis_server.url
    if redis_server.process is None:
        redis_server.start()  # a test that stopped it
        client = redis_server.client()
    client.flushall()


async def nodes(node_factory, users_file: str, redis_url: str, count: int = 2,  # type: ignore[no-untyped-def]
                **config: Any) -> list[Any]:
    config.setdefault("max_login_failures", 10)
    started = [await node_factory(users_file, PASSWORDS, shared_state=redis_url, **config)
               for _ in range(count)]
    for node in started:
        await node.factory.shared.settled()  # the first heartbeat is in
    return started


def connect(server, source: str = "127.0.0.1") -> ftplib.FTP:  # type: ignore[no-untyped-def]
    ftp = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=(source, 0))
    ftp.connect(server.host, server.port)
    return ftp


def greeting(server, source: str = "127.0.0.1") -> str:  # type: ignore[no-untyped-def]
    """The reply a new connection is greeted with (its 421, or 220); closes it."""
    try:
        ftp = connect(server, source)
    except ftplib.error_temp as e:
        return str(e)
    welcome = ftp.getwelcome()
    close_quietly(ftp)
    return welcome


def login(ftp: ftplib.FTP, user: str, password: str) -> str:
    try:
        return ftp.login(user, password)
    except ftplib.Error as e:
        return str(e)


def failed_login(server, source: str = "127.0.0.1") -> str:  # type: ignore[no-untyped-def]
    ftp = connect(server, source)
    try:
        return login(ftp, "alice", "wrong")
    finally:
        ftp.close()


def close(ftp: ftplib.FTP) -> None:
    """QUIT and close, unless closed already."""
    if ftp.sock is not None:
        close_quietly(ftp)


async def released(*servers: Any) -> None:
    """Every session of ``servers`` has ended and given its slots back in Redis."""
    for server in servers:
        await server.all_sessions_gone()
        await server.factory.shared.settled()


@pytest_twisted.ensureDeferred
async def test_a_ban_earned_through_one_node_holds_on_the_other(
        node_factory, users_file, redis_url) -> None:
    a, b = await nodes(node_factory, users_file, redis_url, ban_after=3)
    bans: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for name, node in (("a", a), ("b", b)):
        node.factory.events.observe(
            lambda e, found=bans[name]: found.append(e) if e.get("ftpd_event") == "ban" else None)
    waiting = await in_thread(connect, b)  # connected before the ban, not logged in yet
    try:
        # The failures add up across the nodes: the third one bans, wherever it lands.
        assert (await in_thread(failed_login, a)).startswith("530")
        assert (await in_thread(failed_login, b)).startswith("530")
        assert await in_thread(failed_login, a) == BANNED
        assert await in_thread(greeting, b) == BANNED
        assert await in_thread(greeting, a) == BANNED
        # A session of B that was waiting is refused at its PASS, right password or not.
        assert await in_thread(login, waiting, "alice", "secret") == BANNED
    finally:
        await in_thread(waiting.close)
    assert (await in_thread(greeting, b, OTHER)).startswith("220")  # nobody else is banned
    assert [e["peer"] for e in bans["a"]] == ["127.0.0.1"] and bans["b"] == []


@pytest_twisted.ensureDeferred
async def test_the_per_address_limit_counts_the_connections_of_every_node(
        node_factory, users_file, redis_url) -> None:
    a, b = await nodes(node_factory, users_file, redis_url, max_connections_per_ip=2)
    first = await in_thread(connect, a)
    second = await in_thread(connect, b)
    try:
        assert await in_thread(greeting, a) == TOO_MANY_FROM_ADDRESS
        assert await in_thread(greeting, b) == TOO_MANY_FROM_ADDRESS
        assert (await in_thread(greeting, b, OTHER)).startswith("220")  # another address
        await in_thread(close_quietly, second)
        await released(b)
        assert (await in_thread(greeting, a)).startswith("220")  # B's slot is free again
    finally:
        await in_thread(close, first)
        await in_thread(close, second)


@pytest_twisted.ensureDeferred
async def test_max_sessions_counts_the_sessions_of_every_node(
        node_factory, users_file, redis_url) -> None:
    a, b = await nodes(node_factory, users_file, redis_url)
    on_a, on_b, third = [await in_thread(connect, node) for node in (a, b, a)]
    try:
        assert (await in_thread(login, on_a, "carol", "carolpw")).startswith("230")
        assert (await in_thread(login, on_b, "carol", "carolpw")).startswith("230")
        assert await in_thread(login, third, "carol", "carolpw") == (
            "421 Too many sessions for carol; try again later.")
        await in_thread(close_quietly, on_b)
        await released(b)
        again = await in_thread(connect, a)
        assert (await in_thread(login, again, "carol", "carolpw")).startswith("230")
        await in_thread(close_quietly, again)
    finally:
        for ftp in (on_a, on_b, third):
            await in_thread(close, ftp)


def _start_process_node(tmp_path: Path, users_file: str, redis_url: str) -> tuple[
        subprocess.Popen[str], int]:
    """``server.py`` with --shared-state and a 1 s expiry; returns once it serves."""
    port = free_port()
    root = tmp_path / "process-root"
    root.mkdir()
    process = subprocess.Popen(
        [*SERVER_PY, "--port", str(port), "--interface", "127.0.0.1",
         "--root", str(root), "--users", users_file, "--shared-state", redis_url,
         "--shared-state-ttl", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # the start-up line says it listens
        if "twisted-ftpd serving" in line:
            return process, port
    raise AssertionError(f"server.py exited with {process.wait()}")


def _wait_until_only(client, node: str) -> None:  # type: ignore[no-untyped-def]
    """Until no node but ``node`` holds connections in Redis: waits on Redis's own
    events for those keys (keyspace notifications of their expiry), bounded."""
    pattern = "ftpd:node:*:connections"
    client.config_set("notify-keyspace-events", "Kgx")  # deletions and expiries
    events = client.pubsub()
    events.psubscribe(f"__keyspace@0__:{pattern}")
    try:
        deadline = time.monotonic() + WAIT
        while set(client.keys(pattern)) - {f"ftpd:node:{node}:connections"}:
            assert time.monotonic() < deadline, "the crashed node's counts never expired"
            events.get_message(timeout=1.0)  # returns at the next event on those keys
    finally:
        events.close()


@pytest_twisted.ensureDeferred
async def test_a_crashed_nodes_counts_age_out(node_factory, users_file, redis_url,
                                              redis_server, tmp_path: Path) -> None:
    process, port = await in_thread(_start_process_node, tmp_path, users_file, redis_url)
    try:
        held = ftplib.FTP(timeout=FTP_TIMEOUT, source_address=("127.0.0.1", 0))
        await in_thread(held.connect, "127.0.0.1", port)
        (b,) = await nodes(node_factory, users_file, redis_url, count=1,
                           max_connections_per_ip=1)
        assert await in_thread(greeting, b) == TOO_MANY_FROM_ADDRESS  # held on the process
        os.kill(process.pid, signal.SIGKILL)  # no goodbye: its counts stay in Redis...
        await in_thread(process.wait)
        held.close()
        await in_thread(_wait_until_only, redis_server.client(), b.factory.shared.node)
        assert (await in_thread(greeting, b)).startswith("220")  # ...until they expire
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest_twisted.ensureDeferred
async def test_with_redis_down_each_node_decides_alone_and_catches_up_after(
        node_factory, users_file, redis_url, redis_server) -> None:
    (a,) = await nodes(node_factory, users_file, redis_url, count=1,
                       max_connections_per_ip=1, ban_after=2, shared_state_ttl=1.0)
    redis_server.stop()
    with capturedLogs() as events:
        held = await in_thread(connect, a)  # fails open: this node's own count
    try:
        assert held.getwelcome().startswith("220")
        down = [e for e in events if "unavailable" in e.get("log_format", "")]
        assert down and down[0]["url"] == redis_url
        assert await in_thread(greeting, a) == TOO_MANY_FROM_ADDRESS  # still counted here
        assert (await in_thread(failed_login, a, OTHER)).startswith("530")
        assert await in_thread(failed_login, a, OTHER) == BANNED  # bans stay, per node
        assert await in_thread(greeting, a, OTHER) == BANNED

        redis_server.start()
        shared = a.factory.shared
        await shared.heartbeat()  # what the next beat (every 1/3 s) would find
        assert shared.available
        # The heartbeat put this node's connection back into Redis: a new node counts it.
        (b,) = await nodes(node_factory, users_file, redis_url, count=1,
                           max_connections_per_ip=1)
        assert await in_thread(greeting, b) == TOO_MANY_FROM_ADDRESS
        assert await in_thread(greeting, a, OTHER) == BANNED  # the local ban is still there
    finally:
        await in_thread(close_quietly, held)
