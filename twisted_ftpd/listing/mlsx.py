# -*- test-case-name: tests.test_listing_mlsx -*-
"""Renders RFC 3659 machine listings (MLSD/MLST) so clients get exact, parseable facts.

Pure functions: no disk, no locale, no clock. Choices made here:

- ``modify`` is UTC ``YYYYMMDDHHMMSS``, always whole seconds (the fraction is
  dropped, never rounded up, so a file never looks newer than it is); it is
  omitted when the time cannot be shown as a four-digit year.
- ``size`` is given for regular files only (no ``sizd``), since a directory's
  size says nothing a client can use.
- ``type`` is ``file``, ``dir``, the caller's ``cdir``/``pdir``, ``OS.unix=symlink``
  for a symbolic link (listings do not follow links; the target is not shown) and
  ``OS.unix=special`` for anything else (fifo, socket, device).
- ``perm`` uses the directory letters for directories (and cdir/pdir), the file
  letters for everything else, including symbolic links.
- ``unique`` is omitted when empty or when it holds characters that would break
  the fact syntax (``;``, ``=``, space, CR, LF).
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterable, Iterator, Sequence

from twisted_ftpd.protocol.values import FileInfo

FACTS = ("type", "size", "modify", "perm", "unix.mode", "unique")

# RFC 3659 perm letter -> pyftpdlib permission letter that grants it, in output order.
_FILE_PERMS = (("a", "a"), ("d", "d"), ("f", "f"), ("r", "r"), ("w", "w"))
_DIR_PERMS = (("c", "w"), ("d", "d"), ("e", "e"), ("f", "f"), ("l", "l"), ("m", "m"), ("p", "d"))
_DIR_KINDS = frozenset({"dir", "cdir", "pdir"})
_BAD_VALUE_CHARS = frozenset(";= \r\n")


def _ordered(enabled: Iterable[str]) -> tuple[str, ...]:
    wanted = {fact.lower() for fact in enabled}
    return tuple(fact for fact in FACTS if fact in wanted)


def feat_line(enabled: Sequence[str]) -> str:
    """The FEAT line advertising every fact, starred when enabled, as RFC 3659 7.8 requires."""
    on = set(_ordered(enabled))
    return "MLST " + "".join(f"{fact}{'*' if fact in on else ''};" for fact in FACTS)


def select_facts(arg: str) -> tuple[str, ...]:
    """The facts ``OPTS MLST <arg>`` enables; unknown ones are dropped, as RFC 3659 7.9 asks."""
    return _ordered(part.strip() for part in arg.split(";"))


def opts_reply_text(enabled: Sequence[str]) -> str:
    """The 200 reply text for OPTS MLST, naming the facts now enabled (RFC 3659 7.9)."""
    facts = "".join(f"{fact};" for fact in _ordered(enabled))
    return f"MLST OPTS {facts}" if facts else "MLST OPTS"


def _type(info: FileInfo, kind: str | None) -> str:
    if kind is not None:
        return kind
    if info.is_file:
        return "file"
    if info.is_dir:
        return "dir"
    if info.is_link:
        return "OS.unix=symlink"
    return "OS.unix=special"


def perm_fact(info: FileInfo, permissions: str, kind: str | None = None) -> str:
    """RFC 3659 perm letters for ``info``, so clients only offer what the user may do."""
    is_dir = kind in _DIR_KINDS if kind is not None else info.is_dir
    table = _DIR_PERMS if is_dir else _FILE_PERMS
    return "".join(letter for letter, needed in table if needed in permissions)


def _modify(mtime: float) -> str | None:
    try:
        t = time.gmtime(mtime)
    except (OverflowError, OSError, ValueError):
        return None
    if not 1000 <= t.tm_year <= 9999:
        return None
    return time.strftime("%Y%m%d%H%M%S", t)


def _facts(info: FileInfo, enabled: Sequence[str], permissions: str, kind: str | None) -> str:
    kind = _type(info, kind)
    parts: list[str] = []
    for fact in _ordered(enabled):
        if fact == "type":
            parts.append(f"type={kind}")
        elif fact == "size":
            if kind == "file":
                parts.append(f"size={info.size}")
        elif fact == "modify":
            modify = _modify(info.mtime)
            if modify is not None:
                parts.append(f"modify={modify}")
        elif fact == "perm":
            parts.append(f"perm={perm_fact(info, permissions, kind)}")
        elif fact == "unix.mode":
            parts.append(f"unix.mode=0{stat.S_IMODE(info.mode):03o}")
        elif fact == "unique":
            if info.unique and not _BAD_VALUE_CHARS.intersection(info.unique):
                parts.append(f"unique={info.unique}")
    return "".join(f"{part};" for part in parts)


def facts_line(
    info: FileInfo, enabled: Sequence[str], permissions: str, kind: str | None = None
) -> str:
    """One ``fact=value;... name`` line (no terminator): facts in FACTS order, one space, name."""
    return f"{_facts(info, enabled, permissions, kind)} {info.name}"


def _listable(name: str) -> bool:
    return "\r" not in name and "\n" not in name


def mlsd_lines(
    cwd_info: FileInfo,
    parent_info: FileInfo | None,
    entries: Iterable[FileInfo],
    enabled: Sequence[str],
    permissions: str,
) -> Iterator[str]:
    """MLSD output: cdir ``.``, pdir ``..`` if given, then entries; CR/LF names are skipped."""
    yield f"{_facts(cwd_info, enabled, permissions, 'cdir')} ."
    if parent_info is not None:
        yield f"{_facts(parent_info, enabled, permissions, 'pdir')} .."
    yield from entry_lines(entries, enabled, permissions)


def entry_lines(entries: Iterable[FileInfo], enabled: Sequence[str], permissions: str,
                ) -> Iterator[str]:
    """MLSD lines of entries alone: the pages of a listing after its first."""
    for info in entries:
        if _listable(info.name):
            yield facts_line(info, enabled, permissions)


def mlst_reply_body(
    info: FileInfo, display_path: str, enabled: Sequence[str], permissions: str
) -> str:
    """The 250 MLST reply text; the facts line starts with a space as RFC 3659 7.2 requires."""
    line = f"{_facts(info, enabled, permissions, None)} {display_path}"
    return "\n".join((f"Listing {display_path}", f" {line}", "End"))
