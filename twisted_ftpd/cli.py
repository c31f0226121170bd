# -*- test-case-name: tests.integration.test_launchers -*-
"""The foreground launcher behind ``python server.py`` and the ``twisted-ftpd`` command."""

from __future__ import annotations

import sys

from twisted.internet import defer, task
from twisted.logger import globalLogBeginner
from twisted.python import usage

from twisted_ftpd.config import Options
from twisted_ftpd.logs import foreground_observer
from twisted_ftpd.service import FTPService


def _serve(reactor, argv: list[str]) -> defer.Deferred:  # type: ignore[no-untyped-def]
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        print(f"{sys.argv[0]}: {e} (see --help)", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        observer = foreground_observer(options["log-format"], options["log-file"])
    except OSError as e:
        print(f"{sys.argv[0]}: cannot open the log file: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    try:
        server = FTPService(options.to_config(), reactor)
        server.privilegedStartService()  # binds, then becomes --user
        server.startService()
    except Exception as e:
        print(f"{sys.argv[0]}: cannot start: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    server.force_on_signal = True  # a second Ctrl-C ends the shutdown grace period
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    return defer.Deferred()  # runs until the process is interrupted


def main(argv: list[str] | None = None) -> None:
    """Parse options, serve in the foreground, log to stdout (or --log-file); Ctrl-C stops."""
    task.react(_serve, [sys.argv[1:] if argv is None else argv])
