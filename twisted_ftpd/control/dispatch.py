# -*- test-case-name: tests.test_control_gating,tests.test_control_table -*-
"""From a parsed command to a reply: table gating, the handler call, errors to replies.

Handlers register with ``@handles``; they return a Reply, or a coroutine or
Deferred of one, and raise FTPErrors for failures. Everything generic (unknown
verb, login needed, argument shape, permission letter, unexpected exceptions)
is decided here, once, from ``protocol.commands.COMMANDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import COMMANDS, Arg, CommandSpec
from twisted_ftpd.protocol.errors import FTPError
from twisted_ftpd.protocol.parser import Command
from twisted_ftpd.protocol.replies import Reply

from .context import CommandContext

log = Logger()

HandlerResult = Reply | None | defer.Deferred | Coroutine[Any, Any, Reply | None]
Handler = Callable[[CommandContext, str], HandlerResult]
HANDLERS: dict[str, Handler] = {}


def handles(*verbs: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``verbs``; each must be in the command table."""

    def register(func: Handler) -> Handler:
        for verb in verbs:
            if verb not in COMMANDS:
                raise KeyError(f"{verb} is not in the command table")
            HANDLERS[verb] = func
        return func

    return register


def gate(spec: CommandSpec | None, command: Command, logged_in: bool,
         permissions: str) -> Reply | None:
    """The refusal a command gets before its handler runs, or None to run it."""
    if spec is None:
        return replies.SYNTAX_ERROR
    if spec.login and not logged_in:
        return replies.NOT_LOGGED_IN
    if not spec.implemented or spec.verb not in HANDLERS:
        return replies.NOT_IMPLEMENTED(spec.verb)
    has_arg = command.arg.strip() != ""
    if spec.arg is Arg.REQUIRED and not has_arg:
        return replies.ARG_REQUIRED(spec.verb)
    if spec.arg is Arg.NONE and has_arg:
        return replies.NO_ARGUMENT(spec.verb)
    if spec.perm and spec.perm not in permissions:
        return replies.PERMISSION_DENIED
    return None


def failure_reply(failure: Failure) -> Reply:
    """The reply for a handler that failed: its own for FTPErrors, 451 for bugs."""
    if isinstance(failure.value, FTPError):
        return failure.value.reply()
    log.failure("Command handler failed", failure)
    return replies.LOCAL_ERROR


def run(ctx: CommandContext, command: Command) -> defer.Deferred[Reply | None]:
    """Gate and run one command; the Deferred fires with the final reply (never fails)."""
    if command.verb != "RNTO":
        ctx.session.rename_from = None  # RNTO must come right after RNFR
    spec = COMMANDS.get(command.verb)
    refusal = gate(spec, command, ctx.session.logged_in, ctx.permissions)
    if refusal is not None:
        return defer.succeed(refusal)
    handler = HANDLERS[command.verb]
    try:
        result = handler(ctx, command.arg)
    except Exception:
        return defer.succeed(failure_reply(Failure()))
    if isinstance(result, Coroutine):
        result = defer.Deferred.fromCoroutine(result)
    return defer.maybeDeferred(lambda: result).addErrback(_failure_reply_for, ctx)


def _failure_reply_for(failure: Failure, ctx: CommandContext) -> Reply:
    if ctx.gone and not isinstance(failure.value, FTPError):
        # The client left mid-command and its session was torn down under the
        # handler; nobody will read this reply, and it is not a server fault.
        return replies.LOCAL_ERROR
    return failure_reply(failure)
