# -*- test-case-name: tests.test_listing_ls -*-
"""Pins the exact ls -l text that FTP clients parse, so a change to it is deliberate."""

from __future__ import annotations

import calendar
import stat
import time

import pytest

from tests.helpers import file_info
from twisted_ftpd.listing.ls import SIX_MONTHS, list_line, list_lines, name_lines, parse_list_args
from twisted_ftpd.protocol.values import FileInfo

NOW = calendar.timegm((2024, 3, 5, 14, 3, 59))  # Tue Mar 5 14:03:59 2024 UTC
DAY = 86400


def entry(name: str = "name", **kw: object) -> FileInfo:
    return file_info(name, **{"size": 1234, "mtime": NOW, "owner": "owner", "group": "group",
                              **kw})


def test_file_line_exact() -> None:
    assert list_line(entry(), NOW) == "-rw-r--r--   1 owner    group        1234 Mar 05 14:03 name"


def test_directory_line_exact() -> None:
    info = entry("docs", mode=stat.S_IFDIR | 0o755, size=4096, nlink=12)
    assert list_line(info, NOW) == "drwxr-xr-x  12 owner    group        4096 Mar 05 14:03 docs"


def test_symlink_line_exact() -> None:
    info = entry("latest", mode=stat.S_IFLNK | 0o777, size=9, link_target="v1.2/file")
    assert (
        list_line(info, NOW)
        == "lrwxrwxrwx   1 owner    group           9 Mar 05 14:03 latest -> v1.2/file"
    )


def test_long_fields_still_separated() -> None:
    info = entry(owner="averylongowner", group="g", size=12345678901, nlink=1234)
    line = list_line(info, NOW)
    assert line.split() == [
        "-rw-r--r--",
        "1234",
        "averylongowner",
        "g",
        "12345678901",
        "Mar",
        "05",
        "14:03",
        "name",
    ]


@pytest.mark.parametrize(
    ("mtime", "date"),
    [
        (NOW - 60, "Mar 05 14:02"),  # recent
        (NOW - 100 * DAY, "Nov 26 14:03"),  # recent, previous year
        (NOW - SIX_MONTHS - DAY, "Sep 06  2023"),  # older than six months
        (NOW + DAY, "Mar 06  2024"),  # in the future
        (calendar.timegm((1999, 12, 31, 23, 59, 0)), "Dec 31  1999"),
    ],
)
def test_six_month_rule(mtime: float, date: str) -> None:
    assert list_line(entry(mtime=mtime), NOW).endswith(f" {date} name")


def test_times_are_utc_and_months_english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    if hasattr(time, "tzset"):
        time.tzset()
    # Pretend the locale would translate month names: the output must not care.
    monkeypatch.setattr(calendar, "month_abbr", ["", *(f"Xx{i}" for i in range(1, 13))])
    monkeypatch.setattr(time, "strftime", lambda *a: "LOCALISED")
    try:
        lines = [list_line(entry(mtime=NOW - m * 28 * DAY), NOW) for m in range(12)]
    finally:
        monkeypatch.undo()
        if hasattr(time, "tzset"):
            time.tzset()
    months = {line.split()[5] for line in lines}
    assert months <= set("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
    assert len(months) >= 10
    assert lines[0].endswith("Mar 05 14:03 name")  # UTC, not +05:30


def test_crlf_names_are_skipped() -> None:
    entries = [
        entry("ok"),
        entry("bad\rname"),
        entry("bad\nname"),
        entry("link", link_target="x\ny"),
    ]
    assert [line.rsplit(" ", 1)[1] for line in list_lines(entries, NOW)] == ["ok"]
    assert list(name_lines(entries)) == ["ok", "link"]


def test_list_lines_is_lazy_and_unterminated() -> None:
    lines = list_lines(iter([entry("a"), entry("b c")]), NOW)
    assert iter(lines) is lines
    result = list(lines)
    assert [line.split(" 14:03 ", 1)[1] for line in result] == ["a", "b c"]
    assert not any(line.endswith(("\r", "\n")) for line in result)


def test_name_lines() -> None:
    names = ["with space", "-dash", "héllo", "d"]
    assert list(name_lines(entry(n) for n in names)) == names


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("", ("", "")),
        ("-a", ("a", "")),
        ("-la /x", ("la", "/x")),
        ("-aL", ("aL", "")),
        ("-l -a dir", ("la", "dir")),
        ("-- -file", ("", "-file")),
        ("-la -- -file name", ("la", "-file name")),
        ("-weird name", ("", "-weird name")),
        ("-", ("", "-")),
        ("dir with spaces", ("", "dir with spaces")),
        ("-a  spaced", ("a", "spaced")),
    ],
)
def test_parse_list_args(arg: str, expected: tuple[str, str]) -> None:
    assert parse_list_args(arg) == expected
