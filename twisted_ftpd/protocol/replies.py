"""Every reply the server sends: code and text in one table, plus wire rendering.

Handlers never write reply text themselves; they return (or raise an error that
carries) one of these constants, formatted with arguments where the text has
``{}`` fields. One table keeps codes consistent and lets a test prove every
entry is well formed (RFC 959 section 4.2).
"""

from __future__ import annotations

from typing import NamedTuple


class Reply(NamedTuple):
    """A reply code and its text; calling it fills the text's ``{}`` fields."""

    code: int
    text: str

    def __call__(self, *args: object) -> Reply:
        return Reply(self.code, self.text.format(*args))

    def render(self) -> bytes:
        """Encode for the wire; several lines become an RFC 959 multi-line reply."""
        text = self.text
        if "\n" not in text and "\r" not in text:  # most replies: one line
            return f"{self.code} {text}\r\n".encode("utf-8", "replace")
        lines = text.split("\n")
        out = [f"{self.code}-{lines[0]}"] if len(lines) > 1 else []
        # Middle lines indented by a space go out bare (FEAT and HELP entries,
        # RFC 2389); any other gets the "code-" prefix so it cannot end the reply.
        out += [line if line.startswith(" ") else f"{self.code}-{line}" for line in lines[1:-1]]
        out.append(f"{self.code} {lines[-1]}")
        # Replies are always valid UTF-8: bytes a client sent that were not UTF-8
        # (kept as surrogates) come back as "?" rather than breaking its decoder.
        return "".join(line.replace("\r", "") + "\r\n" for line in out).encode(
            "utf-8", "replace"
        )


def quote_path(path: str) -> str:
    """Quote a path for 257 replies: embedded double quotes are doubled (RFC 959)."""
    return '"' + path.replace('"', '""') + '"'


# 1xx: preliminary
DATA_OPEN_TRANSFER = Reply(150, "Opening {} mode data connection for {}.")
UNIQUE_FILE = Reply(150, "FILE: {}")

# 2xx: completion
OK = Reply(200, "{}")
TYPE_SET = Reply(200, "Type set to {}.")
MODE_SET = Reply(200, "Mode set to S.")
STRU_SET = Reply(200, "Structure set to F.")
PORT_OK = Reply(200, "Active data connection established.")
EPSV_ALL_OK = Reply(200, "EPSV ALL accepted.")
UTF8_ON = Reply(200, "Always in UTF8 mode.")
PBSZ_OK = Reply(200, "PBSZ=0")
PROT_OK = Reply(200, "Protection level set to {}.")
NOOP_OK = Reply(200, "NOOP ok.")
SITE_CHMOD_OK = Reply(200, "SITE CHMOD successful.")
ALLO_OK = Reply(202, "No storage allocation necessary.")
STATUS = Reply(211, "{}")
FEATURES = Reply(211, "Features:\n{}\nEnd")
FILE_STATUS = Reply(213, "{}")
HELP = Reply(214, "{}")
SYSTEM = Reply(215, "UNIX Type: L8")
SERVICE_READY = Reply(220, "{}")
HOST_OK = Reply(220, "Host accepted.")
GOODBYE = Reply(221, "Goodbye.")
ABOR_NOTHING = Reply(225, "No transfer to abort.")
TRANSFER_COMPLETE = Reply(226, "Transfer complete.")
ABOR_OK = Reply(226, "ABOR successful; data connection closed.")
TRANSFER_STATUS = Reply(213, "Status: {} bytes transferred.")
PASSIVE = Reply(227, "Entering Passive Mode ({}).")
EXTENDED_PASSIVE = Reply(229, "Entering Extended Passive Mode (|||{}|).")
LOGGED_IN = Reply(230, "Login successful.")
AUTH_OK = Reply(234, "AUTH {} successful; starting TLS.")
REIN_OK = Reply(220, "Session reset; send USER.")
FILE_ACTION_OK = Reply(250, "{}")
CWD_OK = Reply(250, "Directory changed to {}.")
DELE_OK = Reply(250, "File removed.")
RMD_OK = Reply(250, "Directory removed.")
RNTO_OK = Reply(250, "Rename successful.")
PATH_CREATED = Reply(257, "{} created.")
CURRENT_DIR = Reply(257, "{} is the current directory.")

# 3xx: intermediate
NEED_PASSWORD = Reply(331, "Password required for {}.")
NEED_ANON_PASSWORD = Reply(331, "Anonymous login ok, send your e-mail address as password.")
RNFR_OK = Reply(350, "Ready for destination name.")
REST_OK = Reply(350, "Restarting at {}. Send STOR or RETR.")

