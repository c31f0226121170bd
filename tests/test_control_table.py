"""The command table against the handlers, and what HELP and FEAT say about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Harness
from twisted_ftpd.control import dispatch
from twisted_ftpd.control import protocol as control_protocol  # noqa: F401 - registers handlers
from twisted_ftpd.protocol.commands import COMMANDS, FEATURES

IMPLEMENTED = {verb for verb, spec in COMMANDS.items() if spec.implemented}


def test_every_implemented_command_has_a_handler_and_vice_versa() -> None:
    assert set(dispatch.HANDLERS) == IMPLEMENTED


def test_table_entries_are_consistent() -> None:
    for verb, spec in COMMANDS.items():
        assert spec.verb == verb and verb.isupper() and verb.isalpha()
        assert 3 <= len(verb) <= 4
        assert spec.help
        assert len(spec.perm) <= 1 and (spec.perm == "" or spec.perm in "elradfmwMT")


def test_registering_a_verb_outside_the_table_fails() -> None:
    with pytest.raises(KeyError):
        dispatch.handles("XYZZ")(lambda ctx, arg: None)
    assert "XYZZ" not in dispatch.HANDLERS


def help_verbs(lines: list[str]) -> list[str]:
    assert lines[0].startswith("214-") and lines[-1].startswith("214 ")
    return [word for line in lines[1:-1] for word in line.split()]


def test_help_lists_exactly_the_implemented_verbs(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    verbs = help_verbs(s.send("HELP"))
    assert sorted(verbs) == verbs
    assert set(verbs) == IMPLEMENTED and len(verbs) == len(IMPLEMENTED)


def test_help_body_lines_cannot_end_the_reply(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    lines = s.send("HELP")
    assert [line for line in lines if line[:4] == "214 "] == [lines[-1]]


@pytest.mark.parametrize("verb", sorted(IMPLEMENTED))
def test_help_for_each_implemented_verb(tmp_path: Path, verb: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.send(f"HELP {verb.lower()}") == [f"214 {COMMANDS[verb].help}"]


def test_help_retr(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    reply = s.send("HELP RETR")
    assert len(reply) == 1 and reply[0].startswith("214 RETR")


@pytest.mark.parametrize("arg", ["XYZZY", "SMNT", "ACCT"])
def test_help_for_unknown_or_unserved_verb_is_501(tmp_path: Path, arg: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(f"HELP {arg}") == [501]


def test_feat_is_a_multi_line_211(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    lines = s.send("FEAT")
    assert lines[0] == "211-Features:"
    assert lines[-1] == "211 End"
    body = lines[1:-1]
    assert body and all(line[0] == " " and line[1] != " " for line in body)
    features = [line[1:] for line in body]
    assert features == [
        "EPRT", "EPSV", "HOST", "MDTM", "MFMT",
        "MLST type*;size*;modify*;perm*;unix.mode*;unique*;",
        "REST STREAM", "SIZE", "TVFS", "UTF8",
    ]
    assert features == sorted(features)
    assert set(features) == {*FEATURES, features[5]}


def test_feat_announces_only_served_commands() -> None:
    # UTF8 and TVFS name properties of paths, not commands (RFC 2640, RFC 3659 6).
    for feature in FEATURES:
        verb = feature.split()[0]
        assert verb in ("UTF8", "TVFS") or verb in IMPLEMENTED, feature
    assert "MLST" in IMPLEMENTED and "MLSD" in IMPLEMENTED


def test_feat_after_login_is_the_same(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    before = s.send("FEAT")
    s.login()
    assert s.send("FEAT") == before
