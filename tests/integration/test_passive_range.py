"""More clients than passive ports, all at once: each PASV waits for a port the
server's own listeners free, and every transfer succeeds (data/passive_range.py)."""

from __future__ import annotations

import ftplib
import io
import threading

import pytest
import pytest_twisted

from tests.integration.backends import free_port
from tests.integration.conftest import FTP_TIMEOUT, USERS, close_quietly, in_thread

pytestmark = pytest.mark.integration

CLIENTS = 6


@pytest_twisted.ensureDeferred
async def test_six_clients_share_one_passive_port(server_factory) -> None:
    port = free_port()
    server = await server_factory(passive_ports=(port, port))
    payload = bytes(range(256)) * 4096  # 1 MiB
    (server.root / "f.bin").write_bytes(payload)
    ready = threading.Barrier(CLIENTS, timeout=FTP_TIMEOUT)
    results: list[bytes | BaseException] = [b""] * CLIENTS

    def client(i: int) -> None:
        ftp = ftplib.FTP(timeout=FTP_TIMEOUT)
        try:
            ftp.connect(server.host, server.port)
            ftp.login("alice", USERS["alice"][0])
            ready.wait()  # every PASV at the same moment, for one port
            got = io.BytesIO()
            ftp.retrbinary("RETR f.bin", got.write)
            results[i] = got.getvalue()
        except BaseException as e:  # reported below, with the others
            results[i] = e
        finally:
            close_quietly(ftp)

    def run_all() -> None:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(FTP_TIMEOUT * 2)

    await in_thread(run_all)
    assert [r if isinstance(r, BaseException) else r == payload for r in results] == (
        [True] * CLIENTS)
