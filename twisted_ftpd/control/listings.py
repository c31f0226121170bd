# -*- test-case-name: tests.test_control_listings -*-
"""LIST, NLST and MLSD sent a page at a time where the shell lists in pages (object
storage: one store request per page), so a directory of any size streams without
being loaded whole first; other shells give all entries in one page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.data.streams import LineProducer, finish_sending
from twisted_ftpd.protocol.values import FileInfo, Segments

#: Formats one page of entries; the flag is true for the first page.
Format = Callable[[list[FileInfo], bool], Iterator[str]]


class Pages:
    """The entries of directory ``path`` through ``shell.list_page(path, token)``, which
    fires with (entries, the next page's token or None), or ``list_dir`` without it."""

    def __init__(self, shell: Any, path: Segments, entries: list[FileInfo] | None = None,
                 ) -> None:
        self._shell = shell
        self._path = path
        self._given = entries
        self._token: object = None

    async def first(self) -> list[FileInfo]:
        """The first page, fetched before the 150 reply, so that a missing directory
        or a failing store is a plain error reply."""
        if self._given is not None:
            return self._given
        list_page = getattr(self._shell, "list_page", None)
        if list_page is None:
            return await self._shell.list_dir(self._path)
        entries, self._token = await list_page(self._path, None)
        return entries

    async def rest(self) -> AsyncIterator[list[FileInfo]]:
        while self._token is not None:
            entries, self._token = await self._shell.list_page(self._path, self._token)
            yield entries


async def send_pages(proto: DataProtocol, pages: Pages, first: list[FileInfo],
                     format_page: Format) -> None:
    """Send every page with backpressure (the next is asked for once the last was taken
    by the connection), then close the connection once everything is flushed."""
    await LineProducer(format_page(first, True), proto).start()
    async for page in pages.rest():
        await LineProducer(format_page(page, False), proto).start()
    await finish_sending(proto)
