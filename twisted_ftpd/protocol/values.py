"""Pure value types that cross every layer: path segments and directory entries.

``Segments`` is a path as the protocol resolves it (``protocol.paths``) and as
the shells take it: a tuple of names relative to the user's home, ``()`` being
the home itself. ``FileInfo`` is what a shell reports about one entry and what
the listing formatters render; ``Staged`` is where a finished upload's bytes lie
before they land, for the upload check. Like the rest of ``protocol/``, this module needs
only the standard library; ``interfaces.py`` names these types in its contracts.
"""

from __future__ import annotations

import stat as statmod
from dataclasses import dataclass

Segments = tuple[str, ...]


@dataclass(frozen=True)
class FileInfo:
    """What LIST/MLSD/SIZE/MDTM need to know about one directory entry."""

    name: str
    mode: int  # full st_mode: file type bits and permission bits
    size: int
    mtime: float  # seconds since the epoch, UTC
    nlink: int = 1
    owner: str = "ftp"
    group: str = "ftp"
    link_target: str | None = None  # set when the entry itself is a symbolic link
    unique: str = ""  # stable identity (device/inode), for MLSD's "unique" fact

    @property
    def is_dir(self) -> bool:
        return statmod.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return statmod.S_ISREG(self.mode)

    @property
    def is_link(self) -> bool:
        return statmod.S_ISLNK(self.mode)


@dataclass(frozen=True)
class Staged:
    """A complete upload not yet committed: in the OS file ``file``, or, for a backend
    without real files, in ``data``; ``size`` bytes either way; ``final`` is the OS
    path it lands under on commit (None without real files)."""

    file: str | None
    size: int
    final: str | None = None
    data: bytes | None = None
