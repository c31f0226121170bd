"""TLS credentials (twisted_ftpd.tls) and the TLS command-line options.

Session resumption is exercised on real OpenSSL connections joined by memory
BIOs: no sockets, no threads, no clock.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import error
from twisted.python import usage
from twisted.python.failure import Failure

from twisted_ftpd import cert
from twisted_ftpd.config import Options, ServerConfig
from twisted_ftpd.tls import (
    TLSConfigError,
    TLSCredentials,
    describe_tls_failure,
    select_alpn,
    session_reused,
)

PEM = Encoding.PEM


@pytest.fixture(scope="module")
def pems() -> tuple[bytes, bytes]:
    return cert.make_self_signed("localhost")


@pytest.fixture(scope="module")
def other_pems() -> tuple[bytes, bytes]:
    return cert.make_self_signed("localhost")


@pytest.fixture
def combined(tmp_path: Path, pems: tuple[bytes, bytes]) -> Path:
    path = tmp_path / "ftpd.pem"
    cert.write_pem(path, *pems)
    return path


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory,
                pems: tuple[bytes, bytes]) -> TLSCredentials:
    path = tmp_path_factory.mktemp("tls") / "ftpd.pem"
    cert.write_pem(path, *pems)
    return TLSCredentials.load(str(path))


def load_error(*args: str, **kwargs: object) -> str:
    with pytest.raises(TLSConfigError) as info:
        TLSCredentials.load(*args, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


# -- TLSCredentials.load -------------------------------------------------------------------


def test_load_one_combined_pem(combined: Path, pems: tuple[bytes, bytes]) -> None:
    creds = TLSCredentials.load(str(combined))
    assert creds.certificate.public_bytes(PEM) == pems[0]
    assert creds.chain == []


def test_load_separate_cert_and_key(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    (tmp_path / "key.pem").write_bytes(pems[1])
    creds = TLSCredentials.load(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert creds.certificate.public_bytes(PEM) == pems[0]
    creds.context_factory().getContext()  # usable


def test_load_keeps_extra_certificates_as_the_chain(tmp_path: Path, pems: tuple[bytes, bytes],
                                                    other_pems: tuple[bytes, bytes]) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(pems[0] + other_pems[0] + pems[1])
    creds = TLSCredentials.load(str(path))
    assert creds.certificate.public_bytes(PEM) == pems[0]
    assert [c.public_bytes(PEM) for c in creds.chain] == [other_pems[0]]


def test_missing_certificate_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    message = load_error(str(missing))
    assert message.startswith(str(missing))
    assert "not found" in message


def test_missing_key_file(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    missing = tmp_path / "key.pem"
    message = load_error(str(tmp_path / "cert.pem"), str(missing))
    assert message.startswith(str(missing))
    assert "key" in message and "not found" in message


@pytest.mark.parametrize("content", [b"", b"just some text\n"], ids=["empty", "text"])
def test_file_without_certificate(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(content)
    message = load_error(str(path))
    assert message.startswith(str(path)) and "no PEM certificate" in message


def test_key_only_file_has_no_certificate(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pems[1])
    message = load_error(str(path))
    assert message.startswith(str(path)) and "no PEM certificate" in message


def test_certificate_without_key_and_no_key_file(tmp_path: Path,
                                                 pems: tuple[bytes, bytes]) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(pems[0])
    message = load_error(str(path))
    assert message.startswith(str(path)) and "no PEM private key" in message


def test_key_file_without_key(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    (tmp_path / "key.pem").write_bytes(pems[0])  # a certificate where the key should be
    message = load_error(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert message.startswith(str(tmp_path / "key.pem")) and "no PEM private key" in message


def test_key_that_does_not_match_the_certificate(tmp_path: Path, pems: tuple[bytes, bytes],
                                                 other_pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    (tmp_path / "key.pem").write_bytes(other_pems[1])
    message = load_error(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert message.startswith(str(tmp_path / "key.pem"))
    assert "does not match" in message


def test_combined_file_with_mismatched_key(tmp_path: Path, pems: tuple[bytes, bytes],
                                           other_pems: tuple[bytes, bytes]) -> None:
    path = tmp_path / "ftpd.pem"
    path.write_bytes(pems[0] + other_pems[1])
    message = load_error(str(path))
    assert message.startswith(str(path)) and "does not match" in message


def test_expired_certificate(combined: Path) -> None:
    later = datetime.datetime(2400, 1, 1, tzinfo=datetime.UTC)
    message = load_error(str(combined), now=later)
    assert message.startswith(str(combined)) and "expired" in message


def test_not_yet_valid_certificate(combined: Path) -> None:
    earlier = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    message = load_error(str(combined), now=earlier)
    assert message.startswith(str(combined)) and "not valid before" in message


def test_valid_now_is_accepted(combined: Path) -> None:
    TLSCredentials.load(str(combined), now=datetime.datetime.now(datetime.UTC))


GARBAGE_CERT = "-----BEGIN CERTIFICATE-----\nthis is not base64!!\n-----END CERTIFICATE-----\n"
GARBAGE_KEY = "-----BEGIN PRIVATE KEY-----\nthis is not base64!!\n-----END PRIVATE KEY-----\n"


def test_garbage_certificate_pem(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    path = tmp_path / "ftpd.pem"
    path.write_text(GARBAGE_CERT + pems[1].decode())
    message = load_error(str(path))
    assert message.startswith(str(path)) and "cannot load" in message


def test_garbage_in_combined_file_key(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    path = tmp_path / "ftpd.pem"
    path.write_text(pems[0].decode() + GARBAGE_KEY)
    message = load_error(str(path))
    assert message.startswith(str(path)) and "cannot load" in message


def test_garbage_separate_key_file_is_named(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    (tmp_path / "key.pem").write_text(GARBAGE_KEY)
    message = load_error(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert str(tmp_path / "key.pem") in message


def test_binary_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ftpd.der"
    path.write_bytes(b"\x30\x82\x01\xff\x80\x81")
    message = load_error(str(path))
    assert message.startswith(str(path)) and "cannot read" in message


# -- context_factory -------------------------------------------------------------------------


def test_context_factory_makes_a_new_context_each_call(credentials: TLSCredentials) -> None:
    first, second = credentials.context_factory(), credentials.context_factory()
    assert first is not second
    assert first.getContext() is not second.getContext()
    assert first.getContext() is first.getContext()  # one context per login, kept


def test_context_has_tls12_minimum_tickets_and_no_compression(
        credentials: TLSCredentials) -> None:
    ctx = credentials.context_factory().getContext()
    getter = getattr(ctx, "get_min_proto_version", None)
    if getter is not None:
        assert getter() == SSL.TLS1_2_VERSION
    options = ctx.set_options(0)  # returns the options in force
    assert options & SSL.OP_NO_TLSv1
    assert options & SSL.OP_NO_TLSv1_1
    assert not options & SSL.OP_NO_TLSv1_2
    assert not options & SSL.OP_NO_TICKET
    assert options & SSL.OP_NO_COMPRESSION


def test_context_enables_the_session_cache(credentials: TLSCredentials) -> None:
    ctx = credentials.context_factory().getContext()
    assert ctx.get_session_cache_mode() & SSL.SESS_CACHE_SERVER


# -- session resumption over memory BIOs --------------------------------------------------------


def _pump(a: SSL.Connection, b: SSL.Connection) -> None:
    moved = True
    while moved:
        moved = False
        for source, sink in ((a, b), (b, a)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            if data:
                sink.bio_write(data)
                moved = True


def connect(client_ctx: SSL.Context, server_ctx: SSL.Context,
            session: SSL.Session | None = None) -> tuple[SSL.Connection, SSL.Connection]:
    """A complete TLS handshake in memory; the client has read the session tickets."""
    client = SSL.Connection(client_ctx, None)
    client.set_connect_state()
    if session is not None:
        client.set_session(session)
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    for _ in range(10):
        done = 0
        for conn in (client, server):
            try:
                conn.do_handshake()
                done += 1
            except SSL.WantReadError:
                pass
        _pump(client, server)
        if done == 2:
            break
    else:
        raise AssertionError("handshake did not finish")
    # TLS 1.3 sends its tickets after the handshake: have the client read them.
    server.sendall(b"ping")
    _pump(client, server)
    assert client.recv(16) == b"ping"
    return client, server


def client_context(max_version: int | None, tickets: bool = True) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    if max_version is not None:
        ctx.set_max_proto_version(max_version)
    if not tickets:
        ctx.set_options(SSL.OP_NO_TICKET)
    return ctx


VERSIONS = [pytest.param(None, id="tls1.3"), pytest.param(SSL.TLS1_2_VERSION, id="tls1.2")]
TICKETS = [pytest.param(True, id="tickets"), pytest.param(False, id="session-ids")]


@pytest.mark.parametrize("tickets", TICKETS)
@pytest.mark.parametrize("version", VERSIONS)
def test_full_handshake_is_not_reused(credentials: TLSCredentials, version: int | None,
                                      tickets: bool) -> None:
    server_ctx = credentials.context_factory().getContext()
    _, server = connect(client_context(version, tickets), server_ctx)
    assert session_reused(server) is False


@pytest.mark.parametrize("tickets", TICKETS)
@pytest.mark.parametrize("version", VERSIONS)
def test_resumed_session_on_the_same_context_is_reused(
        credentials: TLSCredentials, version: int | None, tickets: bool) -> None:
    server_ctx = credentials.context_factory().getContext()
    client_ctx = client_context(version, tickets)
    control, _ = connect(client_ctx, server_ctx)
    data, server = connect(client_ctx, server_ctx, control.get_session())
    assert session_reused(server) is True
    assert data.get_protocol_version_name() == control.get_protocol_version_name()


@pytest.mark.parametrize("tickets", TICKETS)
@pytest.mark.parametrize("version", VERSIONS)
def test_session_from_another_login_is_not_reused(
        credentials: TLSCredentials, version: int | None, tickets: bool) -> None:
    """A session (or ticket) from one login's context cannot resume on another's."""
    victim_ctx = credentials.context_factory().getContext()
    thief_ctx = credentials.context_factory().getContext()
    client_ctx = client_context(version, tickets)
    thief_control, _ = connect(client_ctx, thief_ctx)
    _, server = connect(client_ctx, victim_ctx, thief_control.get_session())
    assert session_reused(server) is False


def test_context_from_another_credentials_load_is_not_reused(
        combined: Path, credentials: TLSCredentials) -> None:
    """Even the same certificate, loaded twice, gives unrelated session caches."""
    client_ctx = client_context(None)
    control, _ = connect(client_ctx, credentials.context_factory().getContext())
    again = TLSCredentials.load(str(combined))
    _, server = connect(client_ctx, again.context_factory().getContext(), control.get_session())
    assert session_reused(server) is False


def test_each_login_resumes_only_its_own_session(credentials: TLSCredentials) -> None:
    ctx_a = credentials.context_factory().getContext()
    ctx_b = credentials.context_factory().getContext()
    client_ctx = client_context(None)
    control_a, _ = connect(client_ctx, ctx_a)
    control_b, _ = connect(client_ctx, ctx_b)
    assert session_reused(connect(client_ctx, ctx_a, control_a.get_session())[1])
    assert session_reused(connect(client_ctx, ctx_b, control_b.get_session())[1])
    assert not session_reused(connect(client_ctx, ctx_a, control_b.get_session())[1])
    assert not session_reused(connect(client_ctx, ctx_b, control_a.get_session())[1])


# -- Options --------------------------------------------------------------------------------------


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


@pytest.mark.parametrize("args", [
    ["--tls-key", "key.pem"],
    ["--implicit-tls-port", "990"],
    ["--tls-required"],
], ids=["tls-key", "implicit-tls-port", "tls-required"])
def test_tls_options_need_a_certificate(args: list[str]) -> None:
    with pytest.raises(usage.UsageError, match="needs --tls-cert"):
        parse(*args)


def test_bad_certificate_is_a_usage_error_with_the_load_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.pem"
    path.write_text("not a certificate\n")
    with pytest.raises(TLSConfigError) as expected:
        TLSCredentials.load(str(path))
    with pytest.raises(usage.UsageError) as info:
        parse("--tls-cert", str(path))
    assert str(info.value) == str(expected.value)
    assert str(path) in str(info.value)


def test_missing_certificate_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="not found"):
        parse("--tls-cert", str(tmp_path / "missing.pem"))


def test_mismatched_key_option_is_a_usage_error(tmp_path: Path, pems: tuple[bytes, bytes],
                                                other_pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    (tmp_path / "key.pem").write_bytes(other_pems[1])
    with pytest.raises(usage.UsageError, match="does not match"):
        parse("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))


def test_no_tls_by_default() -> None:
    config = parse().to_config()
    assert (config.tls_cert, config.tls_key, config.tls_required, config.tls_require_reuse,
            config.implicit_tls_port) == (None, None, False, True, None)


def test_tls_flags_map_into_the_config(tmp_path: Path, pems: tuple[bytes, bytes]) -> None:
    (tmp_path / "cert.pem").write_bytes(pems[0])
    (tmp_path / "key.pem").write_bytes(pems[1])
    config = parse("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key",
                   str(tmp_path / "key.pem"), "--tls-required", "--no-tls-session-reuse",
                   "--implicit-tls-port", "990").to_config()
    assert isinstance(config, ServerConfig)
    assert config.tls_cert == str(tmp_path / "cert.pem")
    assert config.tls_key == str(tmp_path / "key.pem")
    assert config.tls_required is True
    assert config.tls_require_reuse is False
    assert config.implicit_tls_port == 990


def test_tls_cert_alone_keeps_safe_defaults(combined: Path) -> None:
    config = parse("--tls-cert", str(combined)).to_config()
    assert config.tls_cert == str(combined)
    assert config.tls_key is None
    assert config.tls_required is False
    assert config.tls_require_reuse is True
    assert config.implicit_tls_port is None


# -- ALPN and failure descriptions ------------------------------------------------------


@pytest.mark.parametrize(("offered", "chosen"), [
    ([b"ftp"], b"ftp"),
    ([b"x-filezilla-ftp", b"ftp"], b"ftp"),  # the registered id wins
    ([b"x-filezilla-ftp"], b"x-filezilla-ftp"),
    ([b"h2", b"http/1.1"], SSL.NO_OVERLAPPING_PROTOCOLS),
    ([], SSL.NO_OVERLAPPING_PROTOCOLS),
])
def test_select_alpn(offered: list[bytes], chosen: object) -> None:
    assert select_alpn(None, offered) == chosen  # type: ignore[arg-type]


def test_describe_tls_failure() -> None:
    openssl = SSL.Error([("SSL routines", "", "unsupported protocol")])
    assert describe_tls_failure(Failure(openssl)) == "unsupported protocol"
    assert describe_tls_failure(Failure(error.ConnectionLost())) == (
        "the connection closed during the handshake")
    assert describe_tls_failure(ValueError("odd")) == "ValueError: odd"
