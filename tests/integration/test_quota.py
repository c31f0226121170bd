"""Per-user quotas with ftplib against a real server on 127.0.0.1: an upload past the
quota is stopped with 552, deletes give room back, the file count is kept."""

from __future__ import annotations

import ftplib
import os
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_twisted

from tests.integration.conftest import in_thread, part_files
from tests.integration.test_upload_hooks import stor_reply
from twisted_ftpd.auth import userdb

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def give_options(root: Path, name: str, **options: str) -> None:
    users = root.parent / "users.db"
    record = userdb.UserDB(users).lookup(name)
    assert record is not None
    userdb.set_user(users, replace(record, options=options))


def delete_if_there(ftp: ftplib.FTP, name: str) -> None:
    """Remove what a stopped upload left (a partial, kept as for any aborted upload)."""
    try:
        ftp.delete(name)
    except ftplib.error_perm:
        pass


@pytest_twisted.ensureDeferred
async def test_an_upload_past_the_quota_is_stopped_with_552(server) -> None:
    give_options(server.root, "alice", quota="4M")
    (server.root / "old.bin").write_bytes(os.urandom(MiB))

    def client() -> list[str]:
        with server.session() as ftp:
            replies = [stor_reply(ftp, "big.bin", os.urandom(8 * MiB))]  # 1 + 8 > 4 MiB
            delete_if_there(ftp, "big.bin")
            replies.append(stor_reply(ftp, "fits.bin", os.urandom(2 * MiB)))  # 3 MiB used
            replies.append(stor_reply(ftp, "more.bin", os.urandom(2 * MiB)))  # 5 > 4
            delete_if_there(ftp, "more.bin")
            replies.append(ftp.delete("old.bin"))  # 2 MiB used
            replies.append(stor_reply(ftp, "more.bin", os.urandom(2 * MiB)))  # 4 MiB: full
            replies.append(stor_reply(ftp, "empty.txt", b""))
            return replies

    big, fits, too_much, deleted, more, full = await in_thread(client)
    limit = "552 Quota exceeded: this account may store 4194304 bytes."
    assert (big, too_much, full) == (limit, limit, limit)
    assert fits.startswith("226") and deleted.startswith("250") and more.startswith("226")
    assert sorted(p.name for p in server.root.iterdir()) == ["fits.bin", "more.bin"]
    assert part_files(server.root) == []


@pytest_twisted.ensureDeferred
async def test_quota_files_limits_the_number_of_files(server) -> None:
    give_options(server.root, "alice", quota_files="2")
    (server.root / "one.txt").write_bytes(b"1")

    def client() -> list[str]:
        with server.session() as ftp:
            return [stor_reply(ftp, "two.txt", b"2"), stor_reply(ftp, "three.txt", b"3"),
                    stor_reply(ftp, "two.txt", b"22")]

    two, three, again = await in_thread(client)
    assert two.startswith("226") and again.startswith("226")
    assert three == "552 Quota exceeded: this account may store 2 files."
    assert not (server.root / "three.txt").exists()
