# -*- test-case-name: tests.test_listing_ls -*-
"""Renders listings in the one format every FTP client can parse: Unix ``ls -l``.

Pure functions: no disk, no locale, no clock of their own (``now`` is passed in),
so output depends only on the arguments.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterable, Iterator

from twisted_ftpd.protocol.values import FileInfo

SIX_MONTHS = 180 * 24 * 60 * 60
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FLAG_LETTERS = frozenset("alLRtrhdF1")


def _date(mtime: float, now: float) -> str:
    try:
        t = time.gmtime(mtime)
    except (OverflowError, OSError, ValueError):
        t = time.gmtime(0)
    month = _MONTHS[t.tm_mon - 1]
    if 0 <= now - mtime < SIX_MONTHS:
        return f"{month} {t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}"
    return f"{month} {t.tm_mday:02d}  {t.tm_year}"


def _listable(info: FileInfo) -> bool:
    texts = (info.name, info.link_target or "")
    return not any("\r" in text or "\n" in text for text in texts)


def list_line(info: FileInfo, now: float) -> str:
    """One ``ls -l`` line for ``info`` (UTC times), without a line terminator."""
    name = info.name
    if info.link_target is not None:
        name = f"{name} -> {info.link_target}"
    return (
        f"{stat.filemode(info.mode)} {info.nlink:>3} {info.owner:<8} {info.group:<8} "
        f"{info.size:>8} {_date(info.mtime, now)} {name}"
    )


def list_lines(entries: Iterable[FileInfo], now: float) -> Iterator[str]:
    """LIST output, one line per entry; names with CR or LF cannot be shown and are skipped."""
    for info in entries:
        if _listable(info):
            yield list_line(info, now)


def name_lines(entries: Iterable[FileInfo]) -> Iterator[str]:
    """NLST output: bare names, skipping those with CR or LF."""
    for info in entries:
        if "\r" not in info.name and "\n" not in info.name:
            yield info.name


def _is_flag_word(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and all(c in _FLAG_LETTERS for c in word[1:])


def parse_list_args(arg: str) -> tuple[str, str]:
    """Split ``LIST -la /dir`` style arguments into (flag letters, path text).

    Only leading words made of ``-`` and ``ls`` letters count as flags, so a
    name like ``-weird name`` is still a path; ``--`` ends the options.
    """
    flags = ""
    rest = arg
    while True:
        stripped = rest.lstrip(" ")
        word, _, after = stripped.partition(" ")
        if word == "--":
            return flags, after.lstrip(" ")
        if not _is_flag_word(word):
            return flags, (stripped if flags else rest)
        flags += word[1:]
        rest = after
