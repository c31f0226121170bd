"""Protected (PROT P) data connections: DataProtocol with DataTLS, and whole
transfers where the data connection must resume the login's TLS session.

``session_reused`` is replaced by a stub recording the handle it is asked
about; the real check is covered in test_tls.py on real OpenSSL connections.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from tests.harness import PEER, Harness, RecordingTransport, Session, close, connect_recording
from twisted_ftpd.data import channel
from twisted_ftpd.data.channel import DataProtocol, DataTLS
from twisted_ftpd.protocol.errors import DataConnectionError, TLSSessionNotReused


class Reuse:
    """Stands in for twisted_ftpd.data.channel.session_reused."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[object] = []

    def __call__(self, handle: object) -> bool:
        self.asked.append(handle)
        return self.answer


@pytest.fixture
def reuse(monkeypatch: pytest.MonkeyPatch) -> Reuse:
    stub = Reuse(True)
    monkeypatch.setattr(channel, "session_reused", stub)
    return stub


class Recorder:
    def __init__(self) -> None:
        self.made: list[DataProtocol] = []
        self.failed: list[Exception] = []

    def on_made(self, proto: DataProtocol) -> None:
        self.made.append(proto)

    def on_failed(self, reason: Exception) -> None:
        self.failed.append(reason)


OPTIONS = object()  # DataProtocol only hands the options to startTLS


def data_proto(tls: DataTLS | None, accepted: bool = True
               ) -> tuple[DataProtocol, RecordingTransport, Recorder]:
    rec = Recorder()
    proto = DataProtocol(on_made=rec.on_made, on_failed=rec.on_failed, tls=tls,
                         accepted=accepted)
    transport = RecordingTransport()
    proto.makeConnection(transport)
    return proto, transport, rec


# -- DataProtocol --------------------------------------------------------------------------------


def test_clear_data_connection_is_made_at_once() -> None:
    proto, transport, rec = data_proto(None)
    assert transport.tls_starts == []
    assert rec.made == [proto]


@pytest.mark.parametrize(("accepted", "normal"), [(True, True), (False, False)],
                         ids=["passive", "active"])
def test_connection_made_starts_tls_with_the_login_options(accepted: bool,
                                                           normal: bool) -> None:
    _, transport, rec = data_proto(DataTLS(OPTIONS), accepted=accepted)
    assert transport.tls_starts == [(OPTIONS, normal)]
    assert rec.made == [] and rec.failed == []


def test_accepted_defaults_to_passive() -> None:
    proto = DataProtocol(tls=DataTLS(OPTIONS))
    transport = RecordingTransport()
    proto.makeConnection(transport)
    assert transport.tls_starts == [(OPTIONS, True)]


def test_not_made_until_the_handshake_completes(reuse: Reuse) -> None:
    proto, transport, rec = data_proto(DataTLS(OPTIONS))
    proto.dataReceived(b"early")  # would be decrypted application data in real life
    assert rec.made == []
    proto.handshakeCompleted()
    assert rec.made == [proto]
    assert reuse.asked == [transport.handle]


def test_handshake_without_reuse_is_refused_with_522(reuse: Reuse) -> None:
    reuse.answer = False
    clock = Clock()
    proto, transport, rec = data_proto(DataTLS(OPTIONS, require_reuse=True, clock=clock))
    proto.handshakeCompleted()
    assert rec.made == []
    assert len(rec.failed) == 1
    assert isinstance(rec.failed[0], TLSSessionNotReused)
    assert rec.failed[0].reply().code == 522
    # A TLS shutdown (close_notify), not a reset: the client reads a clean end of
    # data and then the 522. One that never answers is cut after the grace period.
    assert transport.disconnecting and not transport.aborted
    clock.advance(channel.REFUSE_GRACE)
    assert transport.aborted
    assert reuse.asked == [transport.handle]
    close(proto, error.ConnectionAborted())
    assert len(rec.failed) == 1  # reported once, not again as a 425
    assert rec.made == []


