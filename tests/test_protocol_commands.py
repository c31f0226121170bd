"""Unit tests for the command table, FEAT list and HELP text in twisted_ftpd.protocol.commands."""

from __future__ import annotations

import pytest

from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import COMMANDS, FEATURES, Arg, CommandSpec, help_text

PRE_LOGIN = {
    "USER", "PASS", "ACCT", "REIN", "QUIT", "SYST", "HELP",
    "NOOP", "FEAT", "OPTS", "AUTH", "PBSZ", "PROT", "HOST",
}
X_ALIASES = {"XCWD": "CWD", "XCUP": "CDUP", "XPWD": "PWD", "XMKD": "MKD", "XRMD": "RMD"}
IMPLEMENTED = {verb for verb, spec in COMMANDS.items() if spec.implemented}


def test_table_keys_match_specs() -> None:
    assert COMMANDS
    for verb, spec in COMMANDS.items():
        assert isinstance(spec, CommandSpec)
        assert spec.verb == verb
        assert verb.isascii() and verb.isalpha() and verb.isupper()
        assert 3 <= len(verb) <= 4  # RFC 959 command codes


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_help_mentions_verb(verb: str) -> None:
    spec = COMMANDS[verb]
    assert spec.help.strip()
    assert verb in spec.help
    assert spec.help.startswith(verb)
    assert "\n" not in spec.help


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_spec_fields_well_formed(verb: str) -> None:
    spec = COMMANDS[verb]
    assert isinstance(spec.arg, Arg)
    assert spec.perm in {"", "e", "l", "r", "a", "d", "f", "m", "w", "M", "T"}


@pytest.mark.parametrize("verb", ["QUIT", "RETR", "STOR", "LIST", "NLST", "CWD", "PASS"])
def test_core_commands_are_implemented(verb: str) -> None:
    assert COMMANDS[verb].implemented


@pytest.mark.parametrize("feature", FEATURES)
def test_features_name_implemented_verbs(feature: str) -> None:
    name = feature.split()[0]
    if name == "UTF8":
        # RFC 2640: UTF8 is switched on with OPTS UTF8 ON, not a verb of its own.
        assert "UTF8" not in COMMANDS
        assert COMMANDS["OPTS"].implemented
    elif name == "TVFS":
        # RFC 3659 section 6: a property of path names, not a command.
        assert "TVFS" not in COMMANDS
    else:
        assert name in COMMANDS
        assert COMMANDS[name].implemented


@pytest.mark.parametrize("verb", ["EPRT", "EPSV", "MDTM", "SIZE"])
def test_feature_verbs_are_commands(verb: str) -> None:
    assert verb in FEATURES
    assert COMMANDS[verb].implemented


def test_features_have_no_duplicates_and_are_feat_lines() -> None:
    assert len(set(FEATURES)) == len(FEATURES)
    assert "UTF8" in FEATURES
    for feature in FEATURES:
        assert feature == feature.strip()
        assert "\n" not in feature and "\r" not in feature


def test_features_render_as_multiline_feat_reply() -> None:
    body = "\n".join(" " + feature for feature in FEATURES)
    lines = replies.FEATURES(body).render().split(b"\r\n")
    assert lines[0] == b"211-Features:"
    assert lines[-2] == b"211 End"
    assert lines[-1] == b""
    entries = [line.removeprefix(b"211-").decode() for line in lines[1:-2]]
    assert entries == [" " + f for f in FEATURES]


def test_pre_login_commands_exactly() -> None:
    assert {verb for verb, spec in COMMANDS.items() if not spec.login} == PRE_LOGIN


@pytest.mark.parametrize(("alias", "base"), sorted(X_ALIASES.items()))
def test_rfc775_aliases_match_base(alias: str, base: str) -> None:
    a, b = COMMANDS[alias], COMMANDS[base]
    assert (a.arg, a.perm, a.login) == (b.arg, b.perm, b.login)
    assert (a.implemented, a.beside) == (b.implemented, b.beside)
    assert "RFC 775" in a.help


def _help_verbs() -> list[str]:
    lines = help_text().split("\n")
    return [word for line in lines[1:-1] for word in line.split()]


def test_help_text_lists_exactly_implemented_verbs() -> None:
    verbs = _help_verbs()
    assert set(verbs) == IMPLEMENTED
    assert len(verbs) == len(IMPLEMENTED)
    assert verbs == sorted(verbs)


def test_help_text_omits_unimplemented_verbs() -> None:
    unimplemented = set(COMMANDS) - IMPLEMENTED
    assert unimplemented  # the table does list known-but-unserved verbs
    assert not unimplemented & set(_help_verbs())


def test_help_text_shape() -> None:
    lines = help_text().split("\n")
    assert lines[0] == "The following commands are recognized:"
    assert lines[-1] == "Help OK."
    rows = lines[1:-1]
    assert rows
    for row in rows:
        assert row.startswith(" ")
        assert row == row.rstrip()
        assert 1 <= len(row.split()) <= 8
    assert all(len(row.split()) == 8 for row in rows[:-1])


def test_help_reply_renders_without_false_final_line() -> None:
    lines = replies.HELP(help_text()).render().split(b"\r\n")[:-1]
    assert lines[0] == b"214-The following commands are recognized:"
    assert lines[-1] == b"214 Help OK."
    # No continuation line can be mistaken for the final one (RFC 959 4.2).
    for line in lines[1:-1]:
        assert line.startswith(b"214- ") or line.startswith(b" ")
    entries = [w for line in lines[1:-1] for w in line.removeprefix(b"214-").decode().split()]
    assert set(entries) == IMPLEMENTED
