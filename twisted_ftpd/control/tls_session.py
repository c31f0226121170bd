# -*- test-case-name: tests.test_control_security -*-
"""The control connection's FTPS state (RFC 4217): starting TLS with a context of the
login's own, the handshake deadline, and what protection data connections get.

A mixin of FTPControlProtocol, kept apart so the TLS rules read in one place.
"""

from __future__ import annotations

from twisted.logger import Logger

from twisted_ftpd.data.channel import DataTLS
from twisted_ftpd.tls import describe_tls_failure, start_tls

log = Logger()


class TLSSessionMixin:
    """Needs from its host: ``tls``, ``tls_options``, ``secure``, ``config``, ``session``,
    ``clock``, ``transport``, ``peer_host``, ``_queue``, ``_timers``, ``_handshake_timer``,
    ``_after_long_line`` and LineReceiver's ``clearLineBuffer``."""

    def start_tls(self) -> None:
        """Switch the control connection to TLS, with a context of this login's own.

        Anything the client sent in clear after AUTH is dropped unread, so no
        command can be smuggled in ahead of the handshake.
        """
        self._queue.clear()
        self.clearLineBuffer()
        self._after_long_line = b""
        self.tls_options = self.tls.context_factory()
        start_tls(self.transport, self.tls_options, True, self.clock)
        self._handshake_timer = self.clock.callLater(self.config.tls_handshake_timeout,
                                                     self._handshake_timed_out)
        self._timers.add(self._handshake_timer)

    def handshakeCompleted(self) -> None:
        self.secure = True
        timer = self._handshake_timer
        if timer is not None and timer.active():
            timer.cancel()
        self._timers.discard(timer)

    def tls_connection_lost(self, reason: object) -> None:
        """Log why a control connection's handshake failed, if it was under way."""
        if self.tls_options is not None and not self.secure and not self._handshake_expired:
            log.info("TLS handshake from {peer} failed: {why}", peer=self.peer_host,
                     why=describe_tls_failure(reason))

    def _handshake_timed_out(self) -> None:
        self._handshake_expired = True
        self._timers.discard(self._handshake_timer)
        log.info("TLS handshake from {peer} timed out", peer=self.peer_host)
        self.transport.abortConnection()

    @property
    def protection_required(self) -> bool:
        return self.config.tls_required or self.session.user_requires_tls

    def data_tls(self) -> DataTLS | None:
        """How the next data connection is secured: per PROT, with this login's context."""
        if self.session.prot != "P" or self.tls_options is None:
            return None
        return DataTLS(self.tls_options, self.config.tls_require_reuse, self.clock)
