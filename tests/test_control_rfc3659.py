"""RFC 3659 machine listings (MLSD, MLST, OPTS MLST) and the other new store verbs
(APPE, STOU), over the in-memory control harness."""

from __future__ import annotations

import calendar
import os
import re
from pathlib import Path

from tests.harness import ALL_PERMS, Harness, Session, logged_in

WHEN = calendar.timegm((2021, 3, 4, 5, 6, 7))
STAMP = "20210304050607"
ALL_FACTS = ["type", "size", "modify", "perm", "unix.mode", "unique"]


def populate(h: Harness) -> None:
    """/f.txt (5 bytes, 0644), /d (0755) holding /d/in (3 bytes, 0600); all dated WHEN."""
    h.put("f.txt", b"hello")
    h.put("d/in", b"abc")
    os.chmod(h.root / "f.txt", 0o644)
    os.chmod(h.root / "d" / "in", 0o600)
    os.chmod(h.root / "d", 0o755)
    for path in (h.root / "f.txt", h.root / "d" / "in", h.root / "d", h.root):
        os.utime(path, (WHEN, WHEN))


def facts_of(line: str) -> tuple[list[tuple[str, str]], str]:
    """``fact=value;...; name`` -> ([(fact, value)...], name); facts keep their order."""
    facts, sep, name = line.partition(" ")
    assert sep, line
    assert facts == "" or facts.endswith(";"), line
    pairs = [tuple(part.split("=", 1)) for part in facts.split(";") if part]
    assert all(len(pair) == 2 for pair in pairs), line
    return pairs, name  # type: ignore[return-value]


def mlsd(s: Session, arg: str = "") -> tuple[list[str], dict[str, dict[str, str]], list[str]]:
    """PASV + MLSD + connect + close: (replies, {name: facts}, raw data lines)."""
    replies, lines = s.listing(f"MLSD {arg}".rstrip(), may_refuse=True)
    entries = {}
    for line in lines:
        pairs, name = facts_of(line)
        entries[name] = dict(pairs)
    assert len(entries) == len(lines)
    return replies, entries, lines


def mlst_line(reply: list[str]) -> str:
    """The single facts line of a 250 MLST reply, checked for shape, without its space."""
    assert len(reply) == 3, reply
    assert reply[0].startswith("250-") and reply[2] == "250 End", reply
    body = reply[1]
    assert body[0] == " " and body[1] != " ", body
    return body[1:]


# -- MLSD ---------------------------------------------------------------------------------


