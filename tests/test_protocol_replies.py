"""Unit tests for the reply table and RFC 959 reply rendering in twisted_ftpd.protocol.replies."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.replies import Reply, quote_path

TABLE = replies.table()


def assert_well_formed(wire: bytes, code: int) -> list[bytes]:
    """Check RFC 959 4.2 framing of one rendered reply; return its lines."""
    assert wire.endswith(b"\r\n")
    lines = wire[:-2].split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    prefix = str(code).encode()
    assert lines[-1].startswith(prefix + b" ")
    if len(lines) > 1:
        assert lines[0].startswith(prefix + b"-")
    for line in lines[1:-1]:
        # A continuation line is "code-..." or indented; never "ddd " which ends a reply.
        assert line.startswith(prefix + b"-") or line.startswith(b" ")
        assert re.match(rb"\d{3} ", line) is None
    return lines


def test_table_is_populated_with_module_constants() -> None:
    assert len(TABLE) > 30
    assert TABLE["OK"] is replies.OK
    assert TABLE["INVALID_PATH"] is replies.INVALID_PATH
    assert all(isinstance(value, Reply) for value in TABLE.values())


@pytest.mark.parametrize("name", sorted(TABLE))
def test_code_is_well_formed(name: str) -> None:
    code = TABLE[name].code
    assert isinstance(code, int)
    assert 100 <= code <= 599
    digits = str(code)
    assert len(digits) == 3
    assert digits[0] in "12345"
    # RFC 959 4.2.1: the second digit is one of the six function groupings x0z..x5z.
    assert digits[1] in "012345"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_text_is_non_empty_without_cr(name: str) -> None:
    reply = TABLE[name]
    assert isinstance(reply.text, str)
    assert reply.text.strip()
    assert "\r" not in reply.text


def test_no_two_names_share_code_and_text() -> None:
    names_by_reply: dict[tuple[int, str], list[str]] = defaultdict(list)
    for name, reply in TABLE.items():
        names_by_reply[(reply.code, reply.text)].append(name)
    duplicates = {key: names for key, names in names_by_reply.items() if len(names) > 1}
    assert duplicates == {}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_constant_renders_to_crlf_terminated_lines(name: str) -> None:
    reply = TABLE[name]
    filled = reply(*(["x"] * reply.text.count("{}")))
    wire = filled.render()
    assert wire.endswith(b"\r\n")
    assert_well_formed(wire, reply.code)


def test_call_fills_fields_and_keeps_code() -> None:
    filled = replies.NEED_PASSWORD("bob")
    assert filled == Reply(331, "Password required for bob.")
    assert replies.NEED_PASSWORD.text == "Password required for {}."


def test_call_does_not_reinterpret_braces_in_arguments() -> None:
    assert replies.FILE_UNAVAILABLE("/a{0}b{}").text == "/a{0}b{}: No such file or directory."


def test_render_single_line() -> None:
    assert Reply(200, "text").render() == b"200 text\r\n"


def test_render_empty_text() -> None:
    assert Reply(200, "").render() == b"200 \r\n"


def test_render_multi_line_uses_dash_then_space() -> None:
    wire = Reply(214, "first\nsecond\nthird\nlast").render()
    assert wire == b"214-first\r\n214-second\r\n214-third\r\n214 last\r\n"


def test_render_multi_line_with_indented_entries() -> None:
    lines = assert_well_formed(Reply(211, "Features:\n EPRT\n SIZE\nEnd").render(), 211)
    assert lines[0] == b"211-Features:"
    assert lines[-1] == b"211 End"
    # RFC 2389 entries keep their leading space, with or without a "211-" prefix.
    assert [line.removeprefix(b"211-") for line in lines[1:-1]] == [b" EPRT", b" SIZE"]


@pytest.mark.parametrize(
    "text",
    ["a\n200 b\nc", "a\n 200 b\nc", "x\n550 fake final\n\ny", "\n\n", "a\n\rb 200\nc"],
)
def test_continuation_lines_never_look_final(text: str) -> None:
    lines = assert_well_formed(Reply(250, text).render(), 250)
    assert len(lines) == text.count("\n") + 1


def test_render_two_lines() -> None:
    assert Reply(214, "a\nb").render() == b"214-a\r\n214 b\r\n"


def test_features_reply_is_multi_line() -> None:
    lines = assert_well_formed(replies.FEATURES(" SIZE\n UTF8").render(), 211)
    assert lines[0] == b"211-Features:"
    assert [line.removeprefix(b"211-") for line in lines[1:-1]] == [b" SIZE", b" UTF8"]
    assert lines[-1] == b"211 End"


@pytest.mark.parametrize(
    "text",
    [
        "a\rb",
        "a\r200 injected",
        "/dir\r\n421 Bye",
        "\r",
        "x\r\r\ny",
    ],
)
def test_carriage_returns_cannot_split_a_reply(text: str) -> None:
    wire = Reply(250, text).render()
    lines = assert_well_formed(wire, 250)
    # Every CR on the wire is part of a CRLF terminator, never inside a line.
    assert wire.count(b"\r") == len(lines) == text.count("\n") + 1


def test_injected_cr_is_removed_from_line() -> None:
    assert Reply(250, "a\r500 evil").render() == b"250 a500 evil\r\n"


def test_injected_lf_becomes_continuation_line() -> None:
    wire = replies.CWD_OK("/a\n421 bye").render()
    assert wire == b"250-Directory changed to /a\r\n250 421 bye.\r\n"


def test_surrogate_escaped_byte_renders_as_valid_utf8() -> None:
    # Replies stay decodable for UTF-8 clients: a byte that was not UTF-8 becomes "?".
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert name == "caf\udce9"
    rendered = replies.FILE_UNAVAILABLE(name).render()
    assert rendered == b"550 caf?: No such file or directory.\r\n"
    rendered.decode("utf-8")


def test_non_ascii_text_renders_as_utf8() -> None:
    assert Reply(257, '"/日本" created.').render() == '257 "/日本" created.\r\n'.encode()


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/", '"/"'),
        ("/plain", '"/plain"'),
        ('/a"b', '"/a""b"'),
        ('/"quoted"', '"/""quoted"""'),
        ('""', '""""""'),
        ("/with space", '"/with space"'),
    ],
)
def test_quote_path_doubles_embedded_quotes(path: str, quoted: str) -> None:
    assert quote_path(path) == quoted


def test_quoted_path_in_257_reply() -> None:
    wire = replies.PATH_CREATED(quote_path('/new "dir"')).render()
    assert wire == b'257 "/new ""dir""" created.\r\n'
