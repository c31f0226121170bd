"""scrypt password hashes: format, verification, and robustness against bad encodings."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from twisted_ftpd.auth import passwords
from twisted_ftpd.auth.passwords import hash_password, is_valid_hash, verify_password

FORMAT = re.compile(r"^\$scrypt\$ln=14,r=8,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$")


def test_roundtrip() -> None:
    encoded = hash_password("correct horse")
    assert verify_password("correct horse", encoded)


def test_wrong_password() -> None:
    encoded = hash_password("correct horse")
    assert not verify_password("correct horsE", encoded)
    assert not verify_password("", encoded)


def test_encoding_format() -> None:
    match = FORMAT.match(hash_password("x"))
    assert match is not None
    salt = base64.b64decode(match.group(1) + "==")
    key = base64.b64decode(match.group(2) + "=")
    assert (len(salt), len(key)) == (16, 32)


def test_salts_differ() -> None:
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert FORMAT.match(first).group(1) != FORMAT.match(second).group(1)  # type: ignore[union-attr]


def test_non_ascii_and_undecodable_passwords() -> None:
    for password in ("pässwörd ☃", "bad\udcffbyte"):
        encoded = hash_password(password)
        assert verify_password(password, encoded)
        assert not verify_password(password + "x", encoded)


def test_parameters_are_read_from_the_encoding() -> None:
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(b"pw", salt=salt, n=2**10, r=4, p=2, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    encoded = f"$scrypt$ln=10,r=4,p=2${b64(salt)}${b64(key)}"
    assert verify_password("pw", encoded)
    assert not verify_password("pw", encoded.replace("ln=10", "ln=11"))


GOOD = hash_password("pw")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "pw",
        "$scrypt$",
        "$scrypt$ln=14,r=8,p=1$$",
        "$scrypt$ln=14,r=8,p=1$AAAA",
        GOOD + "$extra",
        GOOD.replace("$scrypt$", "$bcrypt$"),
        GOOD.replace("ln=14", "ln=x"),
        GOOD.replace("ln=14,", ""),
        GOOD.replace("p=1", "p=1,q=2"),
        GOOD.replace("ln=14", "ln=40"),  # absurd cost must not be attempted
        GOOD.replace("ln=14", "ln=0"),
        GOOD[:-6],  # key truncated to an impossible base64 length
        GOOD.rsplit("$", 1)[0] + "$!!!!",
        GOOD.rsplit("$", 1)[0] + "$" + "A" * 10,  # key too short
        "$scrypt$ln=14,r=8,p=1$\udcff$\udcff",
    ],
)
def test_malformed_hash_verifies_false(encoded: str) -> None:
    assert verify_password("pw", encoded) is False
    assert is_valid_hash(encoded) is False


def test_good_hash_is_valid() -> None:
    assert is_valid_hash(GOOD)


def test_dummy_hash_is_stable_and_valid() -> None:
    assert passwords.DUMMY_HASH == passwords.DUMMY_HASH == passwords.dummy_hash()
    assert FORMAT.match(passwords.DUMMY_HASH)
    assert not verify_password("", passwords.DUMMY_HASH)


def test_unknown_module_attribute() -> None:
    with pytest.raises(AttributeError):
        passwords.NOPE  # noqa: B018
