# -*- test-case-name: tests.test_protocol_paths -*-
"""Virtual path algebra: what a client's path argument means, before any disk is touched.

Clients see their home as ``/``. A path argument is resolved against the
current directory into a tuple of segments; ``..`` stops at the root, ``.`` and
empty segments vanish, and both ``/`` and ``\\`` separate segments (Windows
clients send backslashes), so no spelling of a path can climb out of the home.
"""

from __future__ import annotations

from twisted_ftpd.protocol.errors import InvalidPath
from twisted_ftpd.protocol.values import Segments


def resolve(cwd: Segments, arg: str) -> Segments:
    """The segments ``arg`` names when typed in directory ``cwd``."""
    if "\0" in arg:
        raise InvalidPath(arg)
    text = arg.replace("\\", "/")
    segments: list[str] = [] if text.startswith("/") else list(cwd)
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    return tuple(segments)


def display(segments: Segments) -> str:
    """The absolute path a client sees for ``segments``."""
    return "/" + "/".join(segments)
