# -*- test-case-name: tests.test_control_transfer -*-
"""Transfers: RETR, STOR, APPE, STOU, LIST, NLST, MLSD, and ABOR to stop one.

Every transfer follows one shape: check the path and open the file *before*
replying 150 (so a missing file is a plain 550), then wait for the data
connection (425 if it never comes), stream with backpressure, and reply 226,
or 426 if the connection broke. The session's data set-up is used up either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from twisted_ftpd.data.ascii import AsciiWriteFile
from twisted_ftpd.data.connect import PendingConnection
from twisted_ftpd.data.sendfile import send_download
from twisted_ftpd.data.streams import Receiver, finish_sending
from twisted_ftpd.interfaces import IWriteFile
from twisted_ftpd.listing.ls import list_lines, name_lines, parse_list_args
from twisted_ftpd.listing.mlsx import entry_lines, mlsd_lines
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.errors import RestartPastEnd
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.values import FileInfo, Segments

from .context import CommandContext
from .dispatch import answers, handles
from .listings import Format, Pages, send_pages
from .session_log import recorded
from .uploads import Upload


def take_data(ctx: CommandContext) -> PendingConnection:
    """The data connection set up for this transfer (425/521 if none or unfit)."""
    return ctx.data.take(ctx.session.prot == "P", ctx.tls.protection_required(ctx.session))


def _mode(ctx: CommandContext) -> str:
    return "ASCII" if ctx.session.type == "A" else "BINARY"


async def _check_rest(ctx: CommandContext, path: Segments, offset: int) -> None:
    if offset and offset > (await ctx.shell.stat(path)).size:
        raise RestartPastEnd(offset)


@handles("RETR")
async def ftp_retr(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    offset = ctx.session.take_rest()
    pending = take_data(ctx)
    try:
        await _check_rest(ctx, path, offset)
        source = await ctx.shell.open_for_reading(path, offset)
        ctx.reply(replies.DATA_OPEN_TRANSFER(_mode(ctx), display(path)))
        with recorded(ctx, "download", display(path), pending.tls is not None):
            try:
                proto = await ctx.data.open(pending)
            except Exception:
                source.close()
                raise
            await send_download(proto, source, ascii=ctx.session.type == "A",
                                reactor=ctx.server.reactor)
            await finish_sending(proto)
    finally:
        ctx.data.end_transfer()
    return replies.TRANSFER_COMPLETE


async def _receive(ctx: CommandContext, pending: Any, target: IWriteFile, path: str,
                   upload: Upload) -> Reply:
    """The shared second half of STOR, APPE and STOU, once the file is open."""
    if ctx.session.type == "A":
        target = AsciiWriteFile(target)
    with recorded(ctx, "upload", path, pending.tls is not None):
        try:
            await Receiver(await ctx.data.open(pending), target, upload.limit).run()
        except Exception:
            await target.abort()  # a no-op when the receiver already settled the file
            raise
    return replies.TRANSFER_COMPLETE


Opened = tuple[Segments, IWriteFile, Reply]  # the file's path, its upload, the 150


async def _upload(ctx: CommandContext, open_target: Callable[[Upload], Awaitable[Opened]],
                  ) -> Reply:
    """STOR, APPE and STOU: ``open_target`` opens the file through the upload's quota
    and checks; its 150 goes out, then the data is received."""
    pending = take_data(ctx)
    upload = Upload(ctx)  # the quota, --upload-check and --on-upload
    try:
        path, target, opened = await open_target(upload)
        ctx.reply(opened)
        return await _receive(ctx, pending, target, display(path), upload)
    finally:
        ctx.data.end_transfer()
        await upload.end()


@handles("STOR")
async def ftp_stor(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg, creating=True)
    offset = ctx.session.take_rest()

    async def open_target(upload: Upload) -> Opened:
        await _check_rest(ctx, path, offset)
        target = await upload.open_for_writing(path, offset)
        return path, target, replies.DATA_OPEN_TRANSFER(_mode(ctx), display(path))

    return await _upload(ctx, open_target)


@handles("APPE")
async def ftp_appe(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg, creating=True)
    ctx.session.take_rest()  # REST has no meaning for APPE

    async def open_target(upload: Upload) -> Opened:
        target = await upload.open_for_appending(path)
        return path, target, replies.DATA_OPEN_TRANSFER(_mode(ctx), display(path))

    return await _upload(ctx, open_target)


@handles("STOU")
async def ftp_stou(ctx: CommandContext, arg: str) -> Reply:
    # An argument (not in RFC 959, sent by some clients) suggests the name's start.
    if arg.strip():
        path = ctx.resolve(arg, creating=True)
        directory, prefix = path[:-1], (path[-1] + ".") if path else "ftpd."
    else:
        directory, prefix = ctx.session.cwd, "ftpd."
    ctx.session.take_rest()

    async def open_target(upload: Upload) -> Opened:
        name, target = await upload.open_unique(directory, prefix)
        return (*directory, name), target, replies.UNIQUE_FILE(name)  # RFC 1123 4.1.2.9

    return await _upload(ctx, open_target)


@handles("ABOR")
async def ftp_abor(ctx: CommandContext, arg: str) -> Reply:
    if not ctx.data.in_transfer:
        ctx.data.set_pending(None)
        return replies.ABOR_NOTHING
    ctx.data.abort()
    await ctx.when_idle()  # the transfer's own 426 goes first (RFC 959 4.1.3)
    return replies.ABOR_OK


answers("ALLO", replies.ALLO_OK)  # nothing to reserve space for


@handles("LIST")
def ftp_list(ctx: CommandContext, arg: str) -> Any:
    return _listing(ctx, arg, names_only=False)


@handles("NLST")
def ftp_nlst(ctx: CommandContext, arg: str) -> Any:
    return _listing(ctx, arg, names_only=True)


async def _listing(ctx: CommandContext, arg: str, names_only: bool) -> Reply:
    ctx.session.take_rest()  # a REST before a listing is spent on it, not on a later RETR
    _, target = parse_list_args(arg)
    path = ctx.resolve(target)
    pending = take_data(ctx)
    try:
        info = await ctx.shell.stat(path)
        pages = Pages(ctx.shell, path, None if info.is_dir else [info])
        first = await pages.first()
        now = ctx.clock.seconds()

        def lines(page: list[FileInfo], _first: bool) -> Iterator[str]:
            return name_lines(page) if names_only else list_lines(page, now)

        await _send_listing(ctx, pending, pages, first, lines)
    finally:
        ctx.data.end_transfer()
    return replies.TRANSFER_COMPLETE


async def _send_listing(ctx: CommandContext, pending: Any, pages: Pages,
                        first: list[FileInfo], lines: Format) -> None:
    ctx.reply(replies.DATA_OPEN_TRANSFER("ASCII", "file list"))
    await send_pages(await ctx.data.open(pending), pages, first, lines)


@handles("MLSD")
async def ftp_mlsd(ctx: CommandContext, arg: str) -> Reply:
    ctx.session.take_rest()
    path = ctx.resolve(arg)
    pending = take_data(ctx)
    try:
        info = await ctx.shell.stat(path)
        if not info.is_dir:
            return replies.MLSD_ON_FILE(display(path))
        pages = Pages(ctx.shell, path)
        first = await pages.first()
        parent = await ctx.shell.stat(path[:-1]) if path else None
        facts, permissions = ctx.session.mlst_facts, ctx.permissions

        def lines(page: list[FileInfo], is_first: bool) -> Iterator[str]:
            if is_first:
                return mlsd_lines(info, parent, page, facts, permissions)
            return entry_lines(page, facts, permissions)

        await _send_listing(ctx, pending, pages, first, lines)
    finally:
        ctx.data.end_transfer()
    return replies.TRANSFER_COMPLETE
