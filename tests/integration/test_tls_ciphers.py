"""Which TLS 1.3 cipher suite FTPS settles on: AES-128-GCM for clients that list
AES-256-GCM first (OpenSSL's and GnuTLS's own order), and ChaCha20-Poly1305 for a
client that lists it first. OpenSSL clients are Python's ssl and pyOpenSSL, the
GnuTLS one is gnutls-cli."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from OpenSSL import SSL

from tests.integration.conftest import in_thread
from tests.integration.test_tls_handshakes import gnutls
from tests.integration.tls_helpers import (
    SAFETY_TIMEOUT,
    TLSFiles,
    client_context,
    make_tls_files,
)

pytestmark = pytest.mark.integration

CHACHA_FIRST = b"TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("ciphers"))


def auth_tls(host: str, port: int) -> socket.socket:
    """A control connection that has asked for TLS (234), ready for the handshake."""
    raw = socket.create_connection((host, port), timeout=SAFETY_TIMEOUT)
    reader = raw.makefile("rb")
    assert reader.readline().startswith(b"220")
    raw.sendall(b"AUTH TLS\r\n")
    assert reader.readline().startswith(b"234")
    return raw


def python_ssl_cipher(host: str, port: int, cert_pem: bytes) -> tuple[str, str]:
    with auth_tls(host, port) as raw, \
            client_context(cert_pem).wrap_socket(raw, server_hostname="localhost") as tls:
        name, version, _ = tls.cipher()
        return name, version


def pyopenssl_cipher(host: str, port: int, suites: bytes) -> tuple[str, str]:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_tls13_ciphersuites(suites)
    with auth_tls(host, port) as raw:
        raw.setblocking(True)
        connection = SSL.Connection(context, raw)
        connection.set_connect_state()
        connection.do_handshake()
        return connection.get_cipher_name(), connection.get_protocol_version_name()


@pytest_twisted.ensureDeferred
async def test_openssl_clients_get_aes_128_unless_they_ask_for_chacha20_first(
        server_factory, tls_files: TLSFiles) -> None:
    server = await server_factory(tls_cert=str(tls_files.path))
    # OpenSSL's own client order starts with AES-256-GCM.
    assert await in_thread(python_ssl_cipher, server.host, server.port,
                           tls_files.cert_pem) == ("TLS_AES_128_GCM_SHA256", "TLSv1.3")
    assert await in_thread(pyopenssl_cipher, server.host, server.port, CHACHA_FIRST) == (
        "TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3")
    # A client that offers AES-256-GCM alone still gets it.
    assert await in_thread(pyopenssl_cipher, server.host, server.port,
                           b"TLS_AES_256_GCM_SHA384") == ("TLS_AES_256_GCM_SHA384", "TLSv1.3")


@pytest_twisted.ensureDeferred
async def test_gnutls_gets_aes_128_unless_it_asks_for_chacha20_first(
        server_factory, tls_files: TLSFiles) -> None:
    server = await server_factory(tls_cert=str(tls_files.path))
    default = await in_thread(gnutls, server.port, "--starttls-proto=ftp",
                              commands=b"QUIT\r\n")
    chacha = await in_thread(gnutls, server.port, "--starttls-proto=ftp",
                             "--priority=NORMAL:-CIPHER-ALL:+CHACHA20-POLY1305:+AES-256-GCM"
                             ":+AES-128-GCM", commands=b"QUIT\r\n")
    assert "(TLS1.3" in default and "(AES-128-GCM)" in default, default
    assert "(TLS1.3" in chacha and "(CHACHA20-POLY1305)" in chacha, chacha
