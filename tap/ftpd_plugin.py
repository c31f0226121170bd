"""twistd plugin: ``twistd ftpd``. Named by string so ``twistd --help`` stays cheap."""

from twisted.application.service import ServiceMaker

ftpd = ServiceMaker(
    "twisted-ftpd",
    "twisted_ftpd.service",
    "A production-grade FTP server.",
    "ftpd",
)
