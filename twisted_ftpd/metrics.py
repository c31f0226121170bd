# -*- test-case-name: tests.test_metrics,tests.integration.test_metrics -*-
"""Prometheus metrics from the session events, named like ProFTPD's mod_prometheus.

``Metrics`` is a log observer of one server's events with a registry of its own
(not prometheus_client's global one), so servers in one process, as in tests,
never share counters. ``serve`` puts that registry on a Twisted endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sized
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import make_wsgi_app
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

from twisted_ftpd.events import KEY

PREFIX = "ftpd"
# From a directory listing to a DVD image over a slow line.
DURATION_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
REFUSAL_REASONS = ("max-connections", "max-connections-per-ip", "max-sessions", "banned")


def parse_endpoint(description: str) -> str:
    """``description`` if it is a server endpoint Twisted can parse (``tcp:9102``)."""
    try:
        serverFromString(None, description)  # parsing only: no reactor is touched
    except (ValueError, TypeError, KeyError, OSError) as e:  # OSError: ssl: key files
        raise ValueError(f"{description!r} is not a server endpoint ({e})") from None
    return description


class Metrics:
    """One server's metrics; call it with log events."""

    def __init__(self, sessions: Sized) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Counter(f"{PREFIX}_connections", "Control connections accepted.",
                                   registry=r)
        self.sessions = Gauge(f"{PREFIX}_sessions", "Control connections open now.",
                              registry=r)
        self.sessions.set_function(lambda: len(sessions))
        self.logins = Counter(f"{PREFIX}_logins", "Login attempts.", ["result"], registry=r)
        self.uploads = Counter(f"{PREFIX}_uploads", "Uploads (STOR, APPE, STOU).", ["result"],
                               registry=r)
        self.downloads = Counter(f"{PREFIX}_downloads", "Downloads (RETR).", ["result"],
                                 registry=r)
        self.bytes = Counter(f"{PREFIX}_transfer_bytes", "Bytes moved by uploads and downloads.",
                             ["direction"], registry=r)
        self.duration = Histogram(f"{PREFIX}_transfer_duration_seconds",
                                  "Upload and download times, from 150 to the final reply.",
                                  ["direction"], buckets=DURATION_BUCKETS, registry=r)
        self.bans = Counter(f"{PREFIX}_bans", "Client addresses banned.", registry=r)
        self.refused = Counter(f"{PREFIX}_refused", "Connections and logins refused by a "
                               "limit or a ban.", ["reason"], registry=r)
        # Every series exists from the start, at 0, so rate() and alerts see it.
        for result in ("ok", "failed"):
            for counter in (self.logins, self.uploads, self.downloads):
                counter.labels(result)
        for direction in ("upload", "download"):
            self.bytes.labels(direction)
            self.duration.labels(direction)
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "connect": lambda e: self.connections.inc(),
            "login": lambda e: self.logins.labels(e["result"]).inc(),
            "transfer": self._transfer,
            "ban": lambda e: self.bans.inc(),
            "refused": lambda e: self.refused.labels(e["reason"]).inc(),
        }

    def _transfer(self, event: dict[str, Any]) -> None:
        direction = event["direction"]
        counter = self.uploads if direction == "upload" else self.downloads
        counter.labels("ok" if event["completed"] else "failed").inc()
        self.bytes.labels(direction).inc(event["bytes"])
        self.duration.labels(direction).observe(event["seconds"])

    def __call__(self, event: dict[str, Any]) -> None:
        handler = self._handlers.get(event.get(KEY, ""))
        if handler is not None:
            handler(event)


def serve(reactor: Any, description: str, registry: CollectorRegistry) -> IListeningPort:
    """Serve ``registry`` over HTTP on the endpoint ``description``, listening now.

    This is prometheus_client's ``twisted.MetricsResource`` (its WSGI app in a
    WSGIResource), built with ``reactor`` instead: MetricsResource imports the
    global reactor, which would both install it too early and hand scrapes of a
    server on a private reactor (``testing.ServerThread``) to another reactor.
    """
    # Scrapes are not logged (Twisted's access log is on by default): one every 15 s
    # from Prometheus would bury the session events.
    site = Site(WSGIResource(reactor, reactor.getThreadPool(), make_wsgi_app(registry)),
                logPath=os.devnull, reactor=reactor)
    site.noisy = False  # the service logs where it serves metrics
    results: list[Any] = []
    # TCP and UNIX endpoints fire at once: an address in use stops the start-up.
    serverFromString(reactor, description).listen(site).addBoth(results.append)
    if not results:
        raise ValueError(f"--metrics {description!r} did not start listening at once")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]
