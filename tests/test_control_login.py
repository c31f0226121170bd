"""The login state machine over the control channel: USER, PASS, REIN, QUIT, failures."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from twisted.cred.credentials import IUsernamePassword

from tests.harness import Harness, cheap_hash, close, failed_login, logged_in, sync_run
from twisted_ftpd.auth import userdb
from twisted_ftpd.config import ServerConfig
from twisted_ftpd.control import cmd_login


def test_user_then_pass_logs_in(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert s.send("USER alice") == ["331 Password required for alice."]
    assert s.send("PASS secret") == ["230 Login successful."]
    assert s.proto.session.logged_in
    assert s.codes("PWD") == [257]


def test_pass_without_user_is_503(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("PASS secret") == [503]
    assert not s.proto.session.logged_in
    assert s.codes("PWD") == [530]


def test_wrong_password_is_answered_only_after_the_login_delay(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    s.send("USER alice")
    assert s.send("PASS nope") == []
    h.reactor.advance(h.config.login_delay - 0.01)
    assert s.take() == []
    h.reactor.advance(0.01)
    assert s.take() == ["530 Login incorrect."]
    assert not s.transport.disconnecting
    assert s.codes("PWD") == [530]


@pytest.mark.parametrize("draw, wait", [(0.0, 0.75), (0.5, 1.0), (0.999, 1.2495)])
def test_the_login_delay_is_spread_so_failures_come_back_apart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, draw: float, wait: float) -> None:
    """Clients that fail together (one tool's parallel connections) are answered at
    different times, between 0.75 and 1.25 times the delay with the default spread."""
    monkeypatch.setattr(cmd_login.random, "random", lambda: draw)
    h = Harness(tmp_path, login_delay=1.0, login_delay_spread=0.25)
    s = h.connect()
    s.send("USER alice")
    assert s.send("PASS nope") == []
    h.reactor.advance(wait - 0.001)
    assert s.take() == []
    h.reactor.advance(0.001)
    assert s.take() == ["530 Login incorrect."]


def test_the_default_spread_is_a_quarter_either_way_and_scales_with_the_factor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = ServerConfig(login_delay=2.0)
    assert config.login_delay_spread == 0.25
    monkeypatch.setattr(cmd_login.random, "random", lambda: 0.0)
    assert cmd_login.login_delay(config) == 1.5
    assert cmd_login.login_delay(config, 4) == 6.0  # a repeat offender's longer wait
    monkeypatch.setattr(cmd_login.random, "random", lambda: 1.0)
    assert cmd_login.login_delay(config) == 2.5
    assert cmd_login.login_delay(ServerConfig(login_delay=2.0, login_delay_spread=0.0), 3) == 6.0


def test_pass_after_a_failed_login_needs_user_again(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert failed_login(h, s, "alice", "nope") == ["530 Login incorrect."]
    assert s.codes("PASS secret") == [503]


def test_login_works_after_a_failure(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    failed_login(h, s, "alice", "nope")
    s.login()
    assert s.codes("PWD") == [257]


def test_max_login_failures_closes_the_connection(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    for _ in range(h.config.max_login_failures - 1):
        assert failed_login(h, s, "alice", "nope") == ["530 Login incorrect."]
        assert not s.transport.disconnecting
    assert failed_login(h, s, "alice", "nope") == ["530 Login incorrect."]
    assert s.transport.disconnecting


def test_no_command_runs_after_max_login_failures(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    for _ in range(h.config.max_login_failures - 1):
        failed_login(h, s, "alice", "nope")
    sent = s.send(b"USER alice\r\nPASS nope\r\nUSER alice\r\nPASS secret\r\nPWD\r\n")
    assert sent == ["331 Password required for alice."]
    h.reactor.advance(h.config.login_delay)
    assert s.take() == ["530 Login incorrect."]
    assert s.transport.disconnecting
    assert not s.proto.session.logged_in


def test_unknown_user_is_indistinguishable_from_wrong_password(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    known_user = s.send("USER alice")
    assert s.send("PASS nope") == []
    h.reactor.advance(h.config.login_delay)
    known_pass = s.take()
    unknown_user = s.send("USER mallory")
    assert s.send("PASS nope") == []
    h.reactor.advance(h.config.login_delay)
    unknown_pass = s.take()
    assert known_user == ["331 Password required for alice."]
    assert unknown_user == ["331 Password required for mallory."]
    assert re.sub("alice", "X", known_user[0]) == re.sub("mallory", "X", unknown_user[0])
    assert known_pass == unknown_pass == ["530 Login incorrect."]


@pytest.mark.parametrize("name", ["anonymous", "ftp", "ANONYMOUS", "Ftp"])
def test_anonymous_logs_in_with_any_password(tmp_path: Path, name: str) -> None:
    h = Harness(tmp_path, anonymous="elr")
    s = h.connect()
    assert s.codes(f"USER {name}") == [331]
    assert s.send("PASS whatever@example.com") == ["230 Login successful."]
    assert s.proto.permissions == "elr"


def test_anonymous_with_empty_password(tmp_path: Path) -> None:
    s = Harness(tmp_path, anonymous="elr").connect()
    assert s.codes("USER anonymous", "PASS") == [331, 230]


@pytest.mark.parametrize("name", ["anonymous", "ftp"])
def test_anonymous_refused_without_its_users_db_line(tmp_path: Path, name: str) -> None:
    h = Harness(tmp_path, anonymous=None)
    s = h.connect()
    assert failed_login(h, s, name, "x@example.com") == ["530 Login incorrect."]
    assert s.codes("PWD") == [530]


def test_user_while_logged_in_is_503(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.codes("USER bob") == [503]
    assert s.codes("PASS secret") == [503]
    assert s.proto.session.logged_in
    assert s.codes("PWD") == [257]


def test_rein_logs_out_and_resets_the_directory(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    (h.root / "sub").mkdir()
    assert s.codes("CWD sub", "TYPE I") == [250, 200]
    reply = s.send("REIN")
    assert len(reply) == 1 and reply[0].startswith("220 ")
    assert s.codes("PWD", "CWD sub", "RETR x", "NOOP") == [530, 530, 530, 200]
    s.login()
    assert s.send("PWD") == ['257 "/" is the current directory.']
    assert s.proto.session.type == "A"


def test_rein_closes_a_pending_data_connection(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    s.pasv()
    assert s.codes("REIN") == [220]
    assert s.proto.data.pending is None
    s.login()
    h.put("f", b"x")
    assert s.codes("RETR f") == [425]


def test_quit_says_goodbye_and_disconnects(tmp_path: Path) -> None:
    _, s = logged_in(tmp_path)
    assert s.send("QUIT") == ["221 Goodbye."]
    assert s.transport.disconnecting


def test_quit_before_login(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("QUIT") == [221]
    assert s.transport.disconnecting


def test_quit_stops_reading_further_pipelined_commands(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"x")
    assert s.send(b"QUIT\r\nDELE f\r\n") == ["221 Goodbye."]
    assert (h.root / "f").exists()


def test_commands_queued_after_quit_do_not_run(tmp_path: Path) -> None:
    h, s = logged_in(tmp_path)
    h.put("f", b"data")
    proto, _ = s.start("RETR f")
    assert s.send(b"QUIT\r\nDELE f\r\n") == []
    assert s.finish(proto) == ["226 Transfer complete.", "221 Goodbye."]
    assert (h.root / "f").exists()


def test_missing_home_directory_refuses_login(tmp_path: Path) -> None:
    h = Harness(tmp_path, users={"alice": ("secret", "elr")})
    missing = tmp_path / "no-such-home"
    userdb.set_user(h.config.users, userdb.UserRecord(
        "bob", cheap_hash("pw"), "elr", str(missing)))
    s = h.connect()
    assert failed_login(h, s, "bob", "pw")[-1].startswith("530")
    assert not s.proto.session.logged_in
    assert s.codes("PWD") == [530]
    assert not missing.exists()
    s.login("alice", "secret")  # other users are unaffected


def test_home_directory_of_a_user_is_its_root(tmp_path: Path) -> None:
    h = Harness(tmp_path, users={"alice": ("secret", "elr")})
    home = tmp_path / "bobhome"
    home.mkdir()
    (home / "mine.txt").write_bytes(b"bob's")
    h.put("root.txt", b"root")
    userdb.set_user(h.config.users, userdb.UserRecord(
        "bob", cheap_hash("pw"), "elr", str(home)))
    s = h.connect()
    s.login("bob", "pw")
    assert s.codes("TYPE I") == [200]
    assert s.send("SIZE mine.txt") == ["213 5"]
    assert s.codes("SIZE root.txt", "SIZE ../root.txt") == [550, 550]


def test_password_keeps_its_spaces(tmp_path: Path) -> None:
    h = Harness(tmp_path, users={"bob": (" pass word ", "elr")})
    s = h.connect()
    assert failed_login(h, s, "bob", "pass word") == ["530 Login incorrect."]
    s.login("bob", " pass word ")
    assert s.proto.permissions == "elr"


def test_user_names_are_case_sensitive(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    assert failed_login(h, s, "ALICE", "secret") == ["530 Login incorrect."]


def test_client_leaving_during_the_login_delay_ends_the_command(tmp_path: Path) -> None:
    """The delay's wait ends with the connection: the session goes idle at once (so a
    server stopping now does not wait for it) and leaves no timer behind."""
    h = Harness(tmp_path, login_delay=5.0)
    s = h.connect()
    assert s.send("USER alice")[0].startswith("331")
    assert s.send("PASS wrong") == []  # answered only after the delay
    assert not s.proto.when_idle().called
    close(s.proto)
    assert s.proto.when_idle().called
    assert [c for c in h.reactor.getDelayedCalls() if c.active()] == []
    h.reactor.advance(5.0)
    assert s.take() == []  # nothing is written to the departed client


@pytest.mark.parametrize("user", ["alice", "anonymous"])
def test_a_login_reads_the_user_source_once(tmp_path: Path, user: str) -> None:
    """The check's lookup serves the realm (home, perms, max_sessions) and the
    session's rates: one read of users.db (or any user source) per login."""
    h = Harness(tmp_path)
    source = h.factory.portal.checkers[IUsernamePassword]._userdb
    looked_up: list[str] = []
    real = source.lookup
    source.lookup = lambda name: looked_up.append(name) or real(name)
    s = h.connect()
    s.login(user, "secret" if user == "alice" else "me@example.com")
    assert looked_up == [user]
    assert s.proto.data.rates is not None
    s.send("QUIT")



def test_a_login_takes_one_trip_to_a_thread(tmp_path: Path) -> None:
    """The lookup, the cache, anonymous and the home check share one blocking call;
    only a password that must be verified takes a second one (in the password pool)."""
    calls: list[str] = []

    def counting(f, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(f.__name__)
        return sync_run(f, *args, **kwargs)

    h = Harness(tmp_path, run=counting)
    for user, password, expected in [("anonymous", "x@example.com", ["_look_up"]),
                                     ("alice", "secret", ["_look_up", "_verify"]),
                                     ("alice", "secret", ["_look_up"])]:
        calls.clear()
        s = h.connect()
        s.login(user, password)
        assert calls == expected, user
        s.send("QUIT")


def test_a_missing_home_found_in_the_checks_thread_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.connect()
    s.login()  # remembered by the cache...
    s.send("QUIT")
    alice = h.factory.portal.checkers[IUsernamePassword]._userdb.lookup("alice")
    userdb.set_user(h.config.users, dataclasses.replace(alice, home="gone"))
    s = h.connect()
    assert s.codes("USER alice", "PASS secret") == [331]
    h.reactor.advance(h.config.login_delay)
    assert s.take()[0].startswith("530")  # ...but the home is checked at every login