# 4xx: transient failure
SERVICE_CLOSING = Reply(421, "{}")
TOO_MANY_CONNECTIONS = Reply(421, "Too many connected users; try again later.")
TOO_MANY_FROM_ADDRESS = Reply(421, "Too many connections from your address; try again later.")
TOO_MANY_SESSIONS = Reply(421, "Too many sessions for {}; try again later.")
ADDRESS_BANNED = Reply(421, "Too many failed logins from your address; try again later.")
LOGINS_BUSY = Reply(421, "Too many logins in progress; try again later.")
USERS_UNAVAILABLE = Reply(421, "User database unavailable; try again later.")
CANT_OPEN_DATA = Reply(425, "Can't open data connection: {}")
TRANSFER_ABORTED = Reply(426, "Connection closed; transfer aborted.")
LOCAL_ERROR = Reply(451, "Requested action aborted: local error in processing.")
QUOTA_UNKNOWN = Reply(451, "User database unavailable, so the quota is unknown; try again later.")
INSUFFICIENT_STORAGE = Reply(452, "Insufficient storage space.")
STORE_BUSY = Reply(451, "{}: the storage is busy (throttled); try again later.")
STORE_UNREACHABLE = Reply(451, "{}: the storage cannot be reached; try again later.")
PASV_IPV6 = Reply(425, "PASV is IPv4 only; use EPSV on this connection.")

# 5xx: permanent failure
SYNTAX_ERROR = Reply(500, "Syntax error, command unrecognized.")
LINE_TOO_LONG = Reply(500, "Command line too long.")
BAD_ARGUMENT = Reply(501, "Syntax error in parameters or arguments.")
ARG_REQUIRED = Reply(501, "{} needs an argument.")
NO_ARGUMENT = Reply(501, "{} takes no argument.")
BAD_ENCODING = Reply(501, "Path name is not valid UTF-8.")
FOREIGN_ADDRESS = Reply(501, "Data connection to a foreign address refused.")
NOT_IMPLEMENTED = Reply(502, "{} not implemented.")
BAD_SEQUENCE = Reply(503, "Bad sequence of commands.")
USER_FIRST = Reply(503, "Login with USER first.")
RNFR_FIRST = Reply(503, "RNFR required first.")
ALREADY_LOGGED_IN = Reply(503, "Already logged in.")
ALREADY_SECURE = Reply(503, "TLS is already active.")
AUTH_FIRST = Reply(503, "Send AUTH TLS first.")
PBSZ_FIRST = Reply(503, "Send PBSZ 0 first.")
HOST_TOO_LATE = Reply(503, "HOST must come before USER.")
EPSV_ALL_REFUSED = Reply(503, "EPSV ALL is in effect; only EPSV may set up data connections.")
PARAM_NOT_IMPLEMENTED = Reply(504, "Command not implemented for that parameter.")
PRIVILEGED_PORT = Reply(504, "Data connection to a privileged port refused.")
NOT_LOGGED_IN = Reply(530, "Please login with USER and PASS.")
LOGIN_INCORRECT = Reply(530, "Login incorrect.")
HOME_UNAVAILABLE = Reply(530, "Home directory not available.")
PROTOCOL_NOT_SUPPORTED = Reply(522, "Network protocol not supported, use (1,2).")
FILE_UNAVAILABLE = Reply(550, "{}: No such file or directory.")
PERMISSION_DENIED = Reply(550, "Permission denied.")
SIZE_IN_ASCII = Reply(550, "SIZE not allowed in ASCII mode; send TYPE I first.")
MLSD_ON_FILE = Reply(501, "{}: Not a directory (use MLST for a file).")
NOT_A_DIRECTORY = Reply(550, "{}: Not a directory.")
IS_A_DIRECTORY = Reply(550, "{}: Is a directory.")
NOT_A_PLAIN_FILE = Reply(550, "{}: Not a plain file.")
FILE_EXISTS = Reply(550, "{}: File exists.")
DIRECTORY_NOT_EMPTY = Reply(550, "{}: Directory not empty.")
UPLOAD_REJECTED = Reply(550, "{}: Upload rejected: {}")
IN_PLACE_WHILE_CHECKED = Reply(550, "{}: {} refused: uploads are checked before they land, so "
                                    "a file cannot be written in place; send it whole with STOR.")
QUOTA_EXCEEDED = Reply(552, "Quota exceeded: this account may store {} bytes.")
FILE_QUOTA_EXCEEDED = Reply(552, "Quota exceeded: this account may store {} files.")
INVALID_PATH = Reply(553, "File name not allowed.")
STORE_CANNOT = Reply(550, "{}: not possible on object storage: {}.")
STORE_DENIED = Reply(550, "{}: the storage refused access.")
STORE_NO_BUCKET = Reply(550, "{}: the storage bucket does not exist.")
PROT_REQUIRED = Reply(521, "Data connections must be protected: send PBSZ 0 and PROT P.")
TLS_REUSE_REQUIRED = Reply(
    522, "TLS data connection refused: this server requires data connections to resume "
    "the control connection's TLS session; enable TLS session reuse in the client."
)
TLS_REQUIRED = Reply(534, "Policy requires TLS: send AUTH TLS first.")
CCC_REFUSED = Reply(534, "CCC refused: the control connection stays encrypted.")
PROT_LEVEL_UNSUPPORTED = Reply(536, "PROT {} is not supported; use C or P.")
AUTH_MECHANISM_UNKNOWN = Reply(504, "AUTH {} is not supported; use AUTH TLS.")
INVALID_REST = Reply(554, "Invalid REST parameter: {} is past the end of the file.")


def table() -> dict[str, Reply]:
    """Every reply constant by name; used for HELP-style audits and tests."""
    return {name: value for name, value in globals().items() if isinstance(value, Reply)}
