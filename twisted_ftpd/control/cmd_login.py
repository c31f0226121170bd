# -*- test-case-name: tests.test_control_login -*-
"""USER, PASS, REIN, QUIT: getting in and out of a session.

Passwords are checked through the cred portal (the checker hashes in a thread).
A failed login is answered only after a delay on the injected clock, and
repeated failures close the connection, which slows down password guessing
without blocking anyone else.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_ftpd.auth.checker import ClientCredentials
from twisted_ftpd.auth.pool import LoginsBusy
from twisted_ftpd.auth.realm import LoginMind
from twisted_ftpd.auth.userdb import ANONYMOUS_NAMES
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.throttle import SessionRates
from twisted_ftpd.interfaces import IFTPShell
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.errors import HomeUnavailable, TooManySessions, UsersUnavailable
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Event

from . import session_log
from .context import CommandContext
from .dispatch import handles
from .limits import refuse

log = Logger()


@handles("USER")
def ftp_user(ctx: CommandContext, arg: str) -> Reply | Deferred[Reply | None]:
    """Only a server with FTPS, but not for everyone, reads the user's record here (for
    its ``tls=required``); otherwise USER is answered at once."""
    if ctx.tls.configured and not ctx.config.tls_required:
        return _user_options(ctx, arg).addCallbacks(
            lambda options: _accept_user(ctx, arg, options.get("tls") == "required"),
            _users_unavailable, errbackArgs=(ctx,))
    return _accept_user(ctx, arg, ctx.tls.configured)


def _users_unavailable(failure: Failure, ctx: CommandContext) -> None:
    """The user database is down (logged there): come back later."""
    failure.trap(UsersUnavailable)
    ctx.close_after(failure.value.reply())


def _accept_user(ctx: CommandContext, arg: str, requires_tls: bool) -> Reply:
    session = ctx.session
    if requires_tls and not ctx.tls.secure:
        session_log.emit(ctx, "command_refused", command="USER", code=replies.TLS_REQUIRED.code)
        return replies.TLS_REQUIRED
    session.fire(Event.USER)
    session.user_requires_tls = requires_tls
    session.user = arg
    if arg.lower() in ANONYMOUS_NAMES:
        return replies.NEED_ANON_PASSWORD
    return replies.NEED_PASSWORD(arg)


def _user_options(ctx: CommandContext, name: str) -> Deferred[dict[str, str]]:
    """The ``key=value`` options of the user's users.db line ({} without a user file)."""
    if ctx.server.lookup_user is None:
        return succeed({})
    looked_up = ctx.server.lookup_user("anonymous" if name.lower() in ANONYMOUS_NAMES else name)
    return looked_up.addCallback(lambda record: dict(record.options) if record else {})


# PASS is a chain of callbacks, not a coroutine: when the login is decided on the
# reactor (anonymous, a remembered password: auth.checker) every link has fired
# already and the login runs straight through; a coroutine's machinery was a third
# of such a login's cost. Refusals, which wait out the login delay, are coroutines.
@handles("PASS")
def ftp_pass(ctx: CommandContext, arg: str) -> Deferred[Reply | None]:
    session = ctx.session
    session.fire(Event.PASS)  # the table let PASS through only after USER
    name = session.user.lower() if session.user.lower() in ANONYMOUS_NAMES else session.user
    # Banned since it connected: check nothing.
    return ctx.server.limits.banned(ctx.peer_host).addCallback(_check, ctx, name, arg)


def _check(banned: bool, ctx: CommandContext, name: str, password: str,
           ) -> Reply | Deferred[Reply | None]:
    if banned:
        return refuse(ctx, "banned", replies.ADDRESS_BANNED)
    credentials = ClientCredentials(name.encode("utf-8", "surrogateescape"),
                                    password.encode("utf-8", "surrogateescape"), ctx.peer_host)
    mind = LoginMind()  # the realm hands back the record the check read
    return ctx.server.portal.login(credentials, mind, IFTPShell).addCallbacks(
        _logged_in, lambda failure: Deferred.fromCoroutine(_refused(ctx, failure)),
        callbackArgs=(ctx, mind))


def _logged_in(avatar: tuple[Any, Any, Callable[[], None]], ctx: CommandContext,
               mind: LoginMind) -> Reply | None:
    _, shell, logout = avatar
    options = mind.record.options if mind.record is not None else {}  # this login's rates
    if ctx.gone:  # the client left while its password was checked
        logout()
        return None
    session = ctx.session
    session.fire(Event.LOGIN_OK)
    session.failed_logins = 0
    ctx.shell, ctx.logout = shell, logout
    ctx.data.rates = SessionRates(ctx.clock, ctx.config.max_download_rate,
                                  ctx.config.max_upload_rate, options)
    session_log.login(ctx, "ok")
    return replies.LOGGED_IN


async def _refused(ctx: CommandContext, failure: Failure) -> Reply | None:
    try:
        failure.raiseException()
    except UnauthorizedLogin:  # a wrong password or an unknown user: counted per address
        return await _login_failed(ctx, replies.LOGIN_INCORRECT, counted=True)
    except LoginsBusy:  # after the delay too, or a refused client would just loop faster
        await ctx.sleep(login_delay(ctx.config))
        ctx.close_after(replies.LOGINS_BUSY)
        return None
    except TooManySessions as e:
        return refuse(ctx, "max-sessions", e.reply())
    except HomeUnavailable:
        return await _login_failed(ctx, replies.HOME_UNAVAILABLE)
    except UsersUnavailable as e:  # the user database is down (logged there): not a failure
        ctx.close_after(e.reply())
        return None
    except Exception:
        log.failure("Login for {user!r} failed unexpectedly", user=ctx.session.user)
        return await _login_failed(ctx, replies.LOGIN_INCORRECT)
    raise AssertionError("a failure always raises")


def login_delay(config: ServerConfig, factor: float = 1) -> float:
    """How long this failed login waits for its answer (see login_delay_spread)."""
    spread = config.login_delay_spread
    return config.login_delay * factor * (1 + spread * (2 * random.random() - 1))


async def _login_failed(ctx: CommandContext, reply: Reply, counted: bool = False,
                        ) -> Reply | None:
    """Answer a failed login after the delay; ``counted`` failures also count against
    the client's address: the delay grows, then the address is banned (421)."""
    session = ctx.session
    session_log.login(ctx, "failed")
    session.failed_logins += 1
    session.fire(Event.LOGIN_FAILED)
    session.reset()
    verdict = await ctx.server.limits.failure(ctx.peer_host) if counted else None
    if verdict is not None and verdict.banned:
        ctx.close_after(replies.ADDRESS_BANNED)
        return None
    await ctx.sleep(login_delay(ctx.config, verdict.delay_factor if verdict else 1))
    if session.failed_logins >= ctx.config.max_login_failures:
        ctx.close_after(reply)
        return None
    return reply


@handles("REIN")
def ftp_rein(ctx: CommandContext, arg: str) -> Reply:
    ctx.data.close()
    ctx.end_login()
    ctx.session.fire(Event.REIN)
    return replies.REIN_OK


@handles("QUIT")
def ftp_quit(ctx: CommandContext, arg: str) -> None:
    ctx.data.close()
    ctx.close_after(replies.GOODBYE)
