# -*- test-case-name: tests.test_listen -*-
"""Where the server listens: Twisted endpoint descriptions (``--listen``, as ``twistd web
--listen`` takes them) and the ``--port``/``--interface`` shorthand for them.

Only TCP endpoints are accepted (``tcp:``, ``tcp6:`` and sockets inherited from systemd):
FTP's data connections need an IP address on both ends, and FTPS is the server's own
TLS layer (``--implicit-tls-listen``), not a ``ssl:`` endpoint's. Each may sit behind
a load balancer's PROXY protocol: ``haproxy:tcp:21`` (``proxy_protocol``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

from twisted.internet import error
from twisted.internet.endpoints import (
    AdoptedStreamServerEndpoint,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import ServerFactory
from twisted.python import usage
from twisted.python.failure import Failure

__all__ = ["ListenError", "behind_proxy", "check_description", "check_options", "control_listeners",
           "describe", "endpoint", "implicit_listeners", "listen"]

_TCP_ENDPOINTS = ("tcp", "tcp6", "systemd")  # checked before parsing: ssl: would read files
PROXY_PREFIX = "haproxy"  # haproxy:tcp:21, as Twisted's own PROXY endpoints are spelled
_FAMILIES = {socket.AF_INET: "INET", socket.AF_INET6: "INET6"}


class ListenError(ValueError):
    """An endpoint description the server cannot listen on; the message says why."""


def check_description(description: str) -> str:
    """``description`` itself if the server could listen on it, else ListenError."""
    _parse(None, description)
    return description


def check_options(options: usage.Options) -> None:
    """The listening options make sense together (ValueError otherwise); each
    description was checked as it was given."""
    port_given = options["port"] != options.defaults["port"]
    if options["listen"] and (port_given or options["interface"]):
        raise ListenError("--listen replaces --port and --interface: give the port and the "
                          "address in its description (tcp:PORT:interface=ADDR)")
    if options["implicit-tls-listen"]:
        if options["implicit-tls-port"] is not None:
            raise ListenError("--implicit-tls-listen replaces --implicit-tls-port")
        if options["tls-cert"] is None:
            raise ListenError("--implicit-tls-listen needs --tls-cert")


def shorthand(port: int, interface: str) -> list[str]:
    """The descriptions ``--port``/``--interface`` stand for, to be tried in turn: with no
    interface, one dual-stack socket for IPv6 and IPv4, or IPv4 alone where the host has no
    IPv6."""
    if interface:
        return [f"tcp:{port}:interface={quoteStringArgument(interface)}"]
    return [f"tcp6:{port}:interface={quoteStringArgument('::')}", f"tcp:{port}"]


def control_listeners(listen: Sequence[str], port: int, interface: str) -> list[list[str]]:
    """One list of alternatives per listening socket of the control port."""
    return [[description] for description in listen] or [shorthand(port, interface)]


def implicit_listeners(listen: Sequence[str], port: int | None,
                       interface: str) -> list[list[str]]:
    """The same for implicit FTPS (none when neither option is given)."""
    if listen:
        return [[description] for description in listen]
    return [] if port is None else [shorthand(port, interface)]


def listen(reactor: Any, alternatives: Sequence[str], factory: ServerFactory) -> IListeningPort:
    """Listen now on the first of ``alternatives`` that can be bound; the last one's error
    otherwise."""
    for description in alternatives[:-1]:
        try:
            return _listen_now(_parse(reactor, description), factory, description)
        except error.CannotListenError:
            continue
    return _listen_now(_parse(reactor, alternatives[-1]), factory, alternatives[-1])


def endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """The endpoint for ``description``, checked as ``listen`` checks it (an inherited
    socket must be a listening TCP socket of the family named), without listening."""
    return _parse(reactor, description)


def describe(port: IListeningPort) -> str:
    """``127.0.0.1:21`` or ``[::]:21``, for the start-up log."""
    address = port.getHost()
    host = getattr(address, "host", str(address))
    return f"[{host}]:{address.port}" if ":" in host else f"{host}:{address.port}"


def _listen_now(endpoint: IStreamServerEndpoint, factory: ServerFactory,
                description: str) -> IListeningPort:
    # Endpoints answer with a Deferred; the TCP and adopted-socket ones fire it at once,
    # and the service needs the port bound before privileges are dropped, so wait no longer.
    results: list[Any] = []
    endpoint.listen(factory).addBoth(results.append)
    if not results:
        raise ListenError(f"{description!r} did not start listening at once")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def behind_proxy(description: str) -> tuple[str, bool]:
    """``haproxy:tcp:21`` is ``tcp:21`` behind the PROXY protocol: (``tcp:21``, True).
    The PROXY layer is the server's own (``proxy_protocol``), outside its TLS: the
    caller listens on the inner description with the PROXY layer's factory."""
    prefix, _, inner = description.partition(":")
    return (inner, True) if prefix == PROXY_PREFIX else (description, False)


