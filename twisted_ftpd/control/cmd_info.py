# -*- test-case-name: tests.test_control_table,tests.test_control_rfc3659 -*-
"""Commands that describe the server, the session and single files over the control
channel: SYST, FEAT, HELP, OPTS, NOOP, HOST, STAT, MLST."""

from __future__ import annotations

import ipaddress
import re

from twisted_ftpd.listing.ls import list_lines, parse_list_args
from twisted_ftpd.listing.mlsx import feat_line, mlst_reply_body, opts_reply_text, select_facts
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import COMMANDS, help_text
from twisted_ftpd.protocol.commands import features as features_of
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.replies import Reply

from .context import CommandContext
from .dispatch import answers, handles

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _valid_host(name: str) -> bool:
    """A DNS name (RFC 1123 labels), an IPv4 address, or a bracketed IPv6 address."""
    if name.startswith("[") and name.endswith("]"):
        try:
            ipaddress.IPv6Address(name[1:-1])
            return True
        except ValueError:
            return False
    labels = name.removesuffix(".").split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(name)
            return True
        except ValueError:
            return False
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


answers("SYST", replies.SYSTEM)
answers("NOOP", replies.NOOP_OK)


@handles("FEAT")
def ftp_feat(ctx: CommandContext, arg: str) -> Reply:
    mlst = feat_line(ctx.session.mlst_facts)
    features = [mlst if f == "MLST" else f for f in features_of(ctx.tls.configured)]
    # A backend may lack a feature (object storage cannot set times: no MFMT).
    lacking = getattr(ctx.shell, "unsupported_features", frozenset())
    features = [f for f in features if f.split(" ")[0] not in lacking]
    return replies.FEATURES("\n".join(" " + feature for feature in features))


@handles("HELP")
def ftp_help(ctx: CommandContext, arg: str) -> Reply:
    verb = arg.strip().upper()
    if not verb:
        return replies.HELP(help_text())
    spec = COMMANDS.get(verb)
    if spec is None or not spec.implemented:
        return replies.BAD_ARGUMENT
    return replies.HELP(spec.help)


@handles("OPTS")
def ftp_opts(ctx: CommandContext, arg: str) -> Reply:
    option, _, value = arg.strip().partition(" ")
    option = option.upper()
    if option == "UTF8":
        if value.strip().upper() in ("", "ON"):
            return replies.UTF8_ON
        return replies.PARAM_NOT_IMPLEMENTED
    if option == "MLST":
        ctx.session.mlst_facts = select_facts(value.strip())
        return replies.OK(opts_reply_text(ctx.session.mlst_facts))
    return replies.BAD_ARGUMENT


@handles("HOST")
def ftp_host(ctx: CommandContext, arg: str) -> Reply:
    """RFC 7151: names the virtual host before login; one site serves every name."""
    name = arg.strip()
    if not _valid_host(name):
        return replies.BAD_ARGUMENT
    ctx.session.host = name
    return replies.HOST_OK


@handles("STAT")
async def ftp_stat(ctx: CommandContext, arg: str) -> Reply:
    if ctx.data.in_transfer:
        return replies.TRANSFER_STATUS(ctx.data.transfer.bytes_moved if ctx.data.transfer else 0)
    if not arg.strip():
        return replies.STATUS(_session_status(ctx))
    _, target = parse_list_args(arg)
    path = ctx.resolve(target)
    info = await ctx.shell.stat(path)
    entries = await ctx.shell.list_dir(path) if info.is_dir else [info]
    body = [" " + line for line in list_lines(entries, ctx.clock.seconds())]
    return replies.FILE_STATUS("\n".join([f"Status of {display(path)}:", *body, "End of status."]))


def _session_status(ctx: CommandContext) -> str:
    session = ctx.session
    pending = ctx.data.pending
    if pending is None:
        data = "none"
    elif hasattr(pending, "port_number"):
        data = f"passive, port {pending.port_number}"
    else:
        data = "active, to {} port {}".format(*pending.target)
    return "\n".join([
        "twisted-ftpd status:",
        f" Connected from {ctx.peer_host}",
        f" Logged in as {session.user}",
        f" TYPE: {'ASCII' if session.type == 'A' else 'BINARY'}, MODE: Stream, STRU: File",
        f" Directory: {display(session.cwd)}",
        f" Data connection: {data}",
        "End of status.",
    ])


@handles("MLST")
async def ftp_mlst(ctx: CommandContext, arg: str) -> Reply:
    path = ctx.resolve(arg)
    info = await ctx.shell.stat(path)
    body = mlst_reply_body(info, display(path), ctx.session.mlst_facts, ctx.permissions)
    return replies.FILE_ACTION_OK(body)
