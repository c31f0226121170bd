# -*- test-case-name: tests.test_control_transfer -*-
"""Transfers: RETR, STOR, LIST, NLST.

Every transfer follows one shape: check the path and open the file *before*
replying 150 (so a missing file is a plain 550), then wait for the data
connection (425 if it never comes), stream with backpressure, and reply 226,
or 426 if the connection broke. The session's data set-up is used up either way.
"""

from __future__ import annotations

from typing import Any

from twisted_ftpd.data.channel import Receiver, finish_sending, send_lines
from twisted_ftpd.errors import RestartPastEnd
from twisted_ftpd.interfaces import Segments
from twisted_ftpd.listing.ls import list_lines, name_lines, parse_list_args
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.replies import Reply

from .dispatch import handles


def _mode(ctx: Any) -> str:
    return "ASCII" if ctx.session.type == "A" else "BINARY"


async def _check_rest(ctx: Any, path: Segments, offset: int) -> None:
    if offset and offset > (await ctx.shell.stat(path)).size:
        raise RestartPastEnd(offset)


@handles("RETR")
async def ftp_retr(ctx: Any, arg: str) -> Reply:
    path = ctx.resolve(arg)
    offset = ctx.session.take_rest()
    pending = ctx.take_pending_data()
    try:
        await _check_rest(ctx, path, offset)
        source = await ctx.shell.open_for_reading(path, offset)
        ctx.reply(replies.DATA_OPEN_TRANSFER(_mode(ctx), display(path)))
        try:
            proto = await ctx.open_data(pending)
        except Exception:
            source.close()
            raise
        await source.send(proto)
        await finish_sending(proto)
    finally:
        ctx.end_transfer()
    return replies.TRANSFER_COMPLETE


@handles("STOR")
async def ftp_stor(ctx: Any, arg: str) -> Reply:
    path = ctx.resolve(arg, creating=True)
    offset = ctx.session.take_rest()
    pending = ctx.take_pending_data()
    try:
        await _check_rest(ctx, path, offset)
        target = await ctx.shell.open_for_writing(path, offset or None)
        ctx.reply(replies.DATA_OPEN_TRANSFER(_mode(ctx), display(path)))
        try:
            await Receiver(await ctx.open_data(pending), target).run()
        except BaseException:
            await target.abort()  # a no-op when the receiver already settled the file
            raise
    finally:
        ctx.end_transfer()
    return replies.TRANSFER_COMPLETE


@handles("LIST")
def ftp_list(ctx: Any, arg: str) -> Any:
    return _listing(ctx, arg, names_only=False)


@handles("NLST")
def ftp_nlst(ctx: Any, arg: str) -> Any:
    return _listing(ctx, arg, names_only=True)


async def _listing(ctx: Any, arg: str, names_only: bool) -> Reply:
    _, target = parse_list_args(arg)
    path = ctx.resolve(target)
    pending = ctx.take_pending_data()
    try:
        info = await ctx.shell.stat(path)
        entries = await ctx.shell.list_dir(path) if info.is_dir else [info]
        ctx.reply(replies.DATA_OPEN_TRANSFER("ASCII", "file list"))
        proto = await ctx.open_data(pending)
        now = ctx.clock.seconds()
        await send_lines(proto, name_lines(entries) if names_only else list_lines(entries, now))
    finally:
        ctx.end_transfer()
    return replies.TRANSFER_COMPLETE
