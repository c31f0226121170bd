# -*- test-case-name: tests.test_listing_mlsx -*-
"""Pins the RFC 3659 MLSD/MLST text machine clients parse, so a change to it is deliberate."""

from __future__ import annotations

import calendar
import stat
import time
from collections.abc import Iterator

import pytest

from tests.helpers import file_info
from twisted_ftpd.listing.mlsx import (
    FACTS,
    facts_line,
    feat_line,
    mlsd_lines,
    mlst_reply_body,
    opts_reply_text,
    perm_fact,
    select_facts,
)
from twisted_ftpd.protocol.values import FileInfo

MTIME = calendar.timegm((2024, 1, 2, 3, 4, 5))  # 2024-01-02 03:04:05 UTC
FULL = "elradfmwMT"
READ_ONLY = "elr"


def entry(name: str = "name", **kw: object) -> FileInfo:
    return file_info(name, **{"size": 123, "mtime": MTIME, "unique": "803g1a2b", **kw})


def folder(name: str = "docs", **kw: object) -> FileInfo:
    kw.setdefault("mode", stat.S_IFDIR | 0o755)
    kw.setdefault("size", 4096)
    return entry(name, **kw)


def split_line(line: str) -> tuple[dict[str, str], str]:
    """Parse a facts line the way a client does: facts up to the first '; ', then the name."""
    facts, sep, name = line.partition("; ")
    assert sep, line
    pairs = [fact.split("=", 1) for fact in facts.split(";")]
    return {key: value for key, value in pairs}, name


def test_file_line_exact() -> None:
    assert facts_line(entry("name"), FACTS, FULL) == (
        "type=file;size=123;modify=20240102030405;perm=adfrw;unix.mode=0644;unique=803g1a2b; name"
    )


def test_directory_line_exact_without_size() -> None:
    assert facts_line(folder(), FACTS, FULL) == (
        "type=dir;modify=20240102030405;perm=cdeflmp;unix.mode=0755;unique=803g1a2b; docs"
    )


def test_symlink_is_os_specific_type_without_size() -> None:
    link = entry("ln", mode=stat.S_IFLNK | 0o777, size=7, link_target="target")
    assert facts_line(link, FACTS, READ_ONLY) == (
        "type=OS.unix=symlink;modify=20240102030405;perm=r;unix.mode=0777;unique=803g1a2b; ln"
    )


def test_other_special_files() -> None:
    fifo = entry("pipe", mode=stat.S_IFIFO | 0o600, size=0, unique="")
    assert facts_line(fifo, ("type", "size", "unix.mode", "unique"), FULL) == (
        "type=OS.unix=special;unix.mode=0600; pipe"
    )


def test_unix_mode_keeps_special_bits() -> None:
    sticky = folder("tmp", mode=stat.S_IFDIR | 0o1777)
    assert facts_line(sticky, ("unix.mode",), FULL) == "unix.mode=01777; tmp"
    assert facts_line(entry(mode=stat.S_IFREG), ("unix.mode",), FULL) == "unix.mode=0000; name"


def test_mlsd_cdir_pdir_then_entries() -> None:
    lines = list(
        mlsd_lines(folder("cwd"), folder("up"), [entry("a"), folder("b")], ("type",), FULL)
    )
    assert lines == ["type=cdir; .", "type=pdir; ..", "type=file; a", "type=dir; b"]


def test_mlsd_cdir_pdir_use_directory_facts() -> None:
    cdir, pdir = mlsd_lines(folder("cwd"), folder("up", mode=stat.S_IFDIR | 0o700), [], FACTS, FULL)
    assert cdir == "type=cdir;modify=20240102030405;perm=cdeflmp;unix.mode=0755;unique=803g1a2b; ."
    assert pdir == "type=pdir;modify=20240102030405;perm=cdeflmp;unix.mode=0700;unique=803g1a2b; .."


def test_mlsd_without_parent_at_root() -> None:
    assert list(mlsd_lines(folder("/"), None, [entry("x")], ("type",), FULL)) == [
        "type=cdir; .",
        "type=file; x",
    ]


def test_mlsd_skips_names_with_cr_or_lf() -> None:
    entries = [entry("ok"), entry("bad\nname"), entry("bad\rname"), entry("also ok")]
    lines = list(mlsd_lines(folder(), None, entries, ("type",), FULL))
    assert lines == ["type=cdir; .", "type=file; ok", "type=file; also ok"]


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 9  # the zone really is in effect
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def test_modify_is_utc_whatever_the_local_zone(tokyo: None) -> None:
    assert facts_line(entry(), ("modify",), FULL) == "modify=20240102030405; name"


