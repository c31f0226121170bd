# -*- test-case-name: tests.test_control_site -*-
"""File attributes: SITE HELP, SITE CHMOD and MFMT (set modification time)."""

from __future__ import annotations

import calendar
import re
import time

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.replies import Reply

from .context import CommandContext
from .dispatch import handles
from .session_log import emit

SITE_HELP = "SITE commands:\n CHMOD <mode> <path>\n HELP\nEnd of SITE help."
_OCTAL_MODE = re.compile(r"[0-7]{1,4}")
_MFMT_TIME = re.compile(r"(\d{14})(?:\.\d{1,3})?")


@handles("SITE")
async def ftp_site(ctx: CommandContext, arg: str) -> Reply:
    command, _, rest = arg.strip().partition(" ")
    command = command.upper()
    if command == "HELP":
        return replies.HELP(SITE_HELP)
    if command == "CHMOD":  # the table's SITE CHMOD entry checked the M permission
        mode, _, target = rest.strip().partition(" ")
        if not target or not _OCTAL_MODE.fullmatch(mode):
            return replies.BAD_ARGUMENT
        path = ctx.resolve(target)
        await ctx.shell.chmod(path, int(mode, 8))
        emit(ctx, "chmod", path=display(path), permissions=f"{int(mode, 8) & 0o777:04o}")
        return replies.SITE_CHMOD_OK
    return replies.PARAM_NOT_IMPLEMENTED


@handles("MFMT")
async def ftp_mfmt(ctx: CommandContext, arg: str) -> Reply:
    """draft-somers-ftp-mfxx: ``MFMT YYYYMMDDHHMMSS path``, time in UTC."""
    stamp, _, target = arg.strip().partition(" ")
    match = _MFMT_TIME.fullmatch(stamp)
    if not target or match is None:
        return replies.BAD_ARGUMENT
    try:
        parsed = time.strptime(match.group(1), "%Y%m%d%H%M%S")
    except ValueError:
        return replies.BAD_ARGUMENT
    if parsed.tm_sec > 60 or parsed.tm_year < 1000:  # RFC 3659 2.3 time-val
        return replies.BAD_ARGUMENT
    path = ctx.resolve(target)
    await ctx.shell.set_mtime(path, calendar.timegm(parsed))
    # Report what the filesystem kept, which may differ for times it cannot store.
    stored = (await ctx.shell.stat(path)).mtime
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(stored))
    return replies.FILE_STATUS(f"Modify={stamp}; {display(path)}")
