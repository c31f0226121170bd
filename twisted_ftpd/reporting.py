# -*- test-case-name: tests.test_xferlog,tests.test_metrics -*-
"""A server's xferlog file and metrics endpoint, started and stopped with its service.

Both are opened before the server drops its privileges (the xferlog may belong
to root, like vsftpd's). The xferlog stays open until the last session has
ended, so transfers cut short by the shutdown still get their line.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.metrics import Metrics, serve
from twisted_ftpd.xferlog import XferLog

log = Logger()


class Reporting:
    """``factory`` is the server's FTPFactory: its ``events`` are observed, its
    ``sessions`` counted."""

    def __init__(self, config: ServerConfig, factory: Any, reactor: Any) -> None:
        self._factory = factory
        self._reactor = reactor
        self._metrics_endpoint = config.metrics
        self.xferlog = XferLog(config.xferlog) if config.xferlog else None
        self.metrics = Metrics(factory.sessions) if config.metrics else None
        self.metrics_port: IListeningPort | None = None
        self._started = False

    def start(self) -> None:
        """Open the xferlog and listen for scrapes; once, however often called."""
        if self._started:
            return
        try:
            if self.xferlog is not None:
                self.xferlog.open()
            if self.metrics is not None:
                assert self._metrics_endpoint is not None
                self.metrics_port = serve(self._reactor, self._metrics_endpoint,
                                          self.metrics.registry)
                address = self.metrics_port.getHost()
                log.info("twisted-ftpd metrics on {endpoint} (port {port})",
                         endpoint=self._metrics_endpoint, port=getattr(address, "port", "-"))
        except Exception:
            if self.xferlog is not None:
                self.xferlog.close()
            raise
        for observer in (self.xferlog, self.metrics):
            if observer is not None:
                self._factory.events.observe(observer)
        self._started = True

    def stop(self) -> defer.Deferred[None]:
        """Stop serving metrics (fires when the port is closed); the xferlog is
        closed once every session of the server has ended."""
        if not self._started:
            return defer.succeed(None)
        self._started = False
        port, self.metrics_port = self.metrics_port, None
        if self.metrics is not None:
            self._factory.events.stop_observing(self.metrics)
        if self.xferlog is not None:
            self._sessions_gone().addCallback(lambda _: self._close_xferlog())
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)

    def _sessions_gone(self) -> defer.Deferred[Any]:
        """Fires once every session has ended and its last command has settled (a
        transfer cut off by the close emits its event only then)."""
        waits = []
        for session in list(self._factory.sessions):
            gone: defer.Deferred[None] = defer.Deferred()
            session.on_lost.append(lambda _session, d=gone: d.called or d.callback(None))
            waits.append(gone.addCallback(lambda _, s=session: s.when_idle()))
        return defer.gatherResults(waits)

    def _close_xferlog(self) -> None:
        if self.xferlog is not None and not self._started:
            self._factory.events.stop_observing(self.xferlog)
            self.xferlog.close()
