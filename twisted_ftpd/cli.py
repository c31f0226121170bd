# -*- test-case-name: tests.integration.test_launchers -*-
"""The foreground launcher behind ``python server.py`` and the ``twisted-ftpd`` command,
whose ``users`` and ``cert`` sub-commands run the user and certificate tools."""

from __future__ import annotations

import importlib
import sys

from twisted.internet import defer, task
from twisted.logger import globalLogBeginner
from twisted.python import usage

from twisted_ftpd.config import Options
from twisted_ftpd.logs import foreground_observer
from twisted_ftpd.workers import WorkerPool, make_server


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
        server = make_server(options.to_config(), reactor)
        server.privilegedStartService()  # binds, then becomes --user
        server.startService()
    except Exception as e:
        print(f"{sys.argv[0]}: cannot start: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    server.force_on_signal = True  # a second Ctrl-C ends the shutdown grace period
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    if isinstance(server, WorkerPool):
        return server.failed  # fails (exit status 1) when the workers keep dying
    return defer.Deferred()  # runs until the process is interrupted


# ``twisted-ftpd NAME ...`` runs the tool in this module (its ``main(argv, prog)``).
SUBCOMMANDS = {"users": "twisted_ftpd.users", "cert": "twisted_ftpd.cert"}


def main(argv: list[str] | None = None) -> None:
    """``twisted-ftpd users ...`` and ``twisted-ftpd cert ...`` run those tools; anything
    else serves in the foreground, logging to stdout (or --log-file); Ctrl-C stops."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        tool = importlib.import_module(SUBCOMMANDS[args[0]])
        raise SystemExit(tool.main(args[1:], prog=f"twisted-ftpd {args[0]}"))
    task.react(_serve, [args])
