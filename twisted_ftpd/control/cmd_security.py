# -*- test-case-name: tests.test_control_security -*-
"""FTPS commands (RFC 4217): AUTH, PBSZ, PROT, CCC."""

from __future__ import annotations

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.replies import Reply

from .context import CommandContext
from .dispatch import handles

# RFC 4217 names TLS; SSL is the old name clients still send (curl sends it first),
# and the TLS-C / TLS-P spellings come from the draft that preceded the RFC.
MECHANISMS = ("TLS", "SSL", "TLS-C", "TLS-P")


@handles("AUTH")
def ftp_auth(ctx: CommandContext, arg: str) -> Reply | None:
    mechanism = arg.strip().upper()
    if mechanism not in MECHANISMS:
        return replies.AUTH_MECHANISM_UNKNOWN(mechanism)
    ctx.reply(replies.AUTH_OK(mechanism), immediate=True)  # in clear, before the handshake
    ctx.start_tls()
    return None


@handles("PBSZ")
def ftp_pbsz(ctx: CommandContext, arg: str) -> Reply:
    if not (arg.strip().isascii() and arg.strip().isdigit()):
        return replies.BAD_ARGUMENT
    ctx.session.pbsz = True  # TLS has no buffer; the size is always 0 (RFC 4217 9)
    return replies.PBSZ_OK


@handles("PROT")
def ftp_prot(ctx: CommandContext, arg: str) -> Reply:
    if not ctx.session.pbsz:
        return replies.PBSZ_FIRST
    level = arg.strip().upper()
    if level == "C" and ctx.tls.protection_required(ctx.session):
        return replies.PROT_REQUIRED
    if level in ("C", "P"):
        ctx.session.prot = level
        return replies.PROT_OK("Private" if level == "P" else "Clear")
    if level in ("S", "E"):
        return replies.PROT_LEVEL_UNSUPPORTED(level)
    return replies.BAD_ARGUMENT


@handles("CCC")
def ftp_ccc(ctx: CommandContext, arg: str) -> Reply:
    # Dropping TLS mid-connection would expose later commands and cannot be done
    # on a live Twisted TLS transport, so CCC is always refused.
    return replies.CCC_REFUSED
