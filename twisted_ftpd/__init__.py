"""twisted-ftpd: a production-grade FTP server built on Twisted."""

__version__ = "0.1.0"
