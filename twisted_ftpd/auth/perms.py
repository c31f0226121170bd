# -*- test-case-name: tests.test_auth_userdb -*-
"""One vocabulary of permission letters (pyftpdlib's), so users.db, CLI and shell agree."""

from __future__ import annotations

#: Every letter, in canonical order.
ALL = "elradfmwMT"
#: What the shipped anonymous user gets: change directory, list, retrieve.
READ_ONLY = "elr"

#: What each letter grants.
MEANINGS: dict[str, str] = {
    "e": "change directory (CWD, CDUP)",
    "l": "list files (LIST, NLST, STAT, MLSD, MLST, SIZE, MDTM)",
    "r": "retrieve files (RETR)",
    "a": "append to files (APPE)",
    "d": "delete files and directories (DELE, RMD)",
    "f": "rename (RNFR, RNTO)",
    "m": "make directories (MKD)",
    "w": "store files (STOR, STOU)",
    "M": "change file mode (SITE CHMOD)",
    "T": "set file modification time (MFMT)",
}


def validate(letters: str) -> str:
    """Return ``letters`` de-duplicated in canonical order; ValueError names bad ones."""
    bad = sorted({c for c in letters if c not in ALL})
    if bad:
        raise ValueError(
            f"unknown permission letter(s) {''.join(bad)!r}; valid letters are {ALL!r}"
        )
    return "".join(c for c in ALL if c in letters)
