"""Run twisted-ftpd in the foreground, logging to stdout: ``python server.py --help``."""

from __future__ import annotations

import sys

from twisted.internet import defer, task
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.python import usage

from twisted_ftpd.config import Options
from twisted_ftpd.service import FTPService


def main(reactor, argv: list[str]) -> defer.Deferred:  # type: ignore[no-untyped-def]
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        print(f"{sys.argv[0]}: {e} (see --help)", file=sys.stderr)
        raise SystemExit(2) from None
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    server = FTPService(options.to_config(), reactor)
    try:
        server.startService()
    except Exception as e:
        print(f"{sys.argv[0]}: cannot start: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    return defer.Deferred()  # runs until the process is interrupted


if __name__ == "__main__":
    task.react(main, [sys.argv[1:]])
