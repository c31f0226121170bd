# -*- test-case-name: tests.test_protocol_commands -*-
"""The command table: which verbs exist and what each needs before it may run.

One entry per verb drives the generic gating (500 unknown, 530 before login,
501 argument missing or unexpected, 550 permission, 502 known but not served)
and the HELP text, so the rules live in data instead of in every handler.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Phase


class Beside(enum.Enum):
    """May the command run while a transfer holds the channel (RFC 959 4.1.3)?"""

    NEVER = "never"  # waits for the transfer to end
    AT_HEAD = "at head"  # when it is next in line (NOOP, STAT, HELP)
    ANYWHERE = "anywhere"  # even ahead of commands queued before it (ABOR)


class TLSNeed(enum.Enum):
    """What a command needs of FTPS (RFC 4217)."""

    NONE = "none"
    BEFORE = "before"  # AUTH: TLS configured (else 502) and not yet started (else 503)
    AFTER = "after"  # PBSZ, PROT: AUTH first (503)


class Arg(enum.Enum):
    NONE = "none"  # an argument is a syntax error
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class CommandSpec:
    verb: str
    arg: Arg
    help: str
    login: bool = True  # must the session be logged in?
    perm: str = ""  # permission letter needed (pyftpdlib vocabulary), "" for none
    beside: Beside = Beside.NEVER  # may it run while a transfer holds the channel?
    implemented: bool = True
    refuse_in: Mapping[Phase, Reply] = field(default_factory=dict)  # order rules (503)
    tls: TLSNeed = TLSNeed.NONE
    epsv_all_blocks: bool = False  # refused after EPSV ALL (RFC 2428 section 4)
    perm_with_arg: str = ""  # permission letter needed only when an argument is given
    feature: str = ""  # its FEAT line (RFC 2389), "" for none


_A = Arg
_SPECS = [
    # Access control (RFC 959 4.1.1)
    CommandSpec("USER", _A.REQUIRED, "USER <name>: start a login.", login=False,
                refuse_in={Phase.LOGGED_IN: replies.ALREADY_LOGGED_IN}),
    CommandSpec("PASS", _A.OPTIONAL, "PASS <password>: finish a login.", login=False,
                refuse_in={Phase.LOGGED_IN: replies.ALREADY_LOGGED_IN,
                           Phase.CONNECTED: replies.USER_FIRST}),
    CommandSpec("ACCT", _A.REQUIRED, "ACCT: accounts are not used.", login=False,
                implemented=False),
    CommandSpec("CWD", _A.REQUIRED, "CWD <dir>: change directory.", perm="e",
                feature="TVFS"),  # one tree, "/"-separated, for every path command
    CommandSpec("XCWD", _A.REQUIRED, "XCWD <dir>: change directory (RFC 775).", perm="e"),
    CommandSpec("CDUP", _A.NONE, "CDUP: go to the parent directory.", perm="e"),
    CommandSpec("XCUP", _A.NONE, "XCUP: go to the parent directory (RFC 775).", perm="e"),
    CommandSpec("SMNT", _A.REQUIRED, "SMNT: not supported.", implemented=False),
    CommandSpec("REIN", _A.NONE, "REIN: log out, keep the connection.", login=False),
    CommandSpec("QUIT", _A.NONE, "QUIT: close the session.", login=False),
    # Transfer parameters (RFC 959 4.1.2, RFC 2428)
    CommandSpec("PORT", _A.REQUIRED, "PORT <h1,h2,h3,h4,p1,p2>: active data connection.",
                epsv_all_blocks=True),
    CommandSpec("EPRT", _A.REQUIRED, "EPRT |<proto>|<addr>|<port>|: active, IPv4 or IPv6.",
                epsv_all_blocks=True, feature="EPRT"),
    CommandSpec("PASV", _A.NONE, "PASV: passive data connection (IPv4).",
                epsv_all_blocks=True),
    CommandSpec("EPSV", _A.OPTIONAL, "EPSV [1|2|ALL]: extended passive data connection.",
                feature="EPSV"),
    CommandSpec("TYPE", _A.REQUIRED, "TYPE <A|I|L 8>: set the transfer type."),
    CommandSpec("STRU", _A.REQUIRED, "STRU F: file structure (the only one)."),
    CommandSpec("MODE", _A.REQUIRED, "MODE S: stream mode (the only one)."),
    # Service commands (RFC 959 4.1.3, RFC 3659)
    CommandSpec("RETR", _A.REQUIRED, "RETR <file>: download a file.", perm="r"),
    CommandSpec("STOR", _A.REQUIRED, "STOR <file>: upload a file.", perm="w"),
    CommandSpec("STOU", _A.OPTIONAL, "STOU: store under a unique name.", perm="w"),
    CommandSpec("APPE", _A.REQUIRED, "APPE <file>: append to a file.", perm="a"),
    CommandSpec("ALLO", _A.REQUIRED, "ALLO: reserve space."),
    CommandSpec("REST", _A.REQUIRED, "REST <offset>: restart the next RETR or STOR there.",
                feature="REST STREAM"),
    CommandSpec("RNFR", _A.REQUIRED, "RNFR <name>: rename from.", perm="f"),
    CommandSpec("RNTO", _A.REQUIRED, "RNTO <name>: rename to.", perm="f"),
    CommandSpec("ABOR", _A.NONE, "ABOR: abort a transfer.", beside=Beside.ANYWHERE),
    CommandSpec("DELE", _A.REQUIRED, "DELE <file>: delete a file.", perm="d"),
    CommandSpec("RMD", _A.REQUIRED, "RMD <dir>: remove a directory.", perm="d"),
    CommandSpec("XRMD", _A.REQUIRED, "XRMD <dir>: remove a directory (RFC 775).", perm="d"),
    CommandSpec("MKD", _A.REQUIRED, "MKD <dir>: make a directory.", perm="m"),
    CommandSpec("XMKD", _A.REQUIRED, "XMKD <dir>: make a directory (RFC 775).", perm="m"),
    CommandSpec("PWD", _A.NONE, "PWD: print the working directory."),
    CommandSpec("XPWD", _A.NONE, "XPWD: print the working directory (RFC 775)."),
    CommandSpec("LIST", _A.OPTIONAL, "LIST [-a] [path]: long listing.", perm="l"),
    CommandSpec("NLST", _A.OPTIONAL, "NLST [path]: names only.", perm="l"),
    CommandSpec("MLSD", _A.OPTIONAL, "MLSD [dir]: machine listing.", perm="l"),
    CommandSpec("MLST", _A.OPTIONAL, "MLST [path]: machine facts.", perm="l",
                feature="MLST"),  # its facts follow OPTS MLST: FEAT fills them in
    CommandSpec("SITE", _A.REQUIRED, "SITE <cmd>: site commands."),
    CommandSpec("SYST", _A.NONE, "SYST: system type.", login=False),
    CommandSpec("STAT", _A.OPTIONAL, "STAT [path]: status.", beside=Beside.AT_HEAD,
                perm_with_arg="l"),
    CommandSpec("HELP", _A.OPTIONAL, "HELP [cmd]: this help.", login=False,
                beside=Beside.AT_HEAD),
    CommandSpec("NOOP", _A.NONE, "NOOP: do nothing.", login=False, beside=Beside.AT_HEAD),
    CommandSpec("FEAT", _A.NONE, "FEAT: list extensions (RFC 2389).", login=False),
    CommandSpec("OPTS", _A.REQUIRED, "OPTS <cmd> [args]: set options (RFC 2389).",
                login=False, feature="UTF8"),  # OPTS UTF8 ON (RFC 2640)
    CommandSpec("SIZE", _A.REQUIRED, "SIZE <file>: file size (RFC 3659).", perm="l",
                feature="SIZE"),
    CommandSpec("MDTM", _A.REQUIRED, "MDTM <file>: modification time (RFC 3659).",
                perm="l", feature="MDTM"),
    CommandSpec("MFMT", _A.REQUIRED, "MFMT <time> <file>: set modification time.",
                perm="T", feature="MFMT"),
    # HOST (RFC 7151), then the security extensions (RFC 2228, RFC 4217).
    CommandSpec("AUTH", _A.REQUIRED, "AUTH <TLS>: secure the session.", login=False,
                tls=TLSNeed.BEFORE, feature="AUTH TLS",
                refuse_in={Phase.USER_GIVEN: replies.BAD_SEQUENCE,
                           Phase.LOGGED_IN: replies.BAD_SEQUENCE}),
    CommandSpec("PBSZ", _A.REQUIRED, "PBSZ 0: protection buffer size.", login=False,
                tls=TLSNeed.AFTER, feature="PBSZ"),
    CommandSpec("PROT", _A.REQUIRED, "PROT <C|P>: data channel protection.", login=False,
                tls=TLSNeed.AFTER, feature="PROT"),
    CommandSpec("CCC", _A.NONE, "CCC: clear the control channel (always refused)."),
    CommandSpec("HOST", _A.REQUIRED, "HOST <name>: virtual host (RFC 7151).", login=False,
                feature="HOST", refuse_in={Phase.USER_GIVEN: replies.HOST_TOO_LATE,
                                           Phase.LOGGED_IN: replies.HOST_TOO_LATE}),
]

COMMANDS: dict[str, CommandSpec] = {spec.verb: spec for spec in _SPECS}

# SITE's sub-commands, gated like commands of their own; SITE's handler parses their
# arguments (a malformed one is 501 from there).
SITE_COMMANDS: dict[str, CommandSpec] = {spec.verb.split()[1]: spec for spec in [
    CommandSpec("SITE HELP", _A.OPTIONAL, "SITE HELP: the SITE commands."),
    CommandSpec("SITE CHMOD", _A.OPTIONAL, "SITE CHMOD <mode> <path>: change mode.",
                perm="M"),
]}



def features(tls_configured: bool) -> list[str]:
    """FEAT's lines (RFC 2389), from the table: the TLS ones only when FTPS is on.

    The ``MLST`` line's facts depend on the session (OPTS MLST): FEAT fills them in.
    """
    return sorted(spec.feature for spec in COMMANDS.values() if spec.feature and (
        tls_configured or spec.tls is TLSNeed.NONE))


# The fixed part of FEAT without FTPS: every line but MLST's.
FEATURES: tuple[str, ...] = tuple(f for f in features(False) if f != "MLST")


def help_text() -> str:
    """HELP's multi-line body: the served commands, eight to a line."""
    verbs = sorted(v for v, s in COMMANDS.items() if s.implemented and " " not in v)
    rows = [" ".join(f"{v:<5}" for v in verbs[i : i + 8]).rstrip() for i in range(0, len(verbs), 8)]
    return "\n".join(["The following commands are recognized:", *[" " + r for r in rows],
                      "Help OK."])
