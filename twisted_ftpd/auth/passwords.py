# -*- test-case-name: tests.test_auth_passwords -*-
"""Slow salted password hashes, so a leaked users.db does not leak passwords."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading

_N_LOG2 = 14
_R = 8
_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_PREFIX = "$scrypt$"
# scrypt needs 128 * r * n bytes; allow headroom over OpenSSL's 32 MiB default.
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: str, salt: bytes, n_log2: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=2**n_log2,
        r=r,
        p=p,
        maxmem=_MAXMEM,
        dklen=dklen,
    )


def hash_password(password: str) -> str:
    """Hash ``password`` with a fresh random salt, in the ``$scrypt$...`` encoding."""
    salt = os.urandom(_SALT_BYTES)
    key = _derive(password, salt, _N_LOG2, _R, _P, _KEY_BYTES)
    return f"{_PREFIX}ln={_N_LOG2},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """Split an encoding into (ln, r, p, salt, key); ValueError if malformed."""
    if not encoded.startswith(_PREFIX):
        raise ValueError("not an scrypt hash")
    params, salt_text, key_text = encoded[len(_PREFIX) :].split("$")
    values = dict(item.split("=", 1) for item in params.split(","))
    if set(values) != {"ln", "r", "p"}:
        raise ValueError("bad scrypt parameters")
    n_log2, r, p = (int(values[k]) for k in ("ln", "r", "p"))
    # Bound the cost so a hostile users.db line cannot pin a thread or exhaust memory.
    if not (1 <= n_log2 <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    salt, key = _unb64(salt_text), _unb64(key_text)
    if not salt or not 16 <= len(key) <= 64:
        raise ValueError("bad salt or key length")
    return n_log2, r, p, salt, key


def is_valid_hash(encoded: str) -> bool:
    """Whether ``encoded`` is a well-formed hash this module can verify against."""
    try:
        _parse(encoded)
    except (ValueError, TypeError, AttributeError, binascii.Error):
        return False
    return True


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; a malformed encoding is simply False."""
    try:
        n_log2, r, p, salt, key = _parse(encoded)
        candidate = _derive(password, salt, n_log2, r, p, len(key))
    except (ValueError, TypeError, AttributeError, binascii.Error, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


def dummy_hash() -> str:
    """A valid hash of a random password, computed once, for burning time on unknown users."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = hash_password(_b64(os.urandom(_SALT_BYTES)))
        return _dummy_hash


def __getattr__(name: str) -> str:
    # ``DUMMY_HASH`` is computed lazily on first access (PEP 562), not at import.
    if name == "DUMMY_HASH":
        return dummy_hash()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
