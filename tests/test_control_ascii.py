"""TYPE A line-end conversion end to end (LF <-> CRLF), TYPE I left alone, and SIZE
refused in ASCII mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import logged_in
from twisted_ftpd.fs.files import CHUNK_SIZE

BINARY = bytes(range(256)) * 4 + b"\r\n\n\r\r\n tail\r"


def test_the_session_starts_in_type_a(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"a\nb\n")
    replies, data = s.download("RETR f")
    assert replies == ["150 Opening ASCII mode data connection for /f.",
                       "226 Transfer complete."]
    assert data == b"a\r\nb\r\n"


# -- downloads ------------------------------------------------------------------------------


def test_retr_in_type_a_sends_crlf(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"a\nb\r\nc\n")
    assert s.codes("TYPE A") == [200]
    _, data = s.download("RETR f")
    assert data == b"a\r\nb\r\nc\r\n"
    assert (h.root / "f").read_bytes() == b"a\nb\r\nc\n"


def test_retr_in_type_i_sends_the_bytes_unchanged(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"a\nb\r\nc\n")
    h.put("bin", BINARY)
    assert s.send("TYPE I") == ["200 Type set to I."]
    replies, data = s.download("RETR f")
    assert replies[0] == "150 Opening BINARY mode data connection for /f."
    assert data == b"a\nb\r\nc\n"
    assert s.download("RETR bin")[1] == BINARY


@pytest.mark.parametrize("line", ["TYPE L 8", "TYPE L8", "type i"])
def test_other_spellings_of_binary_send_unchanged(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"a\nb\n")
    assert s.codes(line) == [200]
    assert s.download("RETR f")[1] == b"a\nb\n"


def test_type_a_retr_across_read_chunks(tmp_path: Path) -> None:
    # A CRLF split by the file reader's chunk boundary stays one CRLF; a LF that
    # starts a chunk after a plain byte still gets its CR.
    h, s = logged_in(tmp_path)
    body = b"x" * (CHUNK_SIZE - 1) + b"\r\n" + b"y" * (CHUNK_SIZE - 2) + b"z\n" + b"w\n"
    assert body[CHUNK_SIZE - 1:CHUNK_SIZE + 1] == b"\r\n"
    assert body[2 * CHUNK_SIZE:2 * CHUNK_SIZE + 1] == b"\n"
    h.put("f", body)
    _, data = s.download("RETR f")
    assert data == body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert data.count(b"\r\n") == 3 and b"\r\r" not in data


# -- uploads --------------------------------------------------------------------------------


def test_stor_in_type_a_stores_lf(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.upload("STOR f", b"x\r\ny\r\n") == [
        "150 Opening ASCII mode data connection for /f.", "226 Transfer complete."]
    assert (h.root / "f").read_bytes() == b"x\ny\n"


@pytest.mark.parametrize(("chunks", "stored"), [
    ((b"x\r", b"\ny"), b"x\ny"),
    ((b"x\r", b"\n", b"y\r", b"\n"), b"x\ny\n"),
    ((b"a\rb",), b"a\rb"),  # a lone CR is data
    ((b"a\r", b"b"), b"a\rb"),
    ((b"end\r",), b"end\r"),  # a CR held back at a chunk end is not lost at the end
    ((b"\r\r\n",), b"\r\n"),
    ((b"bare\nlf",), b"bare\nlf"),
])
def test_stor_in_type_a_across_data_chunks(tmp_path: Path, chunks: tuple[bytes, ...],
                                           stored: bytes) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("TYPE A") == [200]
    assert s.upload("STOR f", *chunks)[-1] == "226 Transfer complete."
    assert (h.root / "f").read_bytes() == stored


def test_stor_in_type_i_stores_exactly(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("TYPE I") == [200]
    assert s.upload("STOR f", BINARY[:500], BINARY[500:])[0] == (
        "150 Opening BINARY mode data connection for /f.")
    assert (h.root / "f").read_bytes() == BINARY
    assert s.upload("STOR g", b"x\r", b"\ny")[-1] == "226 Transfer complete."
    assert (h.root / "g").read_bytes() == b"x\r\ny"


def test_appe_and_stou_convert_in_type_a(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"one\n")
    assert s.upload("APPE f", b"two\r", b"\nthree\r\n")[-1] == "226 Transfer complete."
    assert (h.root / "f").read_bytes() == b"one\ntwo\nthree\n"
    replies = s.upload("STOU", b"u\r\nv\r\n")
    name = replies[0].removeprefix("150 FILE: ")
    assert (h.root / name).read_bytes() == b"u\nv\n"


def test_appe_and_stou_are_exact_in_type_i(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"one\n")
    assert s.codes("TYPE I") == [200]
    assert s.upload("APPE f", b"two\r\n")[-1] == "226 Transfer complete."
    assert (h.root / "f").read_bytes() == b"one\ntwo\r\n"
    replies = s.upload("STOU", b"u\r\n")
    assert (h.root / replies[0].removeprefix("150 FILE: ")).read_bytes() == b"u\r\n"


def test_type_a_round_trip_of_a_text_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    text = b"line 1\nline 2\n\nlast"
    h.put("orig", text)
    _, wire = s.download("RETR orig")
    assert wire == b"line 1\r\nline 2\r\n\r\nlast"
    s.upload("STOR copy", wire)
    assert (h.root / "copy").read_bytes() == text


# -- SIZE -----------------------------------------------------------------------------------


def test_size_is_refused_in_type_a(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"a\nb\n")
    assert s.send("SIZE f") == ["550 SIZE not allowed in ASCII mode; send TYPE I first."]
    assert s.codes("TYPE I") == [200]
    assert s.send("SIZE f") == ["213 4"]
    assert s.codes("TYPE A", "SIZE f") == [200, 550]
    assert s.codes("TYPE A N", "SIZE f") == [200, 550]
    assert s.codes("TYPE L 8", "SIZE f") == [200, 213]


def test_type_survives_transfers(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"a\n")
    assert s.codes("TYPE I") == [200]
    assert s.download("RETR f")[1] == b"a\n"
    assert s.download("RETR f")[1] == b"a\n"
    assert s.codes("SIZE f") == [213]
    assert os.listdir(h.root) == ["f"]
