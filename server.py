"""Run twisted-ftpd in the foreground, logging to stdout: ``python server.py --help``."""

from twisted_ftpd.cli import main

if __name__ == "__main__":
    main()