def test_modify_drops_fraction_without_rounding_up() -> None:
    assert facts_line(entry(mtime=MTIME + 0.999), ("modify",), FULL) == (
        "modify=20240102030405; name"
    )


def test_modify_omitted_when_unrepresentable() -> None:
    assert facts_line(entry(mtime=1e20), ("type", "modify"), FULL) == "type=file; name"


@pytest.mark.parametrize(
    ("info", "permissions", "expected"),
    [
        (entry(), READ_ONLY, "r"),
        (entry(), FULL, "adfrw"),
        (entry(), "", ""),
        (folder(), READ_ONLY, "el"),
        (folder(), FULL, "cdeflmp"),
        (folder(), "w", "c"),
        (folder(), "d", "dp"),
    ],
)
def test_perm_mapping(info: FileInfo, permissions: str, expected: str) -> None:
    assert perm_fact(info, permissions) == expected


def test_perm_fact_in_line_for_read_only_user() -> None:
    assert facts_line(entry(), ("perm",), READ_ONLY) == "perm=r; name"
    assert facts_line(folder(), ("perm",), READ_ONLY) == "perm=el; docs"


def test_select_facts_case_insensitive_in_facts_order() -> None:
    assert select_facts("UNIQUE;Type;unix.MODE;") == ("type", "unix.mode", "unique")


def test_select_facts_drops_unknown() -> None:
    assert select_facts("size;media-type;charset;perm") == ("size", "perm")


def test_select_facts_empty_disables_all() -> None:
    assert select_facts("") == ()
    assert select_facts("bogus;") == ()


def test_feat_line_stars_enabled_facts() -> None:
    assert feat_line(FACTS) == "MLST type*;size*;modify*;perm*;unix.mode*;unique*;"
    assert feat_line(("size", "type")) == "MLST type*;size*;modify;perm;unix.mode;unique;"
    assert feat_line(()) == "MLST type;size;modify;perm;unix.mode;unique;"


def test_opts_reply_text() -> None:
    assert opts_reply_text(("type", "size")) == "MLST OPTS type;size;"
    assert opts_reply_text(select_facts("Size;TYPE")) == "MLST OPTS type;size;"
    assert opts_reply_text(()) == "MLST OPTS"


def test_disabled_facts_are_absent() -> None:
    line = facts_line(entry(), ("size", "unique"), FULL)
    assert line == "size=123;unique=803g1a2b; name"
    assert facts_line(entry(), (), FULL) == " name"


def test_empty_or_unsafe_unique_omitted() -> None:
    assert facts_line(entry(unique=""), ("type", "unique"), FULL) == "type=file; name"
    assert facts_line(entry(unique="a;b"), ("type", "unique"), FULL) == "type=file; name"


@pytest.mark.parametrize(
    "name", ["with space.txt", "  lead.txt", "trail ", "semi;colon=x; y", "naïve 日本語.txt"]
)
def test_awkward_names_round_trip(name: str) -> None:
    facts, parsed = split_line(facts_line(entry(name), FACTS, FULL))
    assert parsed == name
    assert facts["type"] == "file"
    assert facts["size"] == "123"


def test_leading_space_name_has_exactly_one_separator() -> None:
    line = facts_line(entry("  lead.txt"), ("type",), FULL)
    assert line == "type=file;   lead.txt"
    assert line.split("; ", 1)[1] == "  lead.txt"


def test_mlst_reply_body_shape() -> None:
    body = mlst_reply_body(entry("r e.txt"), "/pub/r e.txt", ("type", "size"), FULL)
    assert body == "Listing /pub/r e.txt\n type=file;size=123; /pub/r e.txt\nEnd"
    first, facts, last = body.split("\n")
    assert facts.startswith(" ") and not facts.startswith("  ")
    assert split_line(facts[1:]) == ({"type": "file", "size": "123"}, "/pub/r e.txt")


def test_mlst_reply_body_for_directory() -> None:
    body = mlst_reply_body(folder(), "/docs", ("type", "perm"), READ_ONLY)
    assert body.splitlines() == ["Listing /docs", " type=dir;perm=el; /docs", "End"]
