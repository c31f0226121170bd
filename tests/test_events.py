"""Session events: what each command emits, with which fields, at which level."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import error
from twisted.logger import Logger, LogLevel, LogPublisher, formatEvent

from tests.harness import Harness, Session, close, connect_recording
from twisted_ftpd.events import FIELDS, KEY, EventLog, is_event, new_session_id

PEER = "192.0.2.7"


class Recorder:
    """The session events one harness's server emits."""

    def __init__(self, h: Harness) -> None:
        self.events: list[dict[str, Any]] = []
        h.factory.events.observe(self.events.append)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if is_event(e, name)]

    def only(self, name: str) -> dict[str, Any]:
        (event,) = self.named(name)
        return event

    def fields(self, name: str) -> dict[str, Any]:
        """The vocabulary fields of the one ``name`` event."""
        event = self.only(name)
        return {key: event[key] for key in FIELDS[name]}


def recorded_login(tmp_path: Path, perms: str = "elradfmwMT", **options: Any,
                   ) -> tuple[Harness, Session, Recorder]:
    h = Harness(tmp_path, users={"alice": ("secret", perms)}, **options)
    rec = Recorder(h)
    s = h.connect()
    s.login()
    return h, s, rec


# -- the vocabulary --------------------------------------------------------------------------


def test_session_ids_are_eight_hex_digits_and_unique() -> None:
    ids = [new_session_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_emit_rejects_unknown_events_and_wrong_fields() -> None:
    log = EventLog(forward=None)
    with pytest.raises(TypeError, match="unknown"):
        log.emit("upload", session="s", peer="p")
    with pytest.raises(TypeError, match="connect takes"):
        log.emit("connect", session="s")
    with pytest.raises(TypeError, match="connect takes"):
        log.emit("connect", session="s", peer="p", user="alice")


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_event_renders_as_text(name: str) -> None:
    seen: list[dict[str, Any]] = []
    log = EventLog(forward=seen.append)
    sample: dict[str, Any] = {field: f"<{field}>" for field in FIELDS[name]}
    if name == "transfer":
        sample.update(bytes=10, seconds=2.0, rate=5.0, tls=False, completed=False)
    log.emit(name, **sample)
    (event,) = seen
    text = formatEvent(event)
    assert "Unable to format" not in text
    assert event[KEY] == name and event["log_namespace"] == "twisted_ftpd.events"
    for field in FIELDS[name]:
        if field not in ("completed", "reason", "tls", "bytes", "seconds", "rate"):
            assert f"<{field}>" in text, (field, text)
    if name == "transfer":
        assert text.endswith("incomplete: <reason>")


def test_each_server_observes_only_its_own_events(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    one, two = Harness(tmp_path / "1"), Harness(tmp_path / "2")
    rec_one, rec_two = Recorder(one), Recorder(two)
    one.connect()
    one.connect()
    two.connect()
    assert len(rec_one.named("connect")) == 2
    assert len(rec_two.named("connect")) == 1


def test_events_also_reach_the_global_log(tmp_path: Path) -> None:
    from twisted.logger import globalLogPublisher

    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        Harness(tmp_path).connect()
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert [e[KEY] for e in seen if is_event(e)] == ["connect"]


# -- connect, login, logout -------------------------------------------------------------------


def test_connect_has_the_session_id_and_the_plain_ipv4_peer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    rec = Recorder(h)
    s = h.connect(peer="::ffff:192.0.2.9", local="::ffff:192.0.2.1")
    assert rec.fields("connect") == {"session": s.proto.session_id, "peer": "192.0.2.9"}
    assert rec.only("connect")["log_level"] is LogLevel.info


def test_sessions_have_different_ids(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert h.connect().proto.session_id != h.connect().proto.session_id


def test_login_ok_with_a_password(tmp_path: Path) -> None:
    _, s, rec = recorded_login(tmp_path)
    assert rec.fields("login") == {"session": s.proto.session_id, "peer": PEER, "user": "alice",
                                   "method": "password", "result": "ok"}
    assert rec.only("login")["log_level"] is LogLevel.info


def test_failed_login_is_a_warning(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    rec = Recorder(h)
    s = h.connect()
    s.send("USER alice")
    s.send("PASS wrong")
    h.reactor.advance(h.config.login_delay)
    assert s.take() == ["530 Login incorrect."]
    event = rec.only("login")
    assert (event["user"], event["method"], event["result"]) == ("alice", "password", "failed")
    assert event["log_level"] is LogLevel.warn


def test_anonymous_login_names_the_account_in_lower_case(tmp_path: Path) -> None:
    h = Harness(tmp_path, anonymous="elr")
    rec = Recorder(h)
    s = h.connect()
    s.login("ANONYMOUS", "guest@example.org")
    event = rec.only("login")
    assert (event["user"], event["method"], event["result"]) == ("anonymous", "anonymous", "ok")


@pytest.mark.parametrize("how", ["QUIT", "REIN", "disconnect"])
def test_logout_when_a_logged_in_session_ends(tmp_path: Path, how: str) -> None:
    _, s, rec = recorded_login(tmp_path)
    if how == "disconnect":
        s.lose()
    else:
        s.send(how)
        s.lose()
    assert rec.fields("logout") == {"session": s.proto.session_id, "peer": PEER, "user": "alice"}


def test_no_logout_for_a_session_that_never_logged_in(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    rec = Recorder(h)
    s = h.connect()
    s.send("USER alice")
    s.lose()
    assert rec.named("logout") == []


# -- transfers --------------------------------------------------------------------------------


def test_completed_download(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    h.put("dir/f.bin", b"x" * 1000)
    s.send("TYPE I")
    proto, transport = s.start("RETR dir/f.bin")
    assert transport.value() == b"x" * 1000
    h.reactor.advance(4)
    assert s.finish(proto) == ["226 Transfer complete."]
    assert rec.fields("transfer") == {
        "session": s.proto.session_id, "peer": PEER, "user": "alice", "direction": "download",
        "path": "/dir/f.bin", "bytes": 1000, "seconds": 4.0, "rate": 250.0, "tls": False,
        "completed": True, "reason": None, "mode": "binary"}
    assert formatEvent(rec.only("transfer")).endswith(", complete")


def test_completed_ascii_upload_counts_the_bytes_received(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    proto, _ = s.start("STOR new name.txt")
    proto.dataReceived(b"a\r\nb\r\n")
    h.reactor.advance(2)
    assert s.finish(proto) == ["226 Transfer complete."]
    event = rec.fields("transfer")
    assert (event["direction"], event["path"], event["bytes"], event["mode"]) == (
        "upload", "/new name.txt", 6, "ascii")
    assert (event["seconds"], event["rate"], event["completed"]) == (2.0, 3.0, True)


@pytest.mark.parametrize("verb", ["APPE", "STOU"])
def test_other_uploads_are_transfers_too(tmp_path: Path, verb: str) -> None:
    h, s, rec = recorded_login(tmp_path)
    s.upload(f"{verb} f", b"data")
    event = rec.only("transfer")
    assert (event["direction"], event["bytes"], event["completed"]) == ("upload", 4, True)
    stored = [p.name for p in h.root.iterdir()]
    assert event["path"] == "/" + stored[0]


def test_download_broken_by_the_client(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    h.put("f", b"abc")
    proto, _ = s.start("RETR f")
    s.finish(proto, error.ConnectionLost())
    event = rec.only("transfer")
    assert (event["completed"], event["reason"], event["bytes"]) == (
        False, "426 Connection closed; transfer aborted.", 3)
    assert formatEvent(event).endswith("incomplete: 426 Connection closed; transfer aborted.")


def test_upload_stopped_by_abor(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    proto, _ = s.start("STOR f")
    proto.dataReceived(b"12345")
    assert s.send("ABOR") == []
    s.finish(proto, error.ConnectionAborted())
    event = rec.only("transfer")
    assert (event["completed"], event["reason"], event["bytes"]) == (False, "aborted by ABOR", 5)


def test_upload_cut_by_the_control_connection_closing(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    proto, _ = s.start("STOR f")
    proto.dataReceived(b"123")
    s.lose()
    close(proto, error.ConnectionAborted())
    event = rec.only("transfer")
    assert (event["completed"], event["reason"], event["bytes"]) == (
        False, "control connection closed", 3)


def test_data_connection_that_never_opens(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path, data_timeout=5.0)
    h.put("f", b"abc")
    s.pasv()
    assert s.codes("RETR f") == [150]
    h.reactor.advance(5)
    assert s.take() == ["425 Can't open data connection: timed out."]
    event = rec.only("transfer")
    assert (event["completed"], event["bytes"], event["seconds"]) == (False, 0, 5.0)
    assert event["reason"] == "425 Can't open data connection: timed out."


def test_no_transfer_event_for_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    _, s, rec = recorded_login(tmp_path)
    s.pasv()
    assert s.codes("RETR missing") == [550]
    assert rec.named("transfer") == []


def test_listings_are_not_transfers(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    h.put("f", b"abc")
    s.listing("LIST")
    s.listing("MLSD")
    assert rec.named("transfer") == []


# -- file operations --------------------------------------------------------------------------


def test_file_operations(tmp_path: Path) -> None:
    h, s, rec = recorded_login(tmp_path)
    h.put("a.txt", b"a")
    assert s.codes("MKD d", "RNFR a.txt", "RNTO d/b c.txt", "SITE CHMOD 4755 d/b c.txt",
                   "DELE d/b c.txt", "RMD d") == [257, 350, 250, 200, 250, 250]
    who = {"session": s.proto.session_id, "peer": PEER, "user": "alice"}
    assert rec.fields("mkdir") == {**who, "path": "/d"}
    assert rec.fields("rename") == {**who, "path": "/a.txt", "to": "/d/b c.txt"}
    assert rec.fields("chmod") == {**who, "path": "/d/b c.txt", "permissions": "0755"}
    assert rec.fields("delete") == {**who, "path": "/d/b c.txt"}
    assert rec.fields("rmdir") == {**who, "path": "/d"}


def test_failed_file_operations_emit_nothing(tmp_path: Path) -> None:
    _, s, rec = recorded_login(tmp_path)
    assert s.codes("DELE nope", "RMD nope", "MKD nope/deeper") == [550, 550, 550]
    assert [e for e in rec.events if e[KEY] in ("delete", "rmdir", "mkdir")] == []


# -- refused commands -------------------------------------------------------------------------


def test_commands_before_login_are_refused_at_warn_level(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    rec = Recorder(h)
    s = h.connect()
    assert s.codes("RETR f") == [530]
    event = rec.only("command_refused")
    assert {key: event[key] for key in FIELDS["command_refused"]} == {
        "session": s.proto.session_id, "peer": PEER, "command": "RETR", "code": 530}
    assert event["log_level"] is LogLevel.warn


def test_permission_refusals_name_the_site_sub_command(tmp_path: Path) -> None:
    _, s, rec = recorded_login(tmp_path, perms="elr")
    assert s.codes("STOR f", "SITE CHMOD 644 f") == [550, 550]
    assert [(e["command"], e["code"]) for e in rec.named("command_refused")] == [
        ("STOR", 550), ("SITE CHMOD", 550)]


def test_unknown_verbs_are_shown_cut_and_printable(tmp_path: Path) -> None:
    _, s, rec = recorded_login(tmp_path)
    assert s.codes("X\x01" + "Y" * 40) == [500]
    assert rec.only("command_refused")["command"] == "X?" + "Y" * 14


def test_a_missing_feature_is_not_a_refusal(tmp_path: Path) -> None:
    h = Harness(tmp_path)  # no --tls-cert: AUTH is not implemented
    rec = Recorder(h)
    assert h.connect().codes("AUTH TLS") == [502]
    assert rec.named("command_refused") == []


def test_refusals_by_a_handler_are_logged_but_failures_are_not(tmp_path: Path) -> None:
    _, s, rec = recorded_login(tmp_path)
    assert s.codes("SITE CHMOD 700 /", "DELE missing") == [550, 550]  # the home; no file
    assert [(e["command"], e["code"]) for e in rec.named("command_refused")] == [
        ("SITE CHMOD", 550)]


def tls_session(tmp_path: Path, pem: str) -> tuple[Session, Recorder]:
    h = Harness(tmp_path, tls_cert=pem, tls_required=True)
    rec = Recorder(h)
    s, _ = connect_recording(h)
    return s, rec


def test_user_before_auth_tls_when_tls_is_required(tmp_path: Path, pem: str) -> None:
    s, rec = tls_session(tmp_path, pem)
    assert s.codes("USER alice") == [534]
    assert [(e["command"], e["code"]) for e in rec.named("command_refused")] == [("USER", 534)]


def test_clear_transfer_when_tls_is_required(tmp_path: Path, pem: str) -> None:
    s, rec = tls_session(tmp_path, pem)
    assert s.codes("AUTH TLS") == [234]
    s.proto.handshakeCompleted()
    s.login()
    assert s.codes("PBSZ 0", "PASV", "RETR f") == [200, 227, 521]  # PROT is still C
    assert [(e["command"], e["code"]) for e in rec.named("command_refused")] == [("RETR", 521)]


def test_an_event_carries_what_twisteds_logger_would_give_it() -> None:
    seen: list[dict[str, Any]] = []
    log = EventLog(forward=seen.append)
    log.emit("ban", peer="192.0.2.7", seconds=60)
    (event,) = seen
    expected: list[dict[str, Any]] = []
    Logger(namespace="twisted_ftpd.events", observer=expected.append).emit(
        LogLevel.warn, "banned {peer} for {seconds} s", ftpd_event="ban", peer="192.0.2.7",
        seconds=60)
    assert set(event) == set(expected[0])
    for key in ("log_level", "log_namespace", "log_source", "log_format", KEY, "peer"):
        assert event[key] == expected[0][key], key
    assert abs(event["log_time"] - expected[0]["log_time"]) < 60
    assert isinstance(event["log_logger"], Logger)
    assert formatEvent(event) == "banned 192.0.2.7 for 60 s"


def test_with_nobody_observing_no_event_is_built_until_someone_does() -> None:
    log = EventLog(forward=None)
    published: list[dict[str, Any]] = []
    log.publisher = published.append  # type: ignore[assignment]
    log.emit("connect", session="s", peer="p")
    assert published == []
    with pytest.raises(TypeError, match="connect takes"):  # still checked
        log.emit("connect", session="s")
    log.publisher = LogPublisher()
    seen: list[dict[str, Any]] = []
    log.observe(seen.append)
    log.emit("connect", session="s", peer="p")
    assert [e["session"] for e in seen] == ["s"]
    log.stop_observing(print)  # never observing: changes nothing
    log.emit("connect", session="t", peer="p")
    log.stop_observing(seen.append)
    log.emit("connect", session="u", peer="p")
    assert [e["session"] for e in seen] == ["s", "t"]
