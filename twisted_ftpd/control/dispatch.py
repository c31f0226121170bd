# -*- test-case-name: tests.test_control_gating,tests.test_control_table -*-
"""From a parsed command to a reply: table gating, the handler call, errors to replies.

Handlers register with ``@handles``; they return a Reply, or a coroutine or
Deferred of one, and raise FTPErrors for failures. Everything generic (unknown
verb, login needed, argument shape, permission letter, unexpected exceptions)
is decided here, once, from ``protocol.commands.COMMANDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import COMMANDS, SITE_COMMANDS, Arg, CommandSpec, TLSNeed
from twisted_ftpd.protocol.errors import (
    FTPError,
    PermissionDenied,
    ProtectionRequired,
    TLSSessionNotReused,
)
from twisted_ftpd.protocol.parser import Command
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Phase

from .context import CommandContext
from .session_log import emit

log = Logger()

HandlerResult = Reply | None | defer.Deferred | Coroutine[Any, Any, Reply | None]
Handler = Callable[[CommandContext, str], HandlerResult]
HANDLERS: dict[str, Handler] = {}
# Handler failures that are refusals (a policy said no), logged as command_refused;
# the others (a missing file, a full disk) are the operation failing.
REFUSALS = (PermissionDenied, ProtectionRequired, TLSSessionNotReused)


def handles(*verbs: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``verbs``; each must be in the command table."""

    def register(func: Handler) -> Handler:
        for verb in verbs:
            if verb not in COMMANDS:
                raise KeyError(f"{verb} is not in the command table")
            HANDLERS[verb] = func
        return func

    return register


def answers(verb: str, reply: Reply) -> None:
    """Register ``verb`` as a command whose answer is always ``reply`` (SYST, NOOP...)."""
    handles(verb)(lambda ctx, arg: reply)


@dataclass(frozen=True)
class GateState:
    """What the gate looks at: the session's state when the command starts."""

    phase: Phase
    permissions: str
    tls_configured: bool
    tls_started: bool
    epsv_all: bool


def gate(spec: CommandSpec | None, command: Command, state: GateState) -> Reply | None:
    """The refusal a command gets before its handler runs, or None to run it."""
    if spec is None:
        return replies.SYNTAX_ERROR
    if spec.login and state.phase is not Phase.LOGGED_IN:
        return replies.NOT_LOGGED_IN
    if not spec.implemented or spec.verb.split(" ", 1)[0] not in HANDLERS:
        return replies.NOT_IMPLEMENTED(spec.verb)
    has_arg = command.arg.strip() != ""
    if spec.arg is Arg.REQUIRED and not has_arg:
        return replies.ARG_REQUIRED(spec.verb)
    if spec.arg is Arg.NONE and has_arg:
        return replies.NO_ARGUMENT(spec.verb)
    if spec.perm and spec.perm not in state.permissions:
        return replies.PERMISSION_DENIED
    if spec.perm_with_arg and has_arg and spec.perm_with_arg not in state.permissions:
        return replies.PERMISSION_DENIED
    if spec.tls is TLSNeed.BEFORE and not state.tls_configured:
        return replies.NOT_IMPLEMENTED(spec.verb)
    if spec.tls is TLSNeed.BEFORE and state.tls_started:
        return replies.ALREADY_SECURE
    if spec.tls is TLSNeed.AFTER and not state.tls_started:
        return replies.AUTH_FIRST
    if state.phase in spec.refuse_in:
        return spec.refuse_in[state.phase]
    if spec.epsv_all_blocks and state.epsv_all:
        return replies.EPSV_ALL_REFUSED
    return None


def site_command(command: Command) -> tuple[CommandSpec | None, Command]:
    """``SITE CHMOD 644 f``: the table entry of ``SITE CHMOD`` and its argument ``644 f``.

    SITE's handler serves them all ("SITE CHMOD" is not a handler of its own).
    """
    word, _, rest = command.arg.strip().partition(" ")
    return SITE_COMMANDS.get(word.upper()), Command(f"SITE {word.upper()}", rest.strip())


def failure_reply(failure: Failure) -> Reply:
    """The reply for a handler that failed: its own for FTPErrors, 451 for bugs."""
    if isinstance(failure.value, FTPError):
        return failure.value.reply()
    log.failure("Command handler failed", failure)
    return replies.LOCAL_ERROR


def run(ctx: CommandContext, command: Command) -> Reply | None | defer.Deferred[Reply | None]:
    """Gate and run one command: the final reply, at once when the command answered
    at once (most do), else a Deferred that fires with it (never fails)."""
    ctx.session.command_starting(command.verb)
    state = GateState(ctx.session.phase, ctx.permissions, ctx.tls.configured,
                      ctx.tls.started, ctx.session.epsv_all)
    refusal = gate(COMMANDS.get(command.verb), command, state)
    verb = command.verb
    if refusal is None and command.verb == "SITE":
        sub_spec, sub = site_command(command)
        if sub_spec is not None:
            refusal, verb = gate(sub_spec, sub, state), sub.verb
    if refusal is not None:
        if refusal.code != replies.NOT_IMPLEMENTED.code:  # a missing feature refuses nobody
            emit(ctx, "command_refused", command=verb, code=refusal.code)
        return refusal
    handler = HANDLERS[command.verb]
    try:
        result = handler(ctx, command.arg)
    except Exception:
        return failure_reply(Failure())
    # Most commands (EPSV, TYPE, CWD, NOOP...) answer at once: their Reply goes
    # back as it is, with no Deferred, coroutine or errback layer around it.
    if isinstance(result, Coroutine):
        result = defer.Deferred.fromCoroutine(result)
    elif not isinstance(result, defer.Deferred):
        return result
    return result.addErrback(_failure_reply_for, ctx, verb)


def _failure_reply_for(failure: Failure, ctx: CommandContext, verb: str) -> Reply:
    if ctx.gone and not isinstance(failure.value, FTPError):
        # The client left mid-command and its session was torn down under the
        # handler; nobody will read this reply, and it is not a server fault.
        return replies.LOCAL_ERROR
    reply = failure_reply(failure)
    if isinstance(failure.value, REFUSALS):
        emit(ctx, "command_refused", command=verb, code=reply.code)
    return reply
