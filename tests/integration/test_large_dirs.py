"""Directories with many thousands of entries: LIST, NLST and MLSD stream them whole,
while another session keeps being served."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from .conftest import Server, in_thread

pytestmark = pytest.mark.integration

ENTRIES = 20_000


def populate(server: Server) -> set[str]:
    big = server.root / "big"
    big.mkdir()
    names = {f"file-{i:05d} é.txt" for i in range(ENTRIES)}
    for name in names:
        (big / name).touch()
    return names


@pytest_twisted.ensureDeferred
async def test_listings_of_a_huge_directory_are_complete(server: Server) -> None:
    names = await in_thread(populate, server)

    def listings() -> tuple[list[str], list[str], list[tuple[str, dict]]]:
        with server.session() as ftp:
            long_lines: list[str] = []
            ftp.retrlines("LIST big", long_lines.append)
            return long_lines, ftp.nlst("big"), list(ftp.mlsd("big"))

    def noops() -> int:
        with server.session() as ftp:
            return sum(ftp.voidcmd("NOOP").startswith("200") for _ in range(50))

    (long_lines, short, machine), answered = await defer.gatherResults(
        [in_thread(listings), in_thread(noops)])
    assert answered == 50
    assert {line.split(maxsplit=8)[8] for line in long_lines} == names
    assert set(short) == names
    files = {name for name, facts in machine if facts["type"] == "file"}
    assert files == names
    assert {facts["type"] for name, facts in machine} == {"file", "cdir", "pdir"}
