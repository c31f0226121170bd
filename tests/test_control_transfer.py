"""Transfers over the control channel: RETR, STOR, LIST, NLST, REST, and what the
control channel does while a transfer runs."""

from __future__ import annotations

import calendar
import os
import re
from pathlib import Path

import pytest
from twisted.internet import error

from tests.harness import PEER, Harness, Session, close, hidden, logged_in

PAYLOAD = bytes(range(256)) * 40 + b"\r\n\n\r tail"


def to_crlf(data: bytes) -> bytes:
    """What a TYPE A (the default) download sends: each bare LF becomes CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def from_crlf(data: bytes) -> bytes:
    """What a TYPE A (the default) upload stores: each CRLF becomes LF, lone CRs stay."""
    return data.replace(b"\r\n", b"\n")


# -- RETR ---------------------------------------------------------------------------------


def test_retr_sends_exact_bytes_and_226_only_after_clean_close(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f.bin", PAYLOAD)
    s.pasv()
    assert s.send("TYPE I") == ["200 Type set to I."]
    assert s.send("RETR f.bin") == ["150 Opening BINARY mode data connection for /f.bin."]
    proto, transport = s.open_passive()
    assert transport.value() == PAYLOAD
    assert transport.disconnecting  # the server closes the data connection to end the file
    assert s.take() == []  # no 226 until the close is confirmed
    assert s.finish(proto) == ["226 Transfer complete."]
    assert s.codes("NOOP") == [200]


def test_retr_empty_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("empty", b"")
    replies, data = s.download("RETR empty")
    assert replies[1:] == ["226 Transfer complete."] and data == b""


def test_retr_missing_file_is_550_without_150(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.send("RETR nope") == ["550 /nope: No such file or directory."]
    # The data setup is used up; the listener is released.
    assert s.proto.data.pending is None
    h.put("nope", b"x")
    assert s.codes("RETR nope") == [425]


@pytest.mark.parametrize("verb", ["RETR", "STOR", "APPE"])
def test_transfer_of_a_directory_is_550_without_150(tmp_path: Path, verb: str) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    s.pasv()
    assert s.send(f"{verb} d") == ["550 /d: Is a directory."]
    assert s.codes(f"{verb} /") == [425]  # the setup was used up by the refused command
    assert (h.root / "d").is_dir() and os.listdir(h.root / "d") == []


def test_retr_without_data_setup_is_425(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    reply = s.send("RETR f")
    assert len(reply) == 1 and reply[0].startswith("425 ")
    assert s.codes("NOOP") == [200]


@pytest.mark.parametrize("line", ["STOR new", "LIST", "NLST"])
def test_other_transfers_without_data_setup_are_425(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes(line) == [425]
    assert os.listdir(h.root) == []


def test_each_transfer_needs_a_fresh_data_setup(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"abc")
    assert s.download("RETR f")[0][1:] == ["226 Transfer complete."]
    assert s.codes("RETR f") == [425]


def test_rest_then_retr_sends_from_the_offset(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"0123456789")
    s.pasv()
    assert s.send("REST 4") == ["350 Restarting at 4. Send STOR or RETR."]
    assert s.codes("RETR f") == [150]
    proto, transport = s.open_passive()
    assert transport.value() == b"456789"
    assert s.finish(proto) == ["226 Transfer complete."]
    # The offset was used up by that transfer.
    assert s.download("RETR f")[1] == b"0123456789"


@pytest.mark.parametrize("arg", ["-1", "abc", "1.5", "٣"])
def test_rest_bad_argument_is_501(tmp_path: Path, arg: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes(f"REST {arg}") == [501]
    assert s.proto.session.rest_offset == 0


def test_rest_past_eof_then_retr_is_554(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"0123")
    s.pasv()
    assert s.codes("REST 100", "RETR f") == [350, 554]


def test_retr_broken_mid_way_is_426_and_session_goes_on(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", PAYLOAD)
    proto, _ = s.start("RETR f")
    assert s.finish(proto, error.ConnectionLost()) == ["426 Connection closed; transfer aborted."]
    assert s.codes("NOOP", "PWD") == [200, 257]
    assert s.proto.data.transfer is None


# -- STOR ----------------------------------------------------------------------------------


def test_stor_writes_the_bytes(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.send("STOR up.bin") == ["150 Opening ASCII mode data connection for /up.bin."]
    proto, _ = s.open_passive()
    proto.dataReceived(PAYLOAD[:1000])
    proto.dataReceived(PAYLOAD[1000:])
    assert s.take() == []
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "up.bin").read_bytes() == from_crlf(PAYLOAD)
    assert hidden(h.root) == []


@pytest.mark.parametrize(("old", "new", "stored"), [
    (None, b"", b""),  # an empty upload creates an empty file
    (b"old content, longer than the new one", b"new", b"new"),  # replaced, not overwritten
], ids=["empty-upload-creates", "replaces-an-existing-file"])
def test_stor_stores_exactly_the_upload(tmp_path: Path, old: bytes | None, new: bytes,
                                        stored: bytes) -> None:
    h, s = logged_in(tmp_path)
    if old is not None:
        h.put("f", old)
    assert s.upload("STOR f", new)[1:] == ["226 Transfer complete."]
    assert (h.root / "f").read_bytes() == stored
    assert os.listdir(h.root) == ["f"]


@pytest.mark.parametrize(("old", "new", "stored"), [
    (b"0123456789", b"abc", b"0123abc"),  # inside the file: written at the offset
    (b"0123", b"4567", b"01234567"),  # at the end of the file: appended
], ids=["inside-the-file", "at-eof-appends"])
def test_rest_then_stor_writes_at_the_offset(tmp_path: Path, old: bytes, new: bytes,
                                             stored: bytes) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", old)
    proto, _ = s.start("REST 4", "STOR f", codes=[350, 150])
    proto.dataReceived(new)
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "f").read_bytes() == stored


def test_rest_past_eof_then_stor_is_554(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"0123")
    s.pasv()
    assert s.codes("REST 5") == [350]
    assert s.send("STOR f") == ["554 Invalid REST parameter: 5 is past the end of the file."]
    assert (h.root / "f").read_bytes() == b"0123"
    assert s.proto.data.pending is None
    assert s.proto.session.rest_offset == 0


def test_rest_then_stor_of_a_missing_file_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.codes("REST 3", "STOR nope") == [350, 550]
    assert os.listdir(h.root) == []


@pytest.mark.parametrize(("old", "sent", "kept"), [
    (None, b"partial", b"partial"),  # a new file keeps the partial data
    (b"precious", b"half of the repl", b"precious"),  # an existing file is left alone
], ids=["new-file-keeps-partial-data", "existing-file-is-kept"])
def test_stor_broken_mid_way_is_426_and_session_goes_on(tmp_path: Path, old: bytes | None,
                                                        sent: bytes, kept: bytes) -> None:
    h, s = logged_in(tmp_path)
    if old is not None:
        h.put("f", old)
    proto, _ = s.start("STOR f")
    proto.dataReceived(sent)
    assert s.finish(proto, error.ConnectionLost()) == ["426 Connection closed; transfer aborted."]
    assert s.codes("NOOP") == [200]
    assert (h.root / "f").read_bytes() == kept
    assert os.listdir(h.root) == ["f"]


def test_data_sent_before_stor_is_stored(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    proto, transport = s.open_passive()
    proto.dataReceived(b"early ")
    assert transport.producerState == "paused"  # held, and no more read meanwhile
    assert s.codes("STOR f") == [150]
    assert transport.producerState == "producing"
    proto.dataReceived(b"and late")
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "f").read_bytes() == b"early and late"


def test_upload_finished_before_stor_arrives_is_stored(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    proto, _ = s.open_passive()
    proto.dataReceived(b"all of it")
    close(proto)
    assert s.codes("STOR f") == [150, 226]
    assert (h.root / "f").read_bytes() == b"all of it"


def test_stor_without_parent_directory_is_550(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.codes("STOR no/such/dir") == [550]
    assert os.listdir(h.root) == []


def test_stor_by_read_only_user_is_550_without_150(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, perms="elr")
    h.put("f", b"keep")
    s.pasv()
    assert s.send("STOR f") == ["550 Permission denied."]
    assert s.send("STOR g") == ["550 Permission denied."]
    assert os.listdir(h.root) == ["f"]
    assert (h.root / "f").read_bytes() == b"keep"


# -- LIST / NLST ---------------------------------------------------------------------------


WHEN = calendar.timegm((2021, 3, 4, 5, 6, 7))


def populated(tmp_path: Path, **config) -> tuple[Harness, Session]:  # type: ignore[no-untyped-def]
    h, s = logged_in(tmp_path, **config)
    for name, data in [("a.txt", b"hello"), ("sub/inner.txt", b"123"), (".hidden", b"")]:
        os.utime(h.put(name, data), (WHEN, WHEN))
    os.utime(h.root / "sub", (WHEN, WHEN))
    return h, s


LINE = re.compile(
    r"^([-dl][-rwxsStT]{9}) +(\d+) (\S+) +(\S+) +(\d+) (\w{3} \d\d (?: \d{4}|\d\d:\d\d)) (.+)$")


def parse_line(line: str) -> tuple[str, int, str, str]:
    m = LINE.match(line)
    assert m, line
    return m.group(1), int(m.group(5)), m.group(6), m.group(7)


def test_list_formatting(tmp_path: Path) -> None:
    _, s = populated(tmp_path)
    replies, lines = s.listing("LIST")
    assert replies == ["150 Opening ASCII mode data connection for file list.",
                       "226 Transfer complete."]
    parsed = [parse_line(line) for line in lines]
    assert [p[3] for p in parsed] == [".hidden", "a.txt", "sub"]
    assert parsed[1][0].startswith("-") and parsed[1][1] == 5
    assert parsed[2][0].startswith("d")
    assert {p[2] for p in parsed} == {"Mar 04  2021"}


def test_list_recent_files_show_the_time(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.reactor.advance(WHEN + 86400)  # the session clock is "now" for listings
    os.utime(h.put("a.txt", b"hello"), (WHEN, WHEN))
    s = h.connect()
    s.login()
    _, lines = s.listing("LIST")
    assert [parse_line(line)[2:] for line in lines] == [("Mar 04 05:06", "a.txt")]


@pytest.mark.parametrize("line", ["LIST -la", "LIST -l", "LIST -a", "LIST -la .", "LIST /"])
def test_list_flags_and_current_directory(tmp_path: Path, line: str) -> None:
    _, s = populated(tmp_path)
    _, plain = s.listing("LIST")
    replies, lines = s.listing(line)
    assert replies[-1] == "226 Transfer complete."
    assert lines == plain


def test_list_flags_with_a_directory(tmp_path: Path) -> None:
    _, s = populated(tmp_path)
    replies, lines = s.listing("LIST -a sub")
    assert replies[-1].startswith("226")
    assert [parse_line(line)[3] for line in lines] == ["inner.txt"]
    assert parse_line(lines[0])[1] == 3


def test_list_of_a_file_is_one_line(tmp_path: Path) -> None:
    _, s = populated(tmp_path)
    _, lines = s.listing("LIST a.txt")
    assert len(lines) == 1 and parse_line(lines[0])[1:] == (5, "Mar 04  2021", "a.txt")


def test_list_of_an_empty_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "empty").mkdir()
    replies, lines = s.listing("LIST empty")
    assert replies[-1] == "226 Transfer complete." and lines == []


def test_list_shows_symlinks_with_their_target(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("target", b"x")
    (h.root / "ln").symlink_to("target")
    _, lines = s.listing("LIST")
    assert [parse_line(line)[3] for line in lines] == ["ln -> target", "target"]
    assert parse_line(lines[0])[0].startswith("l")


def test_list_of_a_missing_path_is_550_without_150(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    replies, lines = s.listing("LIST nope", may_refuse=True)
    assert replies == ["550 /nope: No such file or directory."]
    assert s.proto.data.pending is None


def test_nlst_formatting(tmp_path: Path) -> None:
    _, s = populated(tmp_path)
    replies, lines = s.listing("NLST")
    assert replies[-1] == "226 Transfer complete."
    assert lines == [".hidden", "a.txt", "sub"]
    _, lines = s.listing("NLST sub")
    assert lines == ["inner.txt"]
    _, lines = s.listing("NLST a.txt")
    assert lines == ["a.txt"]


def test_nlst_missing_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.listing("NLST nope", may_refuse=True)[0] == ["550 /nope: No such file or directory."]


def test_list_is_relative_to_the_current_directory(tmp_path: Path) -> None:
    _, s = populated(tmp_path)
    assert s.codes("CWD sub") == [250]
    _, lines = s.listing("NLST")
    assert lines == ["inner.txt"]


def test_list_broken_mid_way_is_426(tmp_path: Path) -> None:
    _, s = populated(tmp_path)
    proto, _ = s.start("LIST")
    assert s.finish(proto, error.ConnectionLost()) == ["426 Connection closed; transfer aborted."]
    assert s.codes("NOOP") == [200]


# -- the control channel during set-up and transfers --------------------------------------


def test_commands_are_read_while_a_data_connection_is_pending(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"0123456789")
    s.pasv()
    assert s.codes("TYPE I", "REST 0", "NOOP") == [200, 350, 200]
    assert s.codes("RETR f") == [150]
    proto, transport = s.open_passive()
    assert transport.value() == b"0123456789"
    assert s.finish(proto) == ["226 Transfer complete."]


def test_noop_is_answered_during_a_transfer_while_cwd_waits(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", PAYLOAD)
    (h.root / "sub").mkdir()
    proto, transport = s.start("RETR f")
    assert transport.value() == to_crlf(PAYLOAD)  # sent, not yet confirmed closed
    assert s.send("NOOP") == ["200 NOOP ok."]
    assert s.send("CWD sub") == []
    assert s.send("NOOP") == []  # behind CWD: replies stay in order
    assert s.finish(proto) == ["226 Transfer complete.", "250 Directory changed to /sub.",
                               "200 NOOP ok."]


def test_commands_sent_before_the_data_connection_opens_wait_for_it(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"abc")
    s.pasv()
    assert s.codes("RETR f") == [150]
    assert s.send("PWD") == []
    proto, _ = s.open_passive()
    assert s.finish(proto) == ["226 Transfer complete.", '257 "/" is the current directory.']


def test_help_is_answered_during_a_transfer(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"abc")
    proto, _ = s.start("RETR f")
    assert s.codes("HELP NOOP") == [214]
    assert s.finish(proto) == ["226 Transfer complete."]


def test_stor_during_transfer_gets_noop_and_the_upload_completes(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    proto, _ = s.start("STOR f")
    proto.dataReceived(b"part1")
    assert s.codes("NOOP") == [200]
    proto.dataReceived(b"part2")
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "f").read_bytes() == b"part1part2"


def test_transfer_suspends_the_idle_timeout(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, idle_timeout=10.0, stall_timeout=1000.0)
    h.put("f", b"abc")
    proto, _ = s.start("RETR f")
    h.reactor.advance(50)
    assert s.take() == [] and not s.transport.disconnecting
    assert s.finish(proto) == ["226 Transfer complete."]
    h.reactor.advance(10)
    assert s.take()[0].startswith("421")


def test_stalled_data_connection_is_dropped(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, stall_timeout=20.0)
    proto, transport = s.start("STOR f")
    proto.dataReceived(b"some")
    h.reactor.advance(19)
    assert not transport.disconnecting
    h.reactor.advance(1)
    assert transport.disconnecting  # aborted by the server
    assert s.finish(proto, error.ConnectionAborted()) == [
        "426 Connection closed; transfer aborted."]
    assert s.codes("NOOP") == [200]


def test_retr_from_the_control_peer_only(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"secret data")
    s.pasv()
    assert s.codes("RETR f") == [150]
    thief, thief_transport = s.open_passive(peer="198.51.100.66")
    assert thief is None
    assert thief_transport.value() == b""
    proto, transport = s.open_passive(peer=PEER)
    assert transport.value() == b"secret data"
    assert s.finish(proto) == ["226 Transfer complete."]


# -- large transfers ------------------------------------------------------------------------


def test_large_upload_in_many_chunks_is_written_in_order(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    blob = os.urandom(64 * 1024) * 11 + b"end"  # several write blocks
    proto, transport = s.start("STOR big")
    for i in range(0, len(blob), 50_000):
        proto.dataReceived(blob[i:i + 50_000])
    assert transport.producerState == "producing"  # writes finished, reading resumed
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "big").read_bytes() == from_crlf(blob)
    assert hidden(h.root) == []


def test_large_download_is_sent_whole(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    blob = os.urandom(1024 * 1024 + 17)
    h.put("big", blob)
    proto, transport = s.start("TYPE I", "RETR big", codes=[200, 150])
    assert transport.value() == blob
    assert transport.producer is None  # the file unregistered itself when done
    assert s.finish(proto) == ["226 Transfer complete."]
