# -*- test-case-name: tests.test_fs_confine -*-
"""Keeps every path a user names inside their home, even through symbolic links.

Callers normalise paths, but a symlink on disk can still point anywhere; so the
check is made on the fully resolved OS path, never on the text of the request.
All functions here touch the disk (``os.path.realpath`` reads links) and must
run where blocking is allowed.
"""

from __future__ import annotations

import os

from twisted_ftpd.protocol import errors
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.values import Segments

_BAD_SEGMENTS = frozenset({"", ".", ".."})


class Confinement:
    """Maps path segments under ``root`` to OS paths that cannot leave ``root``."""

    def __init__(self, root: str, resolved: bool = False) -> None:
        """``resolved``: ``root`` is already its own realpath (found off the reactor)."""
        self.root = root
        self.real_root = root if resolved else os.path.realpath(root)

    def contains(self, real_path: str) -> bool:
        """Whether the already resolved ``real_path`` is the root or below it."""
        if real_path == self.real_root:
            return True
        try:
            return os.path.commonpath([self.real_root, real_path]) == self.real_root
        except ValueError:  # relative vs absolute, different drives
            return False

    def check_segments(self, segments: Segments) -> None:
        """Refuse names that could step out of a directory (defence in depth)."""
        for segment in segments:
            if (
                not isinstance(segment, str)
                or segment in _BAD_SEGMENTS
                or "/" in segment
                or os.sep in segment
                or "\0" in segment
            ):
                raise errors.InvalidPath(display(tuple(map(str, segments))))

    def resolve(self, segments: Segments) -> str:
        """The real (symlink-free) OS path of ``segments``; PermissionDenied if outside.

        Dangling links are resolved as far as they go, so a link to a missing
        path outside the root is refused too.
        """
        self.check_segments(segments)
        real = os.path.realpath(os.path.join(self.real_root, *segments))
        if not self.contains(real):
            raise errors.PermissionDenied(display(segments))
        return real

    def resolve_entry(self, segments: Segments) -> str:
        """The OS path of the entry ``segments`` itself, for acting on it (removing it,
        renaming it away) rather than on what it names.

        The parent directory is resolved and must be inside; the leaf is not
        followed, so a symbolic link is returned as the link wherever it points
        (it lies inside the home even when its target does not). The home itself
        (``()``) is no such entry.
        """
        self.check_segments(segments)
        if not segments:
            raise errors.PermissionDenied("/")
        return os.path.join(self.resolve(segments[:-1]), segments[-1])

    def resolve_parent(self, segments: Segments) -> str:
        """The OS path for creating or replacing the entry ``segments``.

        As ``resolve_entry``, but a leaf that is a link pointing outside is
        refused: whatever is made or written there must stay in the home.
        """
        leaf = self.resolve_entry(segments)
        if os.path.islink(leaf) and not self.contains(os.path.realpath(leaf)):
            raise errors.PermissionDenied(display(segments))
        return leaf
