# -*- test-case-name: tests.test_login_pool,tests.test_fs_storage -*-
"""glibc's mmap threshold, fixed once for the whole process.

glibc serves big blocks with mmap, but raises that threshold to the size of every
large block freed (up to 32 MiB): from then on such blocks come from the freeing
thread's heap, whose freed space is rarely given back. Two kinds of big block come
and go here: scrypt's 16 MiB buffer at every password check, and object storage's
8 MiB upload parts. Left alone, each kept its size resident in every thread that
had used it (the server grew with every GiB uploaded). A threshold set by hand
stays put (mallopt(3)), so every such block is unmapped when freed.
"""

from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3  # mallopt(3)
#: From this size up, blocks get pages of their own, given back when freed: below
#: both the upload parts and scrypt's buffer.
MMAP_THRESHOLD = 1024 * 1024


@functools.cache
def keep_big_blocks_mapped() -> bool:
    """Fix the threshold at MMAP_THRESHOLD, once per process; False where the C
    library has no ``mallopt`` (musl ignores it, macOS lacks it)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
