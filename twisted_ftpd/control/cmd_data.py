# -*- test-case-name: tests.test_control_data -*-
"""Data-connection set-up and transfer parameters: PORT, EPRT, PASV, EPSV, TYPE, MODE,
STRU, REST.

Set-up only records how the next transfer will connect (a passive listener
opens at once, or as soon as a port of the range is free; an active dial waits
for the transfer). Every active target is checked against the control peer
before it is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from twisted_ftpd import proxy_protocol
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.connect import ActiveConnection, PassiveConnection
from twisted_ftpd.data.passive_range import PORT_WAIT, NoFreePort
from twisted_ftpd.protocol import addresses, replies
from twisted_ftpd.protocol.replies import Reply

from .context import CommandContext
from .dispatch import handles


def _active(ctx: CommandContext, host: str, port: int) -> Reply:
    addresses.check_active_target(host, port, ctx.peer_host)
    tls = ctx.tls.data_tls(ctx.session)
    ctx.data.set_pending(ActiveConnection(ctx.server.reactor, ctx.clock, ctx.config.data_timeout,
                                          host, port, ctx.local_host, tls=tls))
    return replies.PORT_OK


# Each passive range's ports, listed once (a process serves one range or a few):
# listing a range of thousands for every PASV showed in profiles of small downloads.
_PORT_CANDIDATES: dict[tuple[int, int] | None, Sequence[int]] = {}


def passive_candidates(config: ServerConfig) -> Sequence[int]:
    """``config.passive_port_candidates()``, remembered per range."""
    found = _PORT_CANDIDATES.get(config.passive_ports)
    if found is None:
        found = _PORT_CANDIDATES[config.passive_ports] = tuple(config.passive_port_candidates())
    return found


def _passive(ctx: CommandContext) -> PassiveConnection:
    pending = PassiveConnection(ctx.server.reactor, ctx.clock, ctx.config.data_timeout,
                                ctx.local_host, ctx.peer_host, passive_candidates(ctx.config),
                                tls=ctx.tls.data_tls(ctx.session),
                                proxy=proxy_protocol.passive_proxy(ctx.config, ctx.clock),
                                in_range=ctx.server.passive_range)
    ctx.data.set_pending(pending)
    return pending


Answer = Callable[[CommandContext, PassiveConnection], Reply]


def _listen_then(ctx: CommandContext, answer: Answer) -> Reply | Coroutine[Any, Any, Reply]:
    """``answer`` for a new passive listener; when every port of the range is held by
    this server's own listeners, once one of them has closed (data.passive_range)."""
    try:
        return answer(ctx, _passive(ctx))
    except NoFreePort:
        if not ctx.server.passive_range.held:
            raise
    ctx.data.set_pending(None)  # void either way, and its port may be the one wanted
    return _wait_for_a_port(ctx, answer)


async def _wait_for_a_port(ctx: CommandContext, answer: Answer) -> Reply:
    deadline = ctx.clock.seconds() + PORT_WAIT
    waited = False
    while True:
        try:
            return answer(ctx, _passive(ctx))
        except NoFreePort:
            left = deadline - ctx.clock.seconds()
            if left <= 0:
                raise
        # Woken, but another session took the port first: wait again, at the front.
        await ctx.wait(ctx.server.passive_range.wait(left, first=waited))
        waited = True


def _pasv_reply(ctx: CommandContext, pending: PassiveConnection) -> Reply:
    host = ctx.config.masquerade_address or pending.host
    return replies.PASSIVE(addresses.pasv_reply_address(host, pending.port_number))


def _epsv_reply(ctx: CommandContext, pending: PassiveConnection) -> Reply:
    return replies.EXTENDED_PASSIVE(pending.port_number)


@handles("PORT")
def ftp_port(ctx: CommandContext, arg: str) -> Reply:
    return _active(ctx, *addresses.parse_port(arg))


@handles("EPRT")
def ftp_eprt(ctx: CommandContext, arg: str) -> Reply:
    return _active(ctx, *addresses.parse_eprt(arg))


@handles("PASV")
def ftp_pasv(ctx: CommandContext, arg: str) -> Reply | Coroutine[Any, Any, Reply]:
    if addresses.is_ipv6(ctx.local_host):
        return replies.PASV_IPV6
    return _listen_then(ctx, _pasv_reply)


@handles("EPSV")
def ftp_epsv(ctx: CommandContext, arg: str) -> Reply | Coroutine[Any, Any, Reply]:
    word = arg.strip().upper()
    if word == "ALL":
        ctx.session.epsv_all = True
        return replies.EPSV_ALL_OK
    family = "2" if addresses.is_ipv6(ctx.local_host) else "1"
    if word not in ("", "1", "2"):
        return replies.PROTOCOL_NOT_SUPPORTED if word.isdigit() else replies.BAD_ARGUMENT
    if word and word != family:
        return replies.PROTOCOL_NOT_SUPPORTED
    return _listen_then(ctx, _epsv_reply)


@handles("TYPE")
def ftp_type(ctx: CommandContext, arg: str) -> Reply:
    words = arg.upper().split()
    if words in (["A"], ["A", "N"]):
        ctx.session.type = "A"
    elif words in (["I"], ["L", "8"], ["L8"]):
        ctx.session.type = "I"
    elif words and words[0] in ("A", "E", "L"):
        return replies.PARAM_NOT_IMPLEMENTED
    else:
        return replies.BAD_ARGUMENT
    return replies.TYPE_SET(ctx.session.type)


@handles("MODE")
def ftp_mode(ctx: CommandContext, arg: str) -> Reply:
    return _one_of(arg, "S", "BCZ", replies.MODE_SET)


@handles("STRU")
def ftp_stru(ctx: CommandContext, arg: str) -> Reply:
    return _one_of(arg, "F", "RP", replies.STRU_SET)


def _one_of(arg: str, served: str, known: str, ok: Reply) -> Reply:
    value = arg.strip().upper()
    if value == served:
        return ok
    if len(value) == 1 and value in known:
        return replies.PARAM_NOT_IMPLEMENTED
    return replies.BAD_ARGUMENT


@handles("REST")
def ftp_rest(ctx: CommandContext, arg: str) -> Reply:
    text = arg.strip()
    if not text.isdigit() or not text.isascii():
        return replies.BAD_ARGUMENT
    ctx.session.rest_offset = int(text)
    return replies.REST_OK(ctx.session.rest_offset)
