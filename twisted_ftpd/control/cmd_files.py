# -*- test-case-name: tests.test_control_files -*-
"""Directory and file management over the control channel: CWD, PWD, MKD, RMD,
DELE, RNFR/RNTO, SIZE, MDTM.

Each handler resolves its path argument, asks the shell (which may run in a
thread), and returns a reply; errors are FTPErrors that carry their own reply.
"""

from __future__ import annotations

import time

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.errors import FileNotFound, IsADirectory, NotADirectory
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.replies import Reply, quote_path

from .context import CommandContext
from .dispatch import handles
from .session_log import emit
from .uploads import removal


@handles("CWD", "XCWD")
async def ftp_cwd(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    info = await ctx.shell.stat(path)
    if not info.is_dir:
        raise NotADirectory(display(path))
    ctx.session.cwd = path
    return replies.CWD_OK(display(path))


@handles("CDUP", "XCUP")
def ftp_cdup(ctx: CommandContext, arg: str) -> Reply:
    ctx.session.cwd = ctx.session.cwd[:-1]
    return replies.CWD_OK(display(ctx.session.cwd))


@handles("PWD", "XPWD")
def ftp_pwd(ctx: CommandContext, arg: str) -> Reply:
    return replies.CURRENT_DIR(quote_path(display(ctx.session.cwd)))


@handles("MKD", "XMKD")
async def ftp_mkd(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg, creating=True)
    await ctx.shell.make_dir(path)
    emit(ctx, "mkdir", path=display(path))
    return replies.PATH_CREATED(quote_path(display(path)))


@handles("RMD", "XRMD")
async def ftp_rmd(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    await ctx.shell.remove_dir(path)
    emit(ctx, "rmdir", path=display(path))
    return replies.RMD_OK


@handles("DELE")
async def ftp_dele(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    freed = await removal(ctx, path)  # for the quota: what the delete gives back
    await ctx.shell.remove_file(path)
    freed.done()
    emit(ctx, "delete", path=display(path))
    return replies.DELE_OK


@handles("RNFR")
async def ftp_rnfr(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    await ctx.shell.lstat(path)  # a link is renamed as a link, wherever it points
    ctx.session.rename_from = path
    return replies.RNFR_OK


@handles("RNTO")
async def ftp_rnto(ctx: CommandContext, arg: str) -> Reply:
    source, ctx.session.rename_from = ctx.session.rename_from, None
    if source is None:
        return replies.RNFR_FIRST
    target = ctx.resolve(arg, creating=True)
    replaced = await removal(ctx, target, unless=source)  # a file renamed over goes
    await ctx.shell.rename(source, target)
    replaced.done()
    emit(ctx, "rename", path=display(source), to=display(target))
    return replies.RNTO_OK


@handles("SIZE")
async def ftp_size(ctx: CommandContext, arg: str) -> Reply:
    if ctx.session.type == "A":
        # The ASCII size would need a read of the whole file; refuse like pyftpdlib.
        return replies.SIZE_IN_ASCII
    path = ctx.resolve(arg)
    info = await ctx.shell.stat(path)
    if info.is_dir:
        raise IsADirectory(display(path))
    if not info.is_file:
        raise FileNotFound(display(path))
    return replies.FILE_STATUS(str(info.size))


@handles("MDTM")
async def ftp_mdtm(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    info = await ctx.shell.stat(path)
    if info.is_dir:
        raise IsADirectory(display(path))
    return replies.FILE_STATUS(time.strftime("%Y%m%d%H%M%S", time.gmtime(info.mtime)))
