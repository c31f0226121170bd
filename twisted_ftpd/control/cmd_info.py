# -*- test-case-name: tests.test_control_info -*-
"""Commands that describe the server and the session: SYST, FEAT, HELP, OPTS, NOOP."""

from __future__ import annotations

from typing import Any

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import COMMANDS, FEATURES, help_text
from twisted_ftpd.protocol.replies import Reply

from .dispatch import handles


@handles("SYST")
def ftp_syst(ctx: Any, arg: str) -> Reply:
    return replies.SYSTEM


@handles("NOOP")
def ftp_noop(ctx: Any, arg: str) -> Reply:
    return replies.NOOP_OK


@handles("FEAT")
def ftp_feat(ctx: Any, arg: str) -> Reply:
    return replies.FEATURES("\n".join(" " + feature for feature in FEATURES))


@handles("HELP")
def ftp_help(ctx: Any, arg: str) -> Reply:
    verb = arg.strip().upper()
    if not verb:
        return replies.HELP(help_text())
    spec = COMMANDS.get(verb)
    if spec is None or not spec.implemented:
        return replies.BAD_ARGUMENT
    return replies.HELP(spec.help)


@handles("OPTS")
def ftp_opts(ctx: Any, arg: str) -> Reply:
    words = arg.upper().split()
    if words and words[0] == "UTF8":
        if words[1:] in ([], ["ON"]):
            return replies.UTF8_ON
        return replies.PARAM_NOT_IMPLEMENTED
    return replies.BAD_ARGUMENT