def test_mlsd_at_the_root_lists_cdir_and_every_entry(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    replies, entries, lines = mlsd(s)
    assert replies == ["150 Opening ASCII mode data connection for file list.",
                       "226 Transfer complete."]
    assert list(entries) == [".", "d", "f.txt"]  # no ".." at the root
    assert [fact for fact, _ in facts_of(lines[2])[0]] == ALL_FACTS
    f = entries["f.txt"]
    assert {k: v for k, v in f.items() if k != "unique"} == {
        "type": "file", "size": "5", "modify": STAMP, "perm": "adfrw", "unix.mode": "0644"}
    d = entries["d"]
    assert "size" not in d
    assert {k: v for k, v in d.items() if k != "unique"} == {
        "type": "dir", "modify": STAMP, "perm": "cdeflmp", "unix.mode": "0755"}
    cdir = entries["."]
    assert cdir["type"] == "cdir" and cdir["perm"] == "cdeflmp" and cdir["modify"] == STAMP
    uniques = [entry["unique"] for entry in entries.values()]
    assert all(uniques) and len(set(uniques)) == 3


def test_mlsd_of_a_subdirectory_has_cdir_and_pdir(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    _, at_root, _ = mlsd(s)
    replies, entries, lines = mlsd(s, "d")
    assert replies[-1] == "226 Transfer complete."
    assert lines[0].endswith(" .") and lines[1].endswith(" ..")
    assert list(entries) == [".", "..", "in"]
    assert entries["."]["type"] == "cdir" and entries["."]["unique"] == at_root["d"]["unique"]
    assert entries[".."]["type"] == "pdir" and entries[".."]["unique"] == at_root["."]["unique"]
    assert entries["in"]["type"] == "file" and entries["in"]["size"] == "3"
    assert entries["in"]["unix.mode"] == "0600"
    # The same listing from inside the directory.
    assert s.codes("CWD d") == [250]
    _, from_inside, _ = mlsd(s)
    assert from_inside == entries


def test_mlsd_perm_fact_follows_the_user_letters(tmp_path: Path) -> None:
    h = Harness(tmp_path, users={"ro": ("pw", "elr"), "rw": ("pw", ALL_PERMS)})
    populate(h)
    perms = {}
    for user in ("ro", "rw"):
        s = h.connect()
        s.login(user, "pw")
        _, entries, _ = mlsd(s)
        perms[user] = {name: facts["perm"] for name, facts in entries.items()}
    assert perms["ro"] == {".": "el", "d": "el", "f.txt": "r"}
    assert perms["rw"] == {".": "cdeflmp", "d": "cdeflmp", "f.txt": "adfrw"}


def test_mlsd_of_a_file_is_501_without_150(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    s.pasv()
    assert s.send("MLSD f.txt") == ["501 /f.txt: Not a directory (use MLST for a file)."]
    assert s.proto.data.pending is None  # the data setup was used up
    assert s.codes("NOOP") == [200]


def test_mlsd_of_a_missing_directory_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    replies, _, _ = mlsd(s, "nope")
    assert replies == ["550 /nope: No such file or directory."]


def test_mlsd_and_mlst_need_l(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, "er")
    populate(h)
    s.pasv()
    assert s.send("MLSD") == ["550 Permission denied."]
    assert s.send("MLST f.txt") == ["550 Permission denied."]


# -- MLST ---------------------------------------------------------------------------------


def test_mlst_of_a_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    reply = s.send("MLST f.txt")
    assert reply[0] == "250-Listing /f.txt"
    pairs, path = facts_of(mlst_line(reply))
    assert path == "/f.txt"
    assert [fact for fact, _ in pairs] == ALL_FACTS
    facts = dict(pairs)
    assert facts["type"] == "file" and facts["size"] == "5" and facts["modify"] == STAMP
    assert facts["perm"] == "adfrw" and facts["unix.mode"] == "0644"
    _, entries, _ = mlsd(s)
    assert facts["unique"] == entries["f.txt"]["unique"]


def test_mlst_of_a_directory_and_of_the_root(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    pairs, path = facts_of(mlst_line(s.send("MLST d")))
    assert path == "/d" and dict(pairs)["type"] == "dir" and "size" not in dict(pairs)
    assert dict(pairs)["perm"] == "cdeflmp"
    pairs, path = facts_of(mlst_line(s.send("MLST /")))
    assert path == "/" and dict(pairs)["type"] == "dir"


def test_mlst_gives_the_full_path_from_a_subdirectory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    assert s.codes("CWD d") == [250]
    line = mlst_line(s.send("MLST in"))
    assert line.endswith(" /d/in")
    assert dict(facts_of(line)[0])["size"] == "3"


def test_mlst_without_argument_describes_the_current_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    populate(h)
    at_root = mlst_line(s.send("MLST"))
    assert at_root.endswith(" /") and at_root == mlst_line(s.send("MLST /"))
    assert s.codes("CWD d") == [250]
    reply = s.send("MLST")
    assert reply[0] == "250-Listing /d"
    pairs, path = facts_of(mlst_line(reply))
    assert path == "/d" and dict(pairs)["type"] == "dir"


def test_mlst_of_a_missing_path_is_550(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("MLST nope") == ["550 /nope: No such file or directory."]


# -- OPTS MLST and FEAT ---------------------------------------------------------------------


def feat_mlst(s: Session) -> str:
    lines = [line for line in s.send("FEAT") if line.startswith(" MLST ")]
    assert len(lines) == 1
    return lines[0][1:]


def after_opts_mlst(tmp_path: Path, facts: str) -> tuple[Session, list[str]]:
    """A logged-in session over the populated tree, after OPTS MLST ``facts``: the
    session and that command's reply."""
    h, s = logged_in(tmp_path)
    populate(h)
    return s, s.send(f"OPTS MLST {facts}")


def test_feat_stars_every_fact_by_default(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert feat_mlst(s) == "MLST type*;size*;modify*;perm*;unix.mode*;unique*;"


def test_opts_mlst_selects_the_facts(tmp_path: Path) -> None:
    s, reply = after_opts_mlst(tmp_path, "type;size;")
    assert reply == ["200 MLST OPTS type;size;"]
    _, entries, lines = mlsd(s)
    assert entries == {".": {"type": "cdir"}, "d": {"type": "dir"},
                       "f.txt": {"type": "file", "size": "5"}}
    assert lines[-1] == "type=file;size=5; f.txt"
    assert mlst_line(s.send("MLST f.txt")) == "type=file;size=5; /f.txt"
    assert feat_mlst(s) == "MLST type*;size*;modify;perm;unix.mode;unique;"


def test_opts_mlst_ignores_unknown_facts_and_case(tmp_path: Path) -> None:
    s, reply = after_opts_mlst(tmp_path, "Size;bogus;UNIX.mode;x=y;")
    assert reply == ["200 MLST OPTS size;unix.mode;"]
    _, entries, _ = mlsd(s)
    assert entries["f.txt"] == {"size": "5", "unix.mode": "0644"}
    assert feat_mlst(s) == "MLST type;size*;modify;perm;unix.mode*;unique;"


def test_opts_mlst_with_no_known_fact_turns_all_off(tmp_path: Path) -> None:
    s, reply = after_opts_mlst(tmp_path, "bogus;")
    assert reply == ["200 MLST OPTS"]
    assert feat_mlst(s) == "MLST type;size;modify;perm;unix.mode;unique;"
    _, entries, _ = mlsd(s)
    assert entries == {".": {}, "d": {}, "f.txt": {}}


def test_opts_mlst_before_login_and_per_logged_in(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    populate(h)
    s = h.connect()
    assert s.send("OPTS MLST modify;") == ["200 MLST OPTS modify;"]
    s.login()
    assert facts_of(mlst_line(s.send("MLST f.txt")))[0] == [("modify", STAMP)]
    other = h.connect()
    other.login()
    assert [fact for fact, _ in facts_of(mlst_line(other.send("MLST f.txt")))[0]] == ALL_FACTS


# -- APPE ---------------------------------------------------------------------------------


def test_appe_appends_to_an_existing_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"abc")
    assert s.codes("TYPE I") == [200]
    assert s.upload("APPE f", b"de", b"f") == [
        "150 Opening BINARY mode data connection for /f.", "226 Transfer complete."]
    assert (h.root / "f").read_bytes() == b"abcdef"
    assert os.listdir(h.root) == ["f"]


def test_appe_creates_a_missing_file(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("TYPE I") == [200]
    assert [r[:3] for r in s.upload("APPE new", b"fresh")] == ["150", "226"]
    assert (h.root / "new").read_bytes() == b"fresh"


def test_appe_needs_a(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, "elrw")
    h.put("f", b"abc")
    s.pasv()
    assert s.send("APPE f") == ["550 Permission denied."]
    assert s.send("APPE g") == ["550 Permission denied."]
    assert (h.root / "f").read_bytes() == b"abc"
    assert os.listdir(h.root) == ["f"]


def test_rest_is_consumed_and_ignored_by_appe(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"0123456789")
    assert s.codes("TYPE I", "REST 2") == [200, 350]
    assert [r[:3] for r in s.upload("APPE f", b"ab")] == ["150", "226"]
    assert (h.root / "f").read_bytes() == b"0123456789ab"
    assert s.proto.session.rest_offset == 0
    # A following STOR starts from the beginning again: the REST was used up.
    assert [r[:3] for r in s.upload("STOR f", b"new")] == ["150", "226"]
    assert (h.root / "f").read_bytes() == b"new"


# -- STOU ---------------------------------------------------------------------------------

STOU_150 = re.compile(r"^150 FILE: (\S+)$")


def stou(s: Session, line: str, data: bytes) -> str:
    replies = s.upload(line, data)
    assert len(replies) == 2, replies
    m = STOU_150.match(replies[0])
    assert m, replies
    assert replies[1] == "226 Transfer complete."
    return m.group(1)


def test_stou_stores_under_the_name_it_announces(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    name = stou(s, "STOU", b"unique data")
    assert "/" not in name
    assert os.listdir(h.root) == [name]
    assert (h.root / name).read_bytes() == b"unique data"


def test_stou_never_overwrites(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"keep")
    first = stou(s, "STOU", b"one")
    second = stou(s, "STOU", b"two")
    assert len({first, second, "f"}) == 3
    assert sorted(os.listdir(h.root)) == sorted(["f", first, second])
    assert (h.root / "f").read_bytes() == b"keep"
    assert (h.root / first).read_bytes() == b"one"
    assert (h.root / second).read_bytes() == b"two"


def test_stou_argument_is_the_name_prefix(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("report.txt", b"old report")
    name = stou(s, "STOU report.txt", b"new report")
    assert name.startswith("report.txt") and name != "report.txt"
    assert (h.root / "report.txt").read_bytes() == b"old report"
    assert (h.root / name).read_bytes() == b"new report"


def test_stou_stores_in_the_current_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.codes("CWD d") == [250]
    name = stou(s, "STOU", b"in d")
    assert os.listdir(h.root) == ["d"]
    assert (h.root / "d" / name).read_bytes() == b"in d"


def test_stou_needs_w(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path, "elra")
    s.pasv()
    assert s.send("STOU") == ["550 Permission denied."]
    assert s.send("STOU x") == ["550 Permission denied."]
    assert os.listdir(h.root) == []


def test_stou_without_data_setup_is_425_and_creates_nothing(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("STOU") == [425]
    assert os.listdir(h.root) == []
