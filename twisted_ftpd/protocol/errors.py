"""Errors that carry their FTP reply, and the one place OSErrors become them.

Handlers, shells and the address codecs raise (or fail Deferreds with) these;
the dispatcher turns any of them into a reply, so no handler formats error text
itself. Every FTPError subclass is defined here, beside the reply table it
draws on; like the rest of ``protocol/`` it needs only the standard library.
"""

from __future__ import annotations

import errno

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.replies import Reply


class FTPError(Exception):
    """An error with a ready reply; ``template`` is filled with the exception args."""

    template: Reply = replies.LOCAL_ERROR

    def reply(self) -> Reply:
        """The template, with the exception's arguments in its ``{}`` fields if it has any."""
        if "{}" not in self.template.text:
            return self.template
        return self.template(*self.args)


class FileNotFound(FTPError):
    template = replies.FILE_UNAVAILABLE


class PermissionDenied(FTPError):
    template = replies.PERMISSION_DENIED


class IsADirectory(FTPError):
    template = replies.IS_A_DIRECTORY


class NotADirectory(FTPError):
    template = replies.NOT_A_DIRECTORY


class NotAPlainFile(FTPError):
    template = replies.NOT_A_PLAIN_FILE


class FileExists(FTPError):
    template = replies.FILE_EXISTS


class DirectoryNotEmpty(FTPError):
    template = replies.DIRECTORY_NOT_EMPTY


class InvalidPath(FTPError):
    """A name that cannot exist: NUL bytes, undecodable bytes, or outside the root."""

    template = replies.INVALID_PATH


class LocalError(FTPError):
    """An unexpected filesystem failure; the detail goes to the log, not the client."""

    template = replies.LOCAL_ERROR


class InsufficientStorage(FTPError):
    """The disk or the user's quota is full (452)."""

    template = replies.INSUFFICIENT_STORAGE


class QuotaExceeded(FTPError):
    """The upload would take the home past its ``quota=`` bytes (552)."""

    template = replies.QUOTA_EXCEEDED


class FileQuotaExceeded(FTPError):
    """A new file would take the home past its ``quota_files=`` (552)."""

    template = replies.FILE_QUOTA_EXCEEDED


class UploadRejected(FTPError):
    """``--upload-check`` refused the upload; args: the path, the reason (550)."""

    template = replies.UPLOAD_REJECTED


class InPlaceWhileChecked(FTPError):
    """APPE or REST+STOR into an existing file while uploads are checked (550);
    args: the path, the command."""

    template = replies.IN_PLACE_WHILE_CHECKED


class StoreCannot(FTPError):
    """Object storage cannot do this (MFMT, SITE CHMOD, renaming a full directory);
    args: the path, the reason (550)."""

    template = replies.STORE_CANNOT


class StoreDenied(FTPError):
    """The object store refused the server's credentials for this key (550)."""

    template = replies.STORE_DENIED


class StoreNoBucket(FTPError):
    """The user's bucket does not exist (550)."""

    template = replies.STORE_NO_BUCKET


class StoreBusy(FTPError):
    """The object store throttled the request (451: try again later)."""

    template = replies.STORE_BUSY


class StoreUnreachable(FTPError):
    """The object store did not answer (451; the session goes on)."""

    template = replies.STORE_UNREACHABLE


class DataConnectionError(FTPError):
    """The data connection could not be opened (425)."""

    template = replies.CANT_OPEN_DATA


class TLSSessionNotReused(FTPError):
    """A protected data connection did not resume the login's TLS session (522)."""

    template = replies.TLS_REUSE_REQUIRED


class ProtectionRequired(FTPError):
    """Policy demands PROT P before any data connection (521, RFC 4217)."""

    template = replies.PROT_REQUIRED


class TransferAborted(FTPError):
    """The data connection broke during a transfer (426)."""

    template = replies.TRANSFER_ABORTED


class RestartPastEnd(FTPError):
    """REST pointed beyond the end of the file (554, RFC 3659)."""

    template = replies.INVALID_REST


class HomeUnavailable(FTPError):
    """The user's home directory is missing or unusable; login cannot finish (530)."""

    template = replies.HOME_UNAVAILABLE


class UsersUnavailable(FTPError):
    """The user database (PostgreSQL) cannot be reached: no new login now (421)."""

    template = replies.USERS_UNAVAILABLE


class QuotaUnknown(FTPError):
    """An upload while the user database is down: its quota cannot be read (451)."""

    template = replies.QUOTA_UNKNOWN


class TooManySessions(FTPError):
    """The user already has as many sessions as users.db allows (``max_sessions``)."""

    template = replies.TOO_MANY_SESSIONS


class AddressError(FTPError):
    """A malformed PORT/EPRT address argument (501)."""

    template = replies.BAD_ARGUMENT


class ForeignAddress(AddressError):
    """An active data connection to a host other than the control peer (FTP bounce)."""

    template = replies.FOREIGN_ADDRESS


class PrivilegedPort(AddressError):
    """An active data connection to a port below 1024."""

    template = replies.PRIVILEGED_PORT


class UnsupportedProtocol(AddressError):
    """An EPRT network protocol other than 1 (IPv4) or 2 (IPv6) (522)."""

    template = replies.PROTOCOL_NOT_SUPPORTED


_ERRNO_MAP: dict[int, type[FTPError]] = {
    errno.ENOENT: FileNotFound,
    errno.ENOTDIR: NotADirectory,
    errno.EISDIR: IsADirectory,
    errno.EEXIST: FileExists,
    errno.ENOTEMPTY: DirectoryNotEmpty,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: PermissionDenied,
    errno.ELOOP: FileNotFound,
    errno.ENAMETOOLONG: InvalidPath,
    errno.EINVAL: InvalidPath,
    errno.ENOSPC: InsufficientStorage,
    errno.EDQUOT: InsufficientStorage,
}


def from_oserror(error: OSError, path: str) -> FTPError:
    """Map an OSError to the FTP error a client should see for ``path``."""
    cls = _ERRNO_MAP.get(error.errno or 0, LocalError)
    return cls(path)