def _parse(reactor: Any, description: str) -> IStreamServerEndpoint:
    inner, proxied = behind_proxy(description)
    if not proxied:
        return _parse_plain(reactor, description)
    if behind_proxy(inner)[1]:
        raise ListenError(f"{description!r}: one PROXY layer is enough")
    try:
        return _parse_plain(reactor, inner)
    except ListenError as e:
        raise ListenError(f"{description!r}: {str(e).removeprefix(f'{inner!r}: ')}") from None


# Twisted's default listen backlog (50) overflows when hundreds of clients connect
# at once: with 200 parallel curl sessions a third waited out the SYN-ACK retries
# (about 60 s) and were reset. 511 is what nginx and Redis ask for (the kernel caps
# it at net.core.somaxconn).
CONTROL_BACKLOG = 511


def with_backlog(description: str) -> str:
    """A ``tcp:``/``tcp6:`` description with ``backlog=`` added unless it names one."""
    if description.partition(":")[0] in ("tcp", "tcp6") and "backlog=" not in description:
        return f"{description}:backlog={CONTROL_BACKLOG}"
    return description


def _parse_plain(reactor: Any, description: str) -> IStreamServerEndpoint:
    prefix = description.partition(":")[0]
    if prefix not in _TCP_ENDPOINTS:
        raise ListenError(f"{description!r}: FTP is served on tcp:, tcp6: or systemd: "
                          f"endpoints, not {prefix!r} (FTPS comes from --tls-cert)")
    try:
        endpoint = serverFromString(reactor, with_backlog(description))
    except (IndexError, KeyError):
        # Only the systemd parser looks things up: an index or name systemd did not pass.
        raise ListenError(f"{description!r}: no such socket was passed by systemd "
                          "(LISTEN_FDS, LISTEN_FDNAMES)") from None
    except (ValueError, TypeError, AttributeError, OSError) as e:
        raise ListenError(f"{description!r}: {e}") from None
    if isinstance(endpoint, AdoptedStreamServerEndpoint):
        _check_inherited(endpoint, description)
    return endpoint


def _check_inherited(endpoint: AdoptedStreamServerEndpoint, description: str) -> None:
    """The inherited descriptor is a listening TCP socket of the family the description
    names (a mismatch would only show later, as odd addresses)."""
    try:
        with socket.socket(fileno=os.dup(endpoint.fileno)) as sock:
            family, kind = sock.family, sock.type
            accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as e:
        raise ListenError(f"{description!r}: descriptor {endpoint.fileno}: {e}") from None
    if kind != socket.SOCK_STREAM or not accepting or family not in _FAMILIES:
        raise ListenError(f"{description!r}: descriptor {endpoint.fileno} is not a "
                          "listening TCP socket")
    if family != endpoint.addressFamily:
        raise ListenError(f"{description!r}: descriptor {endpoint.fileno} is an "
                          f"{_FAMILIES[family]} socket (use domain={_FAMILIES[family]})")
