"""FTPS on the control channel (RFC 4217): AUTH, PBSZ, PROT, CCC, the handshake
timeout, TLS policies, implicit FTPS, and how PASV/PORT carry the login's TLS
context to the data connection.

The TLS handshake itself is simulated: the transport records ``startTLS`` and
the test calls ``handshakeCompleted()`` as Twisted's TLS layer would.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.harness import Harness, Session, connect_recording
from twisted_ftpd.auth import userdb
from twisted_ftpd.data.channel import DataTLS
from twisted_ftpd.data.connect import ActiveConnection, PassiveConnection
from twisted_ftpd.protocol.session import Phase


def harness(tmp_path: Path, pem: str, **config: object) -> Harness:
    return Harness(tmp_path, tls_cert=pem, **config)  # type: ignore[arg-type]


def secured(s: Session) -> None:
    """AUTH TLS and a (simulated) completed handshake."""
    assert s.codes("AUTH TLS") == [234]
    s.proto.handshakeCompleted()


def tls_session(h: Harness) -> Session:
    """A new session on ``h``, secured: AUTH TLS and its (simulated) handshake."""
    s, _ = connect_recording(h)
    secured(s)
    return s


def protected(s: Session, level: str = "P") -> None:
    assert s.send("PBSZ 0") == ["200 PBSZ=0"]
    assert s.codes(f"PROT {level}") == [200]


def handshake_timers(h: Harness, s: Session) -> list[object]:
    return [c for c in h.reactor.getDelayedCalls() if c is s.proto.tls.deadline]


# -- FEAT and AUTH ----------------------------------------------------------------------------


def test_feat_lists_tls_features_when_configured(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem))
    lines = s.send("FEAT")
    for feature in (" AUTH TLS", " PBSZ", " PROT"):
        assert feature in lines
    assert lines[0].startswith("211-") and lines[-1].startswith("211 ")


def test_feat_has_no_tls_features_without_tls(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    lines = s.send("FEAT")
    assert lines[-1].startswith("211 ")
    assert not any(line.strip() in ("AUTH TLS", "PBSZ", "PROT") for line in lines)


def test_auth_without_tls_configured_is_502(tmp_path: Path) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes("AUTH TLS") == [502]
    assert s.proto.tls.options is None


@pytest.mark.parametrize("line", ["PBSZ 0", "PROT P"])
def test_pbsz_prot_without_tls_configured_are_refused(tmp_path: Path, line: str) -> None:
    s = Harness(tmp_path).connect()
    assert s.codes(line)[0] in (502, 503)


def test_auth_unknown_mechanism_is_504(tmp_path: Path, pem: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    assert s.codes("AUTH XYZ") == [504]
    assert transport.tls_starts == []
    assert s.proto.tls.options is None


def test_auth_tls_replies_234_in_clear_then_starts_tls_once(tmp_path: Path, pem: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    transport.events.clear()
    s.proto.dataReceived(b"AUTH TLS\r\n")
    kinds = [kind for kind, _ in transport.events]
    assert kinds == ["write", "startTLS"]
    assert transport.events[0][1].startswith(b"234 ")
    assert transport.value().endswith(b"\r\n")
    assert len(transport.tls_starts) == 1
    factory, normal = transport.tls_starts[0]
    assert factory is s.proto.tls.options
    assert normal is True  # the server side of the handshake
    factory.getContext()  # a real, usable context factory
    assert s.take() == ["234 AUTH TLS successful; starting TLS."]


@pytest.mark.parametrize("mechanism", ["tls", "SSL", "TLS-C", "TLS-P"])
def test_auth_accepts_the_other_mechanism_names(tmp_path: Path, pem: str,
                                                mechanism: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    assert s.codes(f"AUTH {mechanism}") == [234]
    assert len(transport.tls_starts) == 1


def test_commands_pipelined_after_auth_are_dropped(tmp_path: Path, pem: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    s.proto.dataReceived(b"AUTH TLS\r\nUSER alice\r\nPASS secret\r\n")
    assert s.take() == ["234 AUTH TLS successful; starting TLS."]
    assert s.proto.session.phase is Phase.CONNECTED
    assert s.proto.session.user == ""
    s.proto.handshakeCompleted()
    assert s.take() == []  # nothing left over to run after the handshake either
    assert s.codes("NOOP") == [200]
    assert s.proto.session.phase is Phase.CONNECTED


def test_partial_line_before_auth_is_not_joined_to_later_input(tmp_path: Path,
                                                               pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem))
    s.proto.dataReceived(b"AUTH TLS\r\nUSER al")
    assert s.take() == ["234 AUTH TLS successful; starting TLS."]
    s.proto.handshakeCompleted()
    assert s.codes("NOOP") == [200]  # not "USER alNOOP"
    assert s.proto.session.phase is Phase.CONNECTED


def test_second_auth_is_503(tmp_path: Path, pem: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    secured(s)
    assert s.codes("AUTH TLS") == [503]
    assert len(transport.tls_starts) == 1


def test_auth_after_user_is_503(tmp_path: Path, pem: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    assert s.codes("USER alice") == [331]
    assert s.codes("AUTH TLS") == [503]
    assert transport.tls_starts == []
    assert s.proto.tls.options is None


def test_auth_after_login_is_503(tmp_path: Path, pem: str) -> None:
    s, transport = connect_recording(harness(tmp_path, pem))
    s.login()
    assert s.codes("AUTH TLS") == [503]
    assert transport.tls_starts == []


# -- PBSZ, PROT, CCC --------------------------------------------------------------------------


def test_pbsz_before_auth_is_503(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem))
    assert s.codes("PBSZ 0") == [503]
    assert s.proto.session.pbsz is False


def test_prot_before_auth_is_503(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem))
    assert s.codes("PROT P") == [503]
    assert s.proto.session.prot == "C"


def test_prot_before_pbsz_is_503(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    assert s.codes("PROT P") == [503]
    assert s.proto.session.prot == "C"


def test_pbsz_0(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    assert s.send("PBSZ 0") == ["200 PBSZ=0"]
    assert s.proto.session.pbsz is True


def test_pbsz_not_a_number_is_501(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    assert s.codes("PBSZ x") == [501]
    assert s.proto.session.pbsz is False


@pytest.mark.parametrize(("level", "stored"), [("P", "P"), ("C", "C"), ("p", "P")])
def test_prot_p_and_c(tmp_path: Path, pem: str, level: str, stored: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    protected(s, level)
    assert s.proto.session.prot == stored


@pytest.mark.parametrize("level", ["S", "E"])
def test_prot_s_and_e_are_536(tmp_path: Path, pem: str, level: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    assert s.send("PBSZ 0") == ["200 PBSZ=0"]
    assert s.codes(f"PROT {level}") == [536]
    assert s.proto.session.prot == "C"


def test_prot_unknown_is_501(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    assert s.send("PBSZ 0") == ["200 PBSZ=0"]
    assert s.codes("PROT X") == [501]
    assert s.proto.session.prot == "C"


def test_ccc_is_refused_534(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    s.login()
    assert s.codes("CCC") == [534]
    assert s.proto.tls.secure is True


def test_ccc_before_login_needs_login(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem))
    assert s.codes("CCC") == [530]


# -- the handshake timeout --------------------------------------------------------------------


def test_handshake_timeout_aborts_the_connection(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem, tls_handshake_timeout=10.0)
    s, transport = connect_recording(h)
    s.codes("AUTH TLS")
    assert len(handshake_timers(h, s)) == 1
    h.reactor.advance(9.9)
    assert not transport.aborted
    h.reactor.advance(0.1)
    assert transport.aborted
    assert handshake_timers(h, s) == []


def test_handshake_uses_the_default_timeout(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    s, transport = connect_recording(h)
    s.codes("AUTH TLS")
    h.reactor.advance(h.config.tls_handshake_timeout)
    assert transport.aborted


def test_completed_handshake_cancels_the_timer(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem, tls_handshake_timeout=10.0)
    s, transport = connect_recording(h)
    s.codes("AUTH TLS")
    s.proto.handshakeCompleted()
    assert s.proto.tls.secure is True
    assert handshake_timers(h, s) == []
    h.reactor.advance(10.0)
    assert not transport.aborted
    assert s.codes("NOOP") == [200]


def test_connection_lost_during_handshake_cancels_the_timer(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    s, _ = connect_recording(h)
    s.codes("AUTH TLS")
    s.proto.connectionLost(None)
    assert handshake_timers(h, s) == []


def test_each_login_gets_its_own_context(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    a, _ = connect_recording(h)
    b, _ = connect_recording(h)
    secured(a)
    secured(b)
    assert a.proto.tls.options is not b.proto.tls.options
    assert a.proto.tls.options.getContext() is not b.proto.tls.options.getContext()


# -- tls_required -------------------------------------------------------------------------------


def test_tls_required_refuses_user_in_clear(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem, tls_required=True))
    assert s.codes("USER alice") == [534]
    assert s.proto.session.phase is Phase.CONNECTED
    assert s.proto.session.user == ""
    assert s.codes("PASS secret") == [503]


def test_tls_required_refuses_anonymous_in_clear(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem, tls_required=True))
    assert s.codes("USER anonymous") == [534]


def test_tls_required_refuses_user_before_the_handshake_is_done(tmp_path: Path,
                                                                pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem, tls_required=True))
    assert s.codes("AUTH TLS") == [234]
    assert s.codes("USER alice") == [534]


def test_tls_required_allows_login_after_handshake(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem, tls_required=True))
    s.login()
    assert s.proto.session.logged_in


@pytest.mark.parametrize("line", ["RETR f", "STOR g", "LIST", "NLST", "MLSD"])
def test_tls_required_transfer_without_prot_p_is_521(tmp_path: Path, pem: str,
                                                     line: str) -> None:
    h = harness(tmp_path, pem, tls_required=True)
    h.put("f", b"data")
    s = tls_session(h)
    s.login()
    s.pasv()
    pending = s.proto.data.pending
    lines = s.send(line)
    assert [int(x[:3]) for x in lines] == [521]
    assert pending.closed
    assert not (h.root / "g").exists()
    assert s.codes("NOOP") == [200]


def test_tls_required_transfer_without_data_setup_is_521(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem, tls_required=True)
    h.put("f", b"data")
    s = tls_session(h)
    s.login()
    assert s.codes("RETR f") == [521]


def test_tls_required_refuses_prot_c(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem, tls_required=True))
    assert s.send("PBSZ 0") == ["200 PBSZ=0"]
    assert s.codes("PROT C") == [521]
    assert s.proto.session.prot == "C"  # unchanged
    assert s.codes("PROT P") == [200]
    assert s.codes("PROT C") == [521]
    assert s.proto.session.prot == "P"


def test_tls_required_transfer_with_prot_p_gets_150(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem, tls_required=True)
    h.put("f", b"data")
    s = tls_session(h)
    s.login()
    protected(s)
    s.pasv()
    assert s.codes("RETR f") == [150]


# -- per-user tls=required -------------------------------------------------------------------


def per_user_harness(tmp_path: Path, pem: str) -> Harness:
    h = harness(tmp_path, pem, users={"alice": ("secret", "elr"), "bob": ("hunter2", "elr")})
    db = tmp_path / "users.db"
    bob = userdb.UserDB(db).lookup("bob")
    assert bob is not None
    userdb.set_user(db, replace(bob, options={"tls": "required"}))
    return h


def test_per_user_tls_required_refuses_that_user_in_clear(tmp_path: Path, pem: str) -> None:
    h = per_user_harness(tmp_path, pem)
    s, _ = connect_recording(h)
    assert s.codes("USER bob") == [534]
    assert s.proto.session.phase is Phase.CONNECTED
    assert s.codes("PASS hunter2") == [503]


def test_per_user_tls_required_leaves_other_users_alone(tmp_path: Path, pem: str) -> None:
    h = per_user_harness(tmp_path, pem)
    s, _ = connect_recording(h)
    s.login("alice", "secret")
    assert s.proto.tls.protection_required(s.proto.session) is False
    h.put("f", b"data")
    s.pasv()
    assert s.codes("RETR f") == [150]


def test_per_user_tls_required_allows_that_user_over_tls(tmp_path: Path, pem: str) -> None:
    h = per_user_harness(tmp_path, pem)
    h.put("f", b"data")
    s = tls_session(h)
    s.login("bob", "hunter2")
    assert s.proto.tls.protection_required(s.proto.session) is True
    s.pasv()
    assert s.codes("RETR f") == [521]
    assert s.send("PBSZ 0") == ["200 PBSZ=0"]
    assert s.codes("PROT C") == [521]
    assert s.codes("PROT P") == [200]
    s.pasv()
    assert s.codes("RETR f") == [150]


def test_per_user_requirement_is_forgotten_after_rein(tmp_path: Path, pem: str) -> None:
    h = per_user_harness(tmp_path, pem)
    s = tls_session(h)
    s.login("bob", "hunter2")
    assert s.codes("REIN") == [220]
    s.login("alice", "secret")
    assert s.proto.tls.protection_required(s.proto.session) is False


# -- implicit FTPS ------------------------------------------------------------------------------


def test_implicit_tls_starts_before_the_banner(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    s, transport = connect_recording(h, implicit_tls=True)
    kinds = [kind for kind, _ in transport.events]
    assert kinds[0] == "startTLS"
    assert kinds.count("startTLS") == 1
    assert ("write", b"220 " + h.config.banner.encode() + b"\r\n") in transport.events
    assert s.greeting == ["220 " + h.config.banner]
    assert transport.tls_starts == [(s.proto.tls.options, True)]


def test_implicit_tls_defaults_to_prot_p(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    s, _ = connect_recording(h, implicit_tls=True)
    assert (s.proto.session.pbsz, s.proto.session.prot) == (True, "P")
    s.proto.handshakeCompleted()
    s.login()
    s.pasv()
    tls = s.proto.data.pending.tls
    assert isinstance(tls, DataTLS) and tls.options is s.proto.tls.options


def test_implicit_tls_has_a_handshake_timeout(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    s, transport = connect_recording(h, implicit_tls=True)
    h.reactor.advance(h.config.tls_handshake_timeout)
    assert transport.aborted


def test_implicit_tls_refuses_auth(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    s, transport = connect_recording(h, implicit_tls=True)
    s.proto.handshakeCompleted()
    assert s.codes("AUTH TLS") == [503]
    assert len(transport.tls_starts) == 1


def test_implicit_tls_with_tls_required_allows_login(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem, tls_required=True)
    s, _ = connect_recording(h, implicit_tls=True)
    s.proto.handshakeCompleted()
    s.login()


# -- PASV/PORT carry the login's TLS context ----------------------------------------------------


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize(("line", "code", "kind"), [
    ("PASV", 227, PassiveConnection),
    ("PORT 192,0,2,7,200,10", 200, ActiveConnection),
], ids=["pasv", "port"])
def test_data_setup_after_prot_p_makes_a_tls_pending_connection(
        tmp_path: Path, pem: str, reuse: bool, line: str, code: int, kind: type) -> None:
    s = tls_session(harness(tmp_path, pem, tls_require_reuse=reuse))
    s.login()
    protected(s)
    assert s.codes(line) == [code]
    pending = s.proto.data.pending
    assert isinstance(pending, kind)
    assert isinstance(pending.tls, DataTLS)
    assert pending.tls.options is s.proto.tls.options
    assert pending.tls.require_reuse is reuse


def test_epsv_after_prot_p_makes_a_tls_pending_connection(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    s.login()
    protected(s)
    assert s.codes("EPSV") == [229]
    assert s.proto.data.pending.tls.options is s.proto.tls.options


def test_pasv_with_prot_c_is_clear(tmp_path: Path, pem: str) -> None:
    s = tls_session(harness(tmp_path, pem))
    s.login()
    protected(s, "C")
    s.pasv()
    assert s.proto.data.pending.tls is None


def test_pasv_without_auth_is_clear(tmp_path: Path, pem: str) -> None:
    s, _ = connect_recording(harness(tmp_path, pem))
    s.login()
    s.pasv()
    assert s.proto.data.pending.tls is None


@pytest.mark.parametrize(("first", "then"), [("P", "C"), ("C", "P")])
def test_prot_changed_between_pasv_and_retr_is_425(tmp_path: Path, pem: str, first: str,
                                                   then: str) -> None:
    h = harness(tmp_path, pem)
    h.put("f", b"data")
    s = tls_session(h)
    s.login()
    protected(s, first)
    s.pasv()
    pending = s.proto.data.pending
    assert s.codes(f"PROT {then}") == [200]
    assert s.codes("RETR f") == [425]
    assert pending.closed
    assert s.proto.data.pending is None
    assert s.codes("NOOP") == [200]


def test_prot_changed_between_port_and_retr_is_425(tmp_path: Path, pem: str) -> None:
    h = harness(tmp_path, pem)
    h.put("f", b"data")
    s = tls_session(h)
    s.login()
    protected(s, "P")
    assert s.codes("PORT 192,0,2,7,200,10") == [200]
    pending = s.proto.data.pending
    assert s.codes("PROT C") == [200]
    assert s.codes("RETR f") == [425]
    assert pending.closed
    assert h.reactor.tcpClients == []  # never dialed


def test_an_idle_session_builds_no_tls_context_before_auth(tmp_path: Path, pem: str) -> None:
    """What a thousand idle sessions cost: no TLS context until AUTH TLS, and no
    timer but the idle timeout."""
    h = harness(tmp_path, pem)
    built: list[object] = []
    credentials = h.factory.services.tls
    real = credentials.context_factory
    credentials.context_factory = lambda: built.append(1) or real()  # type: ignore[method-assign]
    sessions = [h.connect() for _ in range(3)]
    for s in sessions:
        s.login()
    assert built == []
    assert all(s.proto.tls.options is None for s in sessions)
    assert len([c for c in h.reactor.getDelayedCalls() if c.active()]) == len(sessions)
    secured(connect_recording(h)[0])
    assert len(built) == 1
