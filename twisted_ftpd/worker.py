# -*- test-case-name: tests.test_workers,tests.integration.test_workers -*-
"""One process of ``--workers N``: ``python -m twisted_ftpd.worker``, started by
``workers.py``, never by hand.

It serves FTP as a single server would (``FTPService``), on listening sockets it
inherits at descriptors 3, 4... the way systemd passes them, so the ordinary
``systemd:`` endpoints adopt them. Everything else comes from the parent on stdin: the
first line is the settings (``encode``), with the TLS certificate and key the parent
read before it dropped its privileges; after it, ``stop`` stops this worker cleanly
(``--shutdown-grace``), ``force`` ends that grace, and the end of stdin (the parent
died) is a ``stop``. The log goes to stdout as JSON lines, which the parent writes to
the one log of the server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

# Nothing of Twisted at import: its systemd support reads LISTEN_PID when
# twisted.internet.endpoints is first imported, and main() must set it before that.
if TYPE_CHECKING:
    from twisted.internet import defer

    from twisted_ftpd.config import ServerConfig
    from twisted_ftpd.service import FTPService
    from twisted_ftpd.tls import TLSCredentials

__all__ = ["READY", "decode", "encode", "main"]

READY = "ftpd_worker_ready"  # the key of the event that says a worker serves


def encode(config: ServerConfig, tls_pem: tuple[str, str] | None) -> bytes:
    """The settings line for a worker: ``config`` and the certificate and key text."""
    return json.dumps({"config": dataclasses.asdict(config), "tls": tls_pem}).encode() + b"\n"


def decode(line: bytes) -> tuple[ServerConfig, TLSCredentials | None]:
    """The settings ``encode`` wrote (JSON lists back to the config's tuples)."""
    from twisted_ftpd.config import ServerConfig
    from twisted_ftpd.tls import TLSCredentials

    spec = json.loads(line)
    fields = {name: tuple(value) if isinstance(value, list) else value
              for name, value in spec["config"].items()}
    config = ServerConfig(**fields)
    tls = None
    if spec["tls"] is not None:
        cert_text, key_text = spec["tls"]
        tls = TLSCredentials.from_pem(cert_text, key_text, config.tls_cert or "certificate",
                                      config.tls_key)
    return config, tls


def _stop(reactor: Any) -> None:
    from twisted.internet import error

    try:
        reactor.stop()
    except error.ReactorNotRunning:  # already stopping: a second request changes nothing
        pass


class _Commands:
    """Reads the parent's commands from stdin on the reactor (an IReadDescriptor: a
    thread blocked in a read would trip up the interpreter's exit)."""

    def __init__(self, reactor: Any, server: FTPService) -> None:
        self.reactor = reactor
        self.server = server
        self._buffer = b""

    def fileno(self) -> int:
        return 0

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "worker-commands"

    def doRead(self) -> object:  # noqa: N802
        from twisted.internet.main import CONNECTION_DONE

        data = os.read(0, 4096)
        if not data:
            return CONNECTION_DONE
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            if line.strip() == b"stop":
                _stop(self.reactor)
            elif line.strip() == b"force" and self.server.shutdown is not None:
                self.server.shutdown.force()
        return None

    def connectionLost(self, reason: object) -> None:  # noqa: N802 - the parent is gone
        self.reactor.removeReader(self)
        _stop(self.reactor)


def _serve(reactor: Any, settings: bytes) -> defer.Deferred[None]:
    from twisted.internet import defer
    from twisted.logger import Logger, globalLogBeginner

    from twisted_ftpd.logs import file_observer
    from twisted_ftpd.service import FTPService

    log = Logger()
    globalLogBeginner.beginLoggingTo([file_observer(sys.stdout, "json")],
                                     redirectStandardIO=False)
    try:
        config, tls = decode(settings)
        server = FTPService(config, reactor, tls=tls)
        server.privilegedStartService()  # adopts the inherited sockets
        server.startService()
    except Exception as e:
        log.critical("worker cannot start: {error}", error=e)
        raise SystemExit(1) from None
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    # SIGTERM sent to this worker alone stops it cleanly (the parent then starts another);
    # the end of the grace comes only from the parent, so a signal to the whole process
    # group (systemd, Ctrl-C) and the parent's own "stop" are not taken as two requests.
    reactor.callWhenRunning(signal.signal, signal.SIGTERM,  # after Twisted's own handler
                            lambda signum, frame: reactor.callFromThread(_stop, reactor))
    reactor.addReader(_Commands(reactor, server))
    log.info("worker {pid} ready", pid=os.getpid(), **{READY: True})
    return defer.Deferred()  # until the parent says stop


def main() -> None:
    # Ctrl-C reaches the whole process group; the parent passes it on as "stop".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["LISTEN_PID"] = str(os.getpid())  # the sockets at 3, 4... are for us
    settings = sys.stdin.buffer.readline()
    if not settings:
        raise SystemExit("twisted_ftpd.worker is started by twisted-ftpd --workers, not by hand")
    from twisted.internet import task

    task.react(_serve, [settings])


if __name__ == "__main__":
    main()
