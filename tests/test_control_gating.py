"""Generic gating from the command table: unknown verbs, login, arguments, permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import Harness, Session, logged_in
from twisted_ftpd.control import dispatch
from twisted_ftpd.protocol import replies
from twisted_ftpd.protocol.commands import COMMANDS, SITE_COMMANDS, Arg, CommandSpec, features
from twisted_ftpd.protocol.parser import Command
from twisted_ftpd.protocol.session import Phase
from twisted_ftpd.protocol.session import Session as SessionState


def tree(root: Path) -> list[tuple[str, bytes | None]]:
    """Every path under root with its content (None for directories)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out.append((os.path.relpath(os.path.join(dirpath, name), root), None))
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out.append((os.path.relpath(path, root), f.read()))
    return sorted(out, key=lambda item: item[0])


def sample_line(verb: str) -> str:
    """A well-formed-looking line for ``verb``: with an argument unless it takes none."""
    return verb if COMMANDS[verb].arg is Arg.NONE else f"{verb} x"


LOGIN_REQUIRED = sorted(v for v, spec in COMMANDS.items() if spec.login)
IMPLEMENTED = sorted(v for v, spec in COMMANDS.items() if spec.implemented)
UNIMPLEMENTED = sorted(v for v, spec in COMMANDS.items() if not spec.implemented)