@pytest.mark.parametrize("accepted", [True, False], ids=["passive", "active"])
def test_handshake_with_reuse_is_made(reuse: Reuse, accepted: bool) -> None:
    proto, transport, rec = data_proto(DataTLS(OPTIONS, require_reuse=True), accepted)
    proto.handshakeCompleted()
    assert rec.made == [proto] and rec.failed == []
    assert not transport.aborted


@pytest.mark.parametrize("answer", [True, False])
def test_without_require_reuse_any_handshake_is_made(reuse: Reuse, answer: bool) -> None:
    reuse.answer = answer
    proto, transport, rec = data_proto(DataTLS(OPTIONS, require_reuse=False))
    proto.handshakeCompleted()
    assert rec.made == [proto] and rec.failed == []
    assert not transport.aborted


def test_lost_before_handshake_fails_with_data_connection_error(reuse: Reuse) -> None:
    proto, _, rec = data_proto(DataTLS(OPTIONS))
    close(proto, error.ConnectionLost())
    assert rec.made == []
    assert len(rec.failed) == 1
    assert type(rec.failed[0]) is DataConnectionError
    assert rec.failed[0].reply().code == 425
    assert reuse.asked == []


def test_lost_after_handshake_is_not_a_failure(reuse: Reuse) -> None:
    proto, _, rec = data_proto(DataTLS(OPTIONS))
    proto.handshakeCompleted()
    close(proto)
    assert rec.failed == []
    assert isinstance(proto.lost, error.ConnectionDone)


# -- whole transfers over a protected data connection --------------------------------------------


PAYLOAD = b"secret bytes\x00\xff" * 100


def protected_session(tmp_path: Path, pem: str, **config: object) -> tuple[Harness, Session]:
    h = Harness(tmp_path, tls_cert=pem, **config)  # type: ignore[arg-type]
    s, _ = connect_recording(h)
    s.data_transport = RecordingTransport
    assert s.codes("AUTH TLS") == [234]
    s.proto.handshakeCompleted()
    s.login()
    assert s.codes("PBSZ 0", "PROT P", "TYPE I") == [200, 200, 200]
    h.put("f.bin", PAYLOAD)
    return h, s


def test_passive_retr_over_tls(tmp_path: Path, pem: str, reuse: Reuse) -> None:
    h, s = protected_session(tmp_path, pem)
    proto, transport = s.start("RETR f.bin")
    assert transport.tls_starts == [(s.proto.tls.options, True)]
    assert transport.value() == b""  # nothing sent before the handshake
    proto.handshakeCompleted()
    assert reuse.asked == [transport.handle]
    assert transport.value() == PAYLOAD
    assert s.finish(proto) == ["226 Transfer complete."]


def test_active_retr_over_tls_is_the_tls_server(tmp_path: Path, pem: str,
                                                reuse: Reuse) -> None:
    h, s = protected_session(tmp_path, pem)
    assert s.codes("PORT 192,0,2,7,200,10") == [200]
    assert s.codes("RETR f.bin") == [150]
    proto, transport = s.open_active()
    assert transport.tls_starts == [(s.proto.tls.options, False)]
    assert transport.value() == b""
    proto.handshakeCompleted()
    assert transport.value() == PAYLOAD
    assert s.finish(proto) == ["226 Transfer complete."]


