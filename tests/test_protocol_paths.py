"""Unit tests for virtual path resolution and display in twisted_ftpd.protocol.paths."""

from __future__ import annotations

import pytest

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.errors import InvalidPath
from twisted_ftpd.protocol.paths import display, resolve


@pytest.mark.parametrize(
    ("cwd", "arg", "expected"),
    [
        # relative against cwd
        ((), "a", ("a",)),
        (("a",), "b", ("a", "b")),
        (("a", "b"), "c/d", ("a", "b", "c", "d")),
        # absolute ignores cwd
        (("a", "b"), "/x", ("x",)),
        (("a", "b"), "/x/y", ("x", "y")),
        (("a",), "/", ()),
        # empty argument means the current directory
        (("a", "b"), "", ("a", "b")),
        # . and empty segments vanish
        (("a",), ".", ("a",)),
        (("a",), "./b/./c/.", ("a", "b", "c")),
        ((), "//a///b//", ("a", "b")),
        (("a",), "//", ()),
        # trailing slash
        ((), "dir/", ("dir",)),
        (("a",), "/dir/", ("dir",)),
        # ..
        (("a", "b"), "..", ("a",)),
        (("a", "b"), "../c", ("a", "c")),
        (("a", "b"), "c/../d", ("a", "b", "d")),
        (("a", "b"), "../..", ()),
    ],
)
def test_resolve(cwd: tuple[str, ...], arg: str, expected: tuple[str, ...]) -> None:
    assert resolve(cwd, arg) == expected


@pytest.mark.parametrize(
    ("cwd", "arg", "expected"),
    [
        ((), "..", ()),
        ((), "../..", ()),
        (("a",), "../../../../../../..", ()),
        (("a", "b"), "/../../../etc/passwd", ("etc", "passwd")),
        ((), "../" * 50 + "etc", ("etc",)),
        (("a",), "../../a/../../b", ("b",)),
    ],
)
def test_dotdot_clamps_at_root(cwd: tuple[str, ...], arg: str, expected: tuple[str, ...]) -> None:
    assert resolve(cwd, arg) == expected


@pytest.mark.parametrize(
    ("cwd", "arg", "expected"),
    [
        (("a", "b"), "..\\..\\etc", ("etc",)),
        ((), "..\\..\\..\\etc\\passwd", ("etc", "passwd")),
        (("a",), "b\\c", ("a", "b", "c")),
        (("a",), "\\x", ("x",)),
        (("a",), "b\\..\\c", ("a", "c")),
        (("a",), "b/\\c\\", ("a", "b", "c")),
    ],
)
def test_backslash_separates(cwd: tuple[str, ...], arg: str, expected: tuple[str, ...]) -> None:
    assert resolve(cwd, arg) == expected


@pytest.mark.parametrize("arg", ["\0", "a\0b", "/etc/passwd\0.txt", "..\0", "\0/"])
def test_nul_is_invalid(arg: str) -> None:
    with pytest.raises(InvalidPath) as info:
        resolve(("a",), arg)
    assert info.value.reply() == replies.INVALID_PATH
    assert info.value.reply().code == 553


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("with space", ("with space",)),
        (" leading", (" leading",)),
        ("trailing ", ("trailing ",)),
        ("-rf", ("-rf",)),
        ("--help", ("--help",)),
        ("-a/-b", ("-a", "-b")),
        ("ünïcödé", ("ünïcödé",)),
        ("日本/語", ("日本", "語")),
        ("...", ("...",)),
        ("..a", ("..a",)),
        (".hidden", (".hidden",)),
        ("~", ("~",)),
        ("caf\udce9", ("caf\udce9",)),
    ],
)
def test_unusual_names_are_kept(arg: str, expected: tuple[str, ...]) -> None:
    assert resolve((), arg) == expected


def test_resolve_returns_tuple_and_leaves_cwd_alone() -> None:
    cwd = ("a", "b")
    result = resolve(cwd, "../c")
    assert isinstance(result, tuple)
    assert cwd == ("a", "b")


@pytest.mark.parametrize(
    ("segments", "text"),
    [
        ((), "/"),
        (("a",), "/a"),
        (("a", "b"), "/a/b"),
        (("with space", "-x"), "/with space/-x"),
        (("日本",), "/日本"),
    ],
)
def test_display(segments: tuple[str, ...], text: str) -> None:
    assert display(segments) == text


@pytest.mark.parametrize(
    "segments", [(), ("a",), ("a", "b c"), ("-x", "日本", "...")]
)
def test_display_round_trips_through_resolve(segments: tuple[str, ...]) -> None:
    assert resolve(("elsewhere",), display(segments)) == segments


def test_display_home_and_spaces() -> None:
    assert display(()) == "/"
    assert display(("a", "b c")) == "/a/b c"