def test_unknown_verb_is_500(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("XYZZY") == ["500 Syntax error, command unrecognized."]
    assert s.codes("XYZZY with args", "NOOPX", "NOOP") == [500, 500, 200]


def test_unknown_verb_before_login_is_500(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("XYZZY") == [500]


@pytest.mark.parametrize("line", ["noop", "NoOp", "nOOP"])
def test_verbs_are_case_insensitive(tmp_path: Path, line: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(line) == [200]


def test_case_insensitive_verbs_after_login(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert s.codes("user alice", "Pass secret", "pwd", "MkD d", "cwd d") == [
        331, 230, 257, 257, 250]
    assert (h.root / "d").is_dir()


def test_arguments_keep_their_case(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes("mkd MixedCase") == [257]
    assert os.listdir(h.root) == ["MixedCase"]


@pytest.mark.parametrize("verb", LOGIN_REQUIRED)
def test_login_required_commands_are_530_before_login(tmp_path: Path, verb: str) -> None:
    h = Harness(tmp_path)
    h.put("x", b"keep")
    s = h.connect()
    before = tree(h.root)
    assert s.codes(sample_line(verb)) == [530]
    assert tree(h.root) == before
    assert h.reactor.tcpServers == [] and h.reactor.tcpClients == []


@pytest.mark.parametrize("verb", LOGIN_REQUIRED)
def test_login_required_commands_are_530_even_without_their_argument(
        tmp_path: Path, verb: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(verb) == [530]


@pytest.mark.parametrize(("line", "code"), [
    ("USER alice", 331),
    ("QUIT", 221),
    ("FEAT", 211),
    ("HELP", 214),
    ("HELP USER", 214),
    ("NOOP", 200),
    ("SYST", 215),
    ("OPTS UTF8 ON", 200),
    ("OPTS UTF8", 200),
    ("REIN", 220),
])
def test_commands_allowed_before_login(tmp_path: Path, line: str, code: int) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(line) == [code]


def test_syst_reply(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.send("SYST") == ["215 UNIX Type: L8"]


def test_opts_utf8_on_before_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.send("OPTS UTF8 ON") == ["200 Always in UTF8 mode."]


def test_opts_other_values(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("OPTS UTF8 OFF", "OPTS utf8 on", "OPTS XYZZY on") == [504, 200, 501]
    assert s.send("OPTS MLST type;") == ["200 MLST OPTS type;"]


@pytest.mark.parametrize("line", ["SMNT x", "SMNT /mnt", "ACCT x"])
def test_unimplemented_commands_are_502_after_login(tmp_path: Path, line: str) -> None:
    h, s = logged_in(tmp_path)
    assert s.codes(line) == [502]
    assert os.listdir(h.root) == []


@pytest.mark.parametrize("line", ["ACCT x", "ACCT billing"])
def test_unimplemented_commands_are_502_before_login(tmp_path: Path, line: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(line) == [502]
    assert s.codes("USER alice", "PASS secret") == [331, 230]


@pytest.mark.parametrize("verb", UNIMPLEMENTED)
def test_every_unimplemented_verb_is_502_for_a_logged_in_user(tmp_path: Path,
                                                               verb: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes(sample_line(verb)) == [502]


@pytest.mark.parametrize("verb", ["ABOR", "ALLO", "APPE", "HOST", "MFMT", "MLSD", "MLST",
                                  "SITE", "STAT", "STOU"])
def test_rfc3659_and_desktop_client_verbs_are_served(verb: str) -> None:
    assert COMMANDS[verb].implemented and verb not in UNIMPLEMENTED


def test_only_account_mount_and_security_verbs_may_be_unserved() -> None:
    assert {"ACCT", "SMNT"} <= set(UNIMPLEMENTED)
    assert set(UNIMPLEMENTED) <= {"ACCT", "SMNT", "AUTH", "PBSZ", "PROT", "CCC"}


def test_unimplemented_gate_is_checked_before_permissions() -> None:
    # No unserved verb in the table needs a letter any more, so check the gate itself:
    # an unserved verb needing "a", for a user who lacks it, is still 502, not 550.
    spec = CommandSpec("APPE", Arg.REQUIRED, "APPE <file>.", perm="a", implemented=False)
    refusal = dispatch.gate(spec, Command("APPE", "x"),
                            dispatch.GateState(Phase.LOGGED_IN, "elr", False, False, False))
    assert refusal == replies.NOT_IMPLEMENTED("APPE")
    assert refusal.code == 502


@pytest.mark.parametrize("verb", sorted(v for v in IMPLEMENTED
                                        if COMMANDS[v].arg is Arg.REQUIRED))
def test_missing_required_argument_is_501(tmp_path: Path, verb: str) -> None:
    h, s = logged_in(tmp_path)
    reply = s.send(verb)
    assert reply == [f"501 {verb} needs an argument."]
    assert s.codes(f"{verb}   ") == [501]  # blanks are no argument either
    assert os.listdir(h.root) == []


def test_user_without_name_is_501_before_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.send("USER") == ["501 USER needs an argument."]


@pytest.mark.parametrize("verb", sorted(v for v in IMPLEMENTED if COMMANDS[v].arg is Arg.NONE))
def test_argument_to_a_no_argument_command_is_501(tmp_path: Path, verb: str) -> None:
    _, s = logged_in(tmp_path)
    assert s.send(f"{verb} x") == [f"501 {verb} takes no argument."]
    assert not s.transport.disconnecting
    assert s.proto.session.logged_in


def test_pwd_and_cdup_with_argument_change_nothing(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "d").mkdir()
    assert s.codes("CWD d", "CDUP x", "PWD x") == [250, 501, 501]
    assert s.send("PWD") == ['257 "/d" is the current directory.']


# -- permission letters ---------------------------------------------------------------


def read_only(tmp_path: Path) -> tuple[Harness, Session]:
    h = Harness(tmp_path, users={"ro": ("pw", "elr")})
    h.put("file.txt", b"original")
    (h.root / "dir").mkdir()
    (h.root / "dir" / "inner").write_bytes(b"inner")
    s = h.connect()
    s.login("ro", "pw")
    return h, s


@pytest.mark.parametrize("line", ["STOR file.txt", "STOR new.txt", "DELE file.txt",
                                  "MKD newdir", "RMD dir", "RNFR file.txt", "RNTO x",
                                  "XMKD newdir", "XRMD dir", "DELE dir/inner"])
def test_read_only_user_cannot_change_anything(tmp_path: Path, line: str) -> None:
    h, s = read_only(tmp_path)
    before = tree(h.root)
    s.pasv()
    assert s.send(line) == ["550 Permission denied."]
    assert tree(h.root) == before


def test_read_only_user_can_read(tmp_path: Path) -> None:
    _, s = read_only(tmp_path)
    assert s.codes("CWD dir", "CDUP", "TYPE I", "SIZE file.txt", "MDTM file.txt") == [
        250, 250, 200, 213, 213]


def test_read_only_stor_is_refused_before_150(tmp_path: Path) -> None:
    h, s = read_only(tmp_path)
    s.pasv()
    assert s.codes("STOR file.txt") == [550]
    assert (h.root / "file.txt").read_bytes() == b"original"
    assert [n for n in os.listdir(h.root) if n.startswith(".")] == []


@pytest.mark.parametrize(("perms", "line", "code"), [
    ("lr", "CWD dir", 550),        # no "e"
    ("er", "SIZE file.txt", 550),  # no "l"
    ("er", "LIST", 550),
    ("el", "RETR file.txt", 550),  # no "r"
    ("elrd", "RNFR file.txt", 550),  # no "f"
    ("elrf", "RNFR file.txt", 350),
    ("elrm", "MKD newdir", 257),
    ("elrd", "DELE file.txt", 250),
])
def test_each_letter_gates_its_commands(tmp_path: Path, perms: str, line: str,
                                        code: int) -> None:
    h, s = logged_in(tmp_path, perms)
    h.put("file.txt", b"x")
    (h.root / "dir").mkdir()
    s.pasv()
    assert s.codes(line) == [code]


@pytest.mark.parametrize("perms", ["elr", "elrw", "elradfmwMT", "l"])
def test_anonymous_gets_exactly_the_letters_of_its_line(tmp_path: Path, perms: str) -> None:
    h = Harness(tmp_path, anonymous=perms)
    s = h.connect()
    s.login("anonymous", "guest@example.com")
    assert s.proto.permissions == perms
    expected_mkd = 257 if "m" in perms else 550
    assert s.codes("MKD made") == [expected_mkd]
    assert (h.root / "made").exists() == ("m" in perms)


def test_anonymous_read_only_cannot_write(tmp_path: Path) -> None:
    h = Harness(tmp_path, anonymous="elr")
    h.put("pub.txt", b"public")
    s = h.connect()
    s.login("ftp", "x")
    s.pasv()
    assert s.codes("STOR up.txt", "DELE pub.txt", "RNFR pub.txt", "MKD d") == [550] * 4
    assert os.listdir(h.root) == ["pub.txt"]
    assert s.codes("TYPE I", "SIZE pub.txt") == [200, 213]


# -- order rules from the table -----------------------------------------------------------


def _state(phase: Phase = Phase.LOGGED_IN, permissions: str = "elradfmwMT", *,
           tls_configured: bool = True, tls_started: bool = False,
           epsv_all: bool = False) -> dispatch.GateState:
    return dispatch.GateState(phase, permissions, tls_configured, tls_started, epsv_all)


def _gate(line: str, state: dispatch.GateState) -> int | None:
    verb, _, arg = line.partition(" ")
    refusal = dispatch.gate(COMMANDS.get(verb), Command(verb, arg), state)
    return None if refusal is None else refusal.code


@pytest.mark.parametrize(("line", "phase", "code"), [
    ("USER bob", Phase.LOGGED_IN, 503),
    ("USER bob", Phase.USER_GIVEN, None),
    ("PASS pw", Phase.CONNECTED, 503),
    ("PASS pw", Phase.LOGGED_IN, 503),
    ("PASS pw", Phase.USER_GIVEN, None),
    ("HOST example.org", Phase.USER_GIVEN, 503),
    ("HOST example.org", Phase.CONNECTED, None),
    ("AUTH TLS", Phase.LOGGED_IN, 503),
    ("AUTH TLS", Phase.CONNECTED, None),
])
def test_login_phase_rules(line: str, phase: Phase, code: int | None) -> None:
    assert _gate(line, _state(phase)) == code


def test_tls_rules() -> None:
    assert _gate("AUTH TLS", _state(Phase.CONNECTED, tls_configured=False)) == 502
    assert _gate("AUTH TLS", _state(Phase.CONNECTED, tls_started=True)) == 503
    assert _gate("PBSZ 0", _state(Phase.CONNECTED)) == 503  # AUTH first
    assert _gate("PROT P", _state(Phase.CONNECTED)) == 503
    assert _gate("PROT P", _state(Phase.CONNECTED, tls_started=True)) is None


@pytest.mark.parametrize("line", ["PORT 1,2,3,4,5,6", "EPRT |1|1.2.3.4|5000|", "PASV"])
def test_epsv_all_blocks_the_other_set_ups(line: str) -> None:
    assert _gate(line, _state(epsv_all=True)) == 503
    assert _gate(line, _state()) is None
    assert _gate("EPSV", _state(epsv_all=True)) is None


def test_stat_needs_list_permission_only_with_a_path() -> None:
    assert _gate("STAT", _state(permissions="e")) is None
    assert _gate("STAT /", _state(permissions="e")) == 550
    assert _gate("STAT /", _state(permissions="el")) is None


def test_site_sub_commands_are_gated_as_their_own_entries() -> None:
    spec, sub = dispatch.site_command(Command("SITE", "chmod 644 f"))
    assert spec is SITE_COMMANDS["CHMOD"] and sub.arg == "644 f"
    assert dispatch.gate(spec, sub, _state(permissions="elr")).code == 550
    assert dispatch.gate(spec, sub, _state(permissions="elrM")) is None
    assert dispatch.site_command(Command("SITE", "NOPE"))[0] is None


def test_feat_is_derived_from_the_table() -> None:
    with_tls = features(True)
    assert {"AUTH TLS", "PBSZ", "PROT"} <= set(with_tls)
    assert not {"AUTH TLS", "PBSZ", "PROT"} & set(features(False))
    assert with_tls == sorted(spec.feature for spec in COMMANDS.values() if spec.feature)


def test_rnfr_lasts_exactly_one_command() -> None:
    session = SessionState()
    session.rename_from = ("a",)
    session.command_starting("RNTO")
    assert session.rename_from == ("a",)
    session.command_starting("NOOP")
    assert session.rename_from is None
