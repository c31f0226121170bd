# -*- test-case-name: tests.test_control_security -*-
"""The control connection's FTPS state (RFC 4217): whether TLS is configured, started
and done, the handshake deadline, and what protection data connections get.

Each login starts TLS with a context of its own, which is what lets a protected
data connection prove it belongs to *this* login: it must resume that context's
session.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.data.channel import DataTLS
from twisted_ftpd.protocol.session import Session
from twisted_ftpd.tls import TLSCredentials, describe_tls_failure, start_tls

from .timers import SessionTimers

log = Logger()


class ControlTLS:
    def __init__(self, credentials: TLSCredentials | None, config: ServerConfig,
                 timers: SessionTimers) -> None:
        self.credentials = credentials  # None: FTPS is not configured
        self.options: CertificateOptions | None = None  # this login's context, once started
        self.secure = False  # the handshake is done
        self._config = config
        self._timers = timers
        self._deadline: IDelayedCall | None = None
        self._expired = False

    @property
    def configured(self) -> bool:
        return self.credentials is not None

    @property
    def started(self) -> bool:
        return self.options is not None

    def start(self, transport: Any, peer: str) -> None:
        """Switch the connection to TLS, with a context of this login's own; a client
        that does not finish the handshake in time is dropped."""
        assert self.credentials is not None
        self.options = self.credentials.context_factory()
        start_tls(transport, self.options, True, self._timers.clock)
        self._deadline = self._timers.later(self._config.tls_handshake_timeout,
                                            self._expire, transport, peer)

    @property
    def deadline(self) -> IDelayedCall | None:
        """The handshake's deadline while it runs."""
        deadline = self._deadline
        return deadline if deadline is not None and deadline.active() else None

    def _expire(self, transport: Any, peer: str) -> None:
        self._expired = True
        log.info("TLS handshake from {peer} timed out", peer=peer)
        transport.abortConnection()

    def handshake_completed(self) -> None:
        self.secure = True
        self._timers.cancel(self._deadline)

    def connection_lost(self, reason: object, peer: str) -> None:
        """Log why the handshake failed, if one was under way."""
        if self.started and not self.secure and not self._expired:
            log.info("TLS handshake from {peer} failed: {why}", peer=peer,
                     why=describe_tls_failure(reason))

    def protection_required(self, session: Session) -> bool:
        return self._config.tls_required or session.user_requires_tls

    def data_tls(self, session: Session) -> DataTLS | None:
        """How the next data connection is secured: per PROT, with this login's context."""
        if session.prot != "P" or self.options is None:
            return None
        return DataTLS(self.options, self._config.tls_require_reuse, self._timers.clock)