def test_passive_stor_over_tls(tmp_path: Path, pem: str, reuse: Reuse) -> None:
    h, s = protected_session(tmp_path, pem)
    proto, transport = s.start("STOR up.bin")
    proto.handshakeCompleted()
    proto.dataReceived(PAYLOAD)
    assert s.finish(proto) == ["226 Transfer complete."]
    assert (h.root / "up.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize("mode", ["passive", "active"])
def test_data_connection_that_does_not_resume_is_522(tmp_path: Path, pem: str, reuse: Reuse,
                                                     mode: str) -> None:
    reuse.answer = False
    h, s = protected_session(tmp_path, pem)
    if mode == "passive":
        s.pasv()
    else:
        assert s.codes("PORT 192,0,2,7,200,10") == [200]
    pending = s.proto.data.pending
    assert s.codes("RETR f.bin") == [150]
    proto, transport = s.open_passive() if mode == "passive" else s.open_active()
    proto.handshakeCompleted()
    assert transport.disconnecting and not transport.aborted  # a TLS shutdown
    assert transport.value() == b""  # not one byte of the file
    lines = s.take()
    assert [line[:4] for line in lines] == ["522 "], lines
    assert pending.decided and pending.protocol is None
    h.reactor.advance(channel.REFUSE_GRACE)
    assert transport.aborted
    assert s.finish(proto, error.ConnectionAborted()) == []
    assert s.codes("NOOP") == [200]


def test_stor_over_unresumed_connection_writes_nothing(tmp_path: Path, pem: str,
                                                       reuse: Reuse) -> None:
    reuse.answer = False
    h, s = protected_session(tmp_path, pem)
    proto, _ = s.start("STOR up.bin")
    proto.handshakeCompleted()
    assert [line[:4] for line in s.take()] == ["522 "]
    close(proto, error.ConnectionAborted())
    # A new file may be kept for resuming (as in clear mode), but holds nothing.
    assert not (h.root / "up.bin").exists() or (h.root / "up.bin").read_bytes() == b""


def test_no_tls_session_reuse_accepts_an_unresumed_connection(tmp_path: Path, pem: str,
                                                              reuse: Reuse) -> None:
    reuse.answer = False
    h, s = protected_session(tmp_path, pem, tls_require_reuse=False)
    proto, transport = s.start("RETR f.bin")
    proto.handshakeCompleted()
    assert not transport.aborted
    assert transport.value() == PAYLOAD
    assert s.finish(proto) == ["226 Transfer complete."]


def test_handshake_failure_on_the_data_connection_is_425(tmp_path: Path, pem: str,
                                                         reuse: Reuse) -> None:
    h, s = protected_session(tmp_path, pem)
    proto, transport = s.start("RETR f.bin")
    close(proto, error.ConnectionLost())
    assert [line[:4] for line in s.take()] == ["425 "]
    assert transport.value() == b""
    assert s.codes("NOOP") == [200]


def test_second_passive_connection_is_refused_while_the_first_handshakes(
        tmp_path: Path, pem: str, reuse: Reuse) -> None:
    h, s = protected_session(tmp_path, pem)
    s.pasv()
    _, factory, _, _ = h.reactor.tcpServers[-1]
    first, _ = s.open_passive()
    assert factory.buildProtocol(IPv4Address("TCP", PEER, 50001)) is None
    assert s.codes("RETR f.bin") == [150]
    first.handshakeCompleted()
    assert s.finish(first) == ["226 Transfer complete."]


def test_data_connection_timeout_covers_the_handshake(tmp_path: Path, pem: str,
                                                      reuse: Reuse) -> None:
    h, s = protected_session(tmp_path, pem, data_timeout=5.0)
    s.pasv()
    assert s.codes("RETR f.bin") == [150]
    s.open_passive()  # TCP is up, but the handshake never finishes
    h.reactor.advance(5.0)
    lines = s.take()
    assert [line[:4] for line in lines] == ["425 "], lines
    assert s.codes("NOOP") == [200]


@pytest.mark.parametrize("mode", ["passive", "active"])
def test_data_connection_stuck_in_the_handshake_is_dropped_on_timeout(
        tmp_path: Path, pem: str, reuse: Reuse, mode: str) -> None:
    h, s = protected_session(tmp_path, pem, data_timeout=5.0)
    if mode == "passive":
        s.pasv()
    else:
        assert s.codes("PORT 192,0,2,7,200,10") == [200]
    assert s.codes("RETR f.bin") == [150]
    _, transport = s.open_passive() if mode == "passive" else s.open_active()
    h.reactor.advance(5.0)
    assert [line[:4] for line in s.take()] == ["425 "]
    assert transport.aborted or transport.disconnecting
