"""Connection limits, bans and per-user sessions over the in-memory control channel,
and the options and users.db fields that set them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogEvent, capturedLogs
from twisted.python import usage

from tests.harness import (
    ALL_PERMS,
    PEER,
    Harness,
    ManualRunner,
    Session,
    cheap_hash,
    connect_recording,
)
from twisted_ftpd.auth import userdb
from twisted_ftpd.auth.sessions import UserSessions
from twisted_ftpd.config import Options, ServerConfig
from twisted_ftpd.protocol.errors import TooManySessions

OTHER = "198.51.100.4"
TOO_MANY = "421 Too many connected users; try again later."
TOO_MANY_HERE = "421 Too many connections from your address; try again later."
BANNED = "421 Too many failed logins from your address; try again later."


@pytest.fixture
def logged() -> Iterator[Sequence[LogEvent]]:
    with capturedLogs() as events:
        yield events


def events_named(logged: Sequence[LogEvent], name: str) -> list[dict[str, Any]]:
    return [{k: e[k] for k in ("peer", "reason", "seconds") if k in e}
            for e in logged if e.get("ftpd_event") == name]


def refused(s: Session, line: str) -> None:
    """The session was greeted with ``line`` alone and is being closed."""
    assert s.greeting == [line]
    assert s.transport.disconnecting
    assert s.codes("USER alice") == []  # nothing more is read


def write_users(h: Harness, *lines: str) -> None:
    (Path(h.config.users)).write_text("\n".join(lines) + "\n")


def user_line(name: str, password: str, **options: str) -> str:
    return userdb.format_record(
        userdb.UserRecord(name, cheap_hash(password), ALL_PERMS, "", dict(options)))


# -- connection limits -------------------------------------------------------------------


def test_connections_past_the_total_get_421_at_once(tmp_path: Path, logged: Any) -> None:
    h = Harness(tmp_path, max_connections=2)
    first, second = h.connect(), h.connect(peer=OTHER)
    assert first.greeting[0].startswith("220")
    assert second.greeting[0].startswith("220")
    refused(h.connect(peer="203.0.113.9"), TOO_MANY)
    assert events_named(logged, "refused") == [
        {"peer": "203.0.113.9", "reason": "max-connections"}]
    first.lose()
    assert h.connect().greeting[0].startswith("220")  # a slot is free again


def test_a_refused_connection_does_not_take_a_slot(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_connections=1)
    h.connect()
    for _ in range(3):
        h.connect().lose()
    assert h.factory.limits.total == 1


def test_connections_past_the_per_address_limit_get_421(tmp_path: Path, logged: Any) -> None:
    h = Harness(tmp_path, max_connections_per_ip=2)
    sessions = [h.connect(), h.connect(peer=f"::ffff:{PEER}")]  # one client, two spellings
    refused(h.connect(), TOO_MANY_HERE)
    assert h.connect(peer=OTHER).greeting[0].startswith("220")
    assert events_named(logged, "refused") == [{"peer": PEER, "reason": "max-connections-per-ip"}]
    sessions[0].lose()
    sessions[0].lose()  # a second report of the same loss frees nothing more
    assert h.factory.limits.count(PEER) == 1
    assert h.connect().greeting[0].startswith("220")


def test_zero_means_no_limit(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_connections=0, max_connections_per_ip=0)
    assert all(h.connect().greeting[0].startswith("220") for _ in range(300))


def test_refusal_over_implicit_tls_comes_after_the_handshake(tmp_path: Path, pem: str) -> None:
    h = Harness(tmp_path, tls_cert=pem, implicit_tls_port=0, max_connections=1)
    connect_recording(h, implicit_tls=True)
    s, transport = connect_recording(h, implicit_tls=True)
    assert transport.tls_starts  # the 421 is sent inside TLS, which the client speaks
    assert s.greeting == [TOO_MANY]


# -- bans ----------------------------------------------------------------------------------


def fail_once(h: Harness, s: Session, password: str = "wrong") -> list[str]:
    s.send("USER alice")
    replies = s.send(f"PASS {password}")
    h.reactor.advance(h.config.login_delay * 16)
    return replies + s.take()


def test_a_banned_address_gets_421_on_connect_and_others_still_log_in(
        tmp_path: Path, logged: Any) -> None:
    h = Harness(tmp_path, ban_after=3, ban_time=60)
    s = h.connect()
    assert fail_once(h, s) == ["530 Login incorrect."]
    assert fail_once(h, s) == ["530 Login incorrect."]
    # The failure that bans is answered at once, with the reason.
    assert s.send("USER alice") and s.send("PASS wrong") == [BANNED]
    assert s.transport.disconnecting
    assert events_named(logged, "ban") == [{"peer": PEER, "seconds": 60}]
    refused(h.connect(), BANNED)
    refused(h.connect(peer=f"::ffff:{PEER}"), BANNED)
    h.connect(peer=OTHER).login()
    assert {"peer": PEER, "reason": "banned"} in events_named(logged, "refused")
    h.reactor.advance(60)
    h.connect().login()  # the ban is over


def test_unknown_users_count_like_wrong_passwords(tmp_path: Path) -> None:
    h = Harness(tmp_path, ban_after=2)
    s = h.connect()
    s.send("USER nobody")
    s.send("PASS x")
    h.reactor.advance(h.config.login_delay)
    s.send("USER alice")
    assert s.send("PASS wrong") == [BANNED]


def test_other_sessions_of_a_banned_address_cannot_even_try(tmp_path: Path) -> None:
    runner = ManualRunner()
    h = Harness(tmp_path, run=runner, ban_after=1)
    waiting = h.connect()
    waiting.send("USER alice")
    attacker = h.connect()
    attacker.send("USER alice")
    attacker.send("PASS wrong")
    runner.flush()
    assert attacker.take() == [BANNED]
    assert waiting.send("PASS secret") == [BANNED]  # refused before any password check
    assert runner.calls == []
    assert waiting.transport.disconnecting


def test_failures_from_one_address_slow_down_across_its_connections(tmp_path: Path) -> None:
    h = Harness(tmp_path, ban_after=0)
    delay = h.config.login_delay
    for _ in range(3):
        s = h.connect()
        s.send("USER alice")
        assert s.send("PASS wrong") == []
        h.reactor.advance(delay)
        assert s.take() == ["530 Login incorrect."]  # a user's few typos: the plain delay
    s = h.connect()
    s.send("USER alice")
    s.send("PASS wrong")
    h.reactor.advance(delay)
    assert s.take() == []  # the fourth from this address waits twice as long
    h.reactor.advance(delay)
    assert s.take() == ["530 Login incorrect."]
    other = h.connect(peer=OTHER)
    other.send("USER alice")
    other.send("PASS wrong")
    h.reactor.advance(delay)
    assert other.take() == ["530 Login incorrect."]
    s.login()  # a right password is never delayed


def test_ban_after_zero_never_bans(tmp_path: Path) -> None:
    h = Harness(tmp_path, ban_after=0, max_login_failures=100)
    s = h.connect()
    for _ in range(20):
        assert fail_once(h, s) == ["530 Login incorrect."]
    assert h.connect().greeting[0].startswith("220")


def test_a_missing_home_is_not_counted_as_an_attack(tmp_path: Path) -> None:
    h = Harness(tmp_path, ban_after=1)
    write_users(h, userdb.format_record(
        userdb.UserRecord("alice", cheap_hash("secret"), ALL_PERMS, "missing")))
    s = h.connect()
    assert fail_once(h, s, "secret") == ["530 Home directory not available."]
    assert not h.factory.limits.bans.banned(PEER)


# -- sessions per user ---------------------------------------------------------------------


def test_max_sessions_in_users_db_limits_a_users_sessions(tmp_path: Path, logged: Any) -> None:
    h = Harness(tmp_path)
    write_users(h, user_line("alice", "secret", max_sessions="1"), user_line("bob", "pw"))
    first = h.connect()
    first.login()
    second = h.connect(peer=OTHER)
    second.send("USER alice")
    assert second.send("PASS secret") == ["421 Too many sessions for alice; try again later."]
    assert second.transport.disconnecting
    assert {"peer": OTHER, "reason": "max-sessions"} in events_named(logged, "refused")
    h.connect().login("bob", "pw")  # other users are not limited
    h.connect().login("bob", "pw")
    first.lose()
    h.connect().login()  # the slot is free again


def test_a_wrong_password_never_learns_that_the_user_is_at_the_limit(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write_users(h, user_line("alice", "secret", max_sessions="1"))
    h.connect().login()
    assert fail_once(h, h.connect(peer=OTHER)) == ["530 Login incorrect."]


def test_rein_and_quit_end_a_session_of_the_user(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write_users(h, user_line("alice", "secret", max_sessions="1"))
    s = h.connect()
    s.login()
    assert s.codes("REIN") == [220]
    s.login()
    assert s.codes("QUIT") == [221]
    s.lose()
    h.connect().login()


def test_max_sessions_on_the_anonymous_line_limits_anonymous_sessions(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write_users(h, "anonymous::elr::max_sessions=2")
    for name in ("anonymous", "ftp"):
        h.connect().login(name, "me@example.org")
    s = h.connect()
    s.send("USER ftp")
    assert s.send("PASS me@example.org") == [
        "421 Too many sessions for anonymous; try again later."]


def test_a_client_gone_during_the_check_gives_its_session_back(tmp_path: Path) -> None:
    runner = ManualRunner()
    h = Harness(tmp_path, run=runner)
    write_users(h, user_line("alice", "secret", max_sessions="1"))
    s = h.connect()
    s.send("USER alice")
    s.send("PASS secret")
    s.lose()
    runner.flush()
    again = h.connect()
    again.send("USER alice")
    again.send("PASS secret")
    runner.flush()
    assert again.take() == ["230 Login successful."]


@pytest.mark.parametrize("value", ["0", "-1", "x", "", "1.5", " 2"])
def test_max_sessions_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(userdb.UserDBError, match="line 1: option max_sessions"):
        userdb.parse(f"alice:{cheap_hash('pw')}:elr::max_sessions={value}\n")


def test_user_sessions_count_each_close_once() -> None:
    sessions = UserSessions()
    close = sessions.open("alice", 2)
    sessions.open("alice", 2)
    with pytest.raises(TooManySessions):
        sessions.open("alice", 2)
    close()
    close()
    assert sessions.count("alice") == 1
    sessions.open("alice", None)  # no limit
    assert sessions.count("alice") == 2


# -- options -------------------------------------------------------------------------------


def parse(*args: str) -> ServerConfig:
    options = Options()
    options.parseOptions(list(args))
    return options.to_config()


def test_the_defaults() -> None:
    config = parse()
    assert (config.max_connections, config.max_connections_per_ip) == (250, 20)
    assert (config.ban_after, config.ban_window, config.ban_time) == (10, 600.0, 600.0)
    assert parse() == ServerConfig()  # the options' defaults are the config's


def test_the_options_reach_the_config() -> None:
    config = parse("--max-connections", "10", "--max-connections-per-ip", "0",
                   "--ban-after", "3", "--ban-window", "60", "--ban-time", "1.5")
    assert (config.max_connections, config.max_connections_per_ip) == (10, 0)
    assert (config.ban_after, config.ban_window, config.ban_time) == (3, 60.0, 1.5)


@pytest.mark.parametrize("args", [
    ["--max-connections", "-1"], ["--max-connections-per-ip", "x"], ["--ban-after", "1.5"],
    ["--ban-window", "0"], ["--ban-time", "-5"], ["--ban-time", "inf"], ["--ban-window", "nan"],
])
def test_bad_values_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        parse(*args)
