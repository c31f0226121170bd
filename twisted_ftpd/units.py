# -*- test-case-name: tests.test_data_throttle -*-
"""Sizes and rates as administrators write them: ``500K``, ``10M``, ``2G``.

K, M and G are powers of 1024, as in vsftpd's and Pure-FTPd's documentation of
their rate and quota settings; a plain number is bytes (or bytes per second).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMG]?)B?", re.I)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def at_least(minimum: int) -> Callable[[str], int]:
    """A parser of whole numbers of ``minimum`` or more (counts, limits, workers)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"expected {minimum} or more, got {value}")
        return value

    return parse


def parse_size(text: str) -> int:
    """``10M`` -> 10485760; ValueError for anything else."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (bytes, or with K, M or G, e.g. 500K, 10M)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_rate(text: str) -> int:
    """Bytes per second, written as a size; 0 means no limit."""
    return parse_size(text)
