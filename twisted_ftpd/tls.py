# -*- test-case-name: tests.test_tls -*-
"""TLS for FTPS (RFC 4217): load and check the certificate once, then give every login
its own TLS context.

A context per login is what ties a data connection to *its* control connection:
TLS sessions and session tickets live in, and are encrypted for, one context,
so a data connection can only resume a session that this login's control
connection negotiated. A data connection that did not resume is then refused
(vsftpd's ``require_ssl_reuse``), which stops another client from stealing the
transfer by racing to the passive port.
"""

from __future__ import annotations

import datetime
import types
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL
from OpenSSL._util import lib as _openssl  # SSL_session_reused has no public wrapper
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure


class TLSConfigError(ValueError):
    """The certificate or key cannot be used; the message is meant for the operator."""


class TLSCredentials:
    """A checked certificate and key, ready to make per-login TLS contexts."""

    def __init__(self, certificate: x509.Certificate, key: PrivateKeyTypes,
                 chain: list[x509.Certificate]) -> None:
        self.certificate = certificate
        self.key = key
        self.chain = chain

    @classmethod
    def load(cls, cert_path: str, key_path: str | None = None,
             now: datetime.datetime | None = None) -> TLSCredentials:
        """Read PEM files (one file may hold certificate and key) and check them."""
        cert_text = _read(cert_path, "certificate")
        key_text = _read(key_path, "key") if key_path else cert_text
        return cls.from_pem(cert_text, key_text, cert_path, key_path, now)

    @classmethod
    def from_pem(cls, cert_text: str, key_text: str, cert_path: str,
                 key_path: str | None = None,
                 now: datetime.datetime | None = None) -> TLSCredentials:
        """The same from PEM text already read (``--workers`` hands the worker processes
        what the parent read before it dropped privileges); the paths name it in errors."""
        certs = _pem_blocks(cert_text, "CERTIFICATE")
        if not certs:
            raise TLSConfigError(f"{cert_path}: no PEM certificate found")
        keys = [b for b in _pem_blocks(key_text, "PRIVATE KEY")]
        if not keys:
            raise TLSConfigError(f"{key_path or cert_path}: no PEM private key found")
        try:
            certificate, *chain = [x509.load_pem_x509_certificate(c) for c in certs]
        except ValueError as e:
            raise TLSConfigError(f"{cert_path}: cannot load the certificate: {e}") from None
        key = _load_key(keys[0], key_path or cert_path)
        _check_validity(certificate, cert_path, now)
        credentials = cls(certificate, key, chain)
        try:
            credentials.context_factory().getContext()
        except SSL.Error:
            raise TLSConfigError(
                f"{key_path or cert_path}: the private key does not match the certificate"
            ) from None
        return credentials

    def context_factory(self) -> CertificateOptions:
        """A fresh TLS context: use one per login, for its control and data connections."""
        options = CertificateOptions(
            privateKey=self.key,
            certificate=self.certificate,
            extraCertChain=self.chain,
            raiseMinimumTo=TLSVersion.TLSv1_2,
            enableSessions=True,
            enableSessionTickets=True,
        )
        # Replaces the ALPN callback CertificateOptions installs: it looks up the
        # listening factory (absent after startTLS) and answers "no overlap" with an
        # empty protocol, and OpenSSL turns either into alert 80 for every client
        # that offers ALPN, FileZilla first among them.
        context = options.getContext()
        context.set_alpn_select_callback(select_alpn)
        # TLS 1.3: AES-128-GCM first. OpenSSL's own order puts AES-256-GCM first, and
        # the server's preference decides (Twisted sets it): AES-256 costs about a
        # fifth more CPU per byte for no security an FTPS download needs (both are
        # TLS 1.3's standard suites; Go and Mozilla's configurations put AES-128
        # first too). A client that asks for ChaCha20 first, one without AES in
        # hardware, gets it (SSL_OP_PRIORITIZE_CHACHA).
        context.set_tls13_ciphersuites(TLS13_CIPHERSUITES)
        context.set_options(_OP_PRIORITIZE_CHACHA)
        return options


TLS13_CIPHERSUITES = b"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
# OpenSSL's SSL_OP_PRIORITIZE_CHACHA (OpenSSL 1.1.1 and later), which pyOpenSSL does
# not name: with the server's preference, ChaCha20 for clients that list it first.
_OP_PRIORITIZE_CHACHA = 1 << 21

# "ftp" is the IANA-registered ALPN id for FTP; FileZilla also offers its own name.
ALPN_PROTOCOLS = (b"ftp", b"x-filezilla-ftp")


def select_alpn(connection: SSL.Connection, offered: list[bytes]) -> bytes | object:
    """The ALPN protocol to confirm: ours when offered, else go on without ALPN."""
    for protocol in ALPN_PROTOCOLS:
        if protocol in offered:
            return protocol
    return SSL.NO_OVERLAPPING_PROTOCOLS


def start_tls(transport: Any, options: CertificateOptions, normal: bool,
              clock: IReactorTime) -> None:
    """``transport.startTLS``, with the TLS layer's timers on ``clock``.

    Twisted's startTLS schedules its small-write flushes on the *global*
    reactor; for a server on another reactor (the test fixtures' private one)
    they would never run, so point the layer at the server's own clock.
    """
    transport.startTLS(options, normal)
    aggregator = getattr(getattr(transport, "protocol", None), "_aggregator", None)
    if aggregator is not None and hasattr(aggregator, "_clock"):
        aggregator._clock = clock


# Application bytes per SSL_write on a data connection, and the most TLS output
# taken from OpenSSL at once (a little more than those bytes' records).
TLS_WRITE = 256 * 1024
TLS_READ_OUT = TLS_WRITE + 16 * 1024


def write_in_large_batches(transport: Any) -> None:
    """Have the TLS layer of a started ``transport`` pass big writes on in big pieces.

    Twisted's ``TLSMemoryBIOProtocol._write`` hands OpenSSL 16 KiB slices (each a
    copy) and, after each, reads the record out of the memory BIO and writes it
    to the socket's buffer: per 256 KiB download chunk, 16 BIO reads and 16
    transport writes, which the transport then joins again. Here one SSL_write
    takes ``TLS_WRITE`` bytes and OpenSSL makes their records itself, which go
    out in one BIO read and one transport write. The bytes on the wire are the
    same records. Without partial writes, a write OpenSSL must retry (WantRead)
    is retried with the same bytes first, as Twisted's buffer does, and
    pyOpenSSL allows the moving buffer.
    """
    layer = transport if isinstance(transport, TLSMemoryBIOProtocol) else getattr(
        transport, "protocol", None)  # startTLS put it there
    if isinstance(layer, TLSMemoryBIOProtocol):
        # Whole writes: SSL_write then makes all the records of its bytes at once
        # (pyOpenSSL's partial-write mode returns after every record).
        _openssl.SSL_clear_mode(layer._tlsConnection._ssl, _openssl.SSL_MODE_ENABLE_PARTIAL_WRITE)
        layer._write = types.MethodType(_write_batched, layer)


def _write_batched(layer: Any, data: bytes) -> None:
    """``TLSMemoryBIOProtocol._write``, flushing records every ``TLS_WRITE`` bytes."""
    if layer._lostTLSConnection:
        return
    view = memoryview(data)
    done = flushed = 0
    while done < len(view):
        try:
            done += layer._tlsConnection.send(view[done:done + TLS_WRITE])
        except SSL.WantReadError:  # renegotiating: Twisted's buffer, resent when it is done
            layer._bufferedWrite(bytes(view[done:]))
            break
        except SSL.Error:
            layer._tlsShutdownFinished(Failure())
            return
        if done - flushed >= TLS_WRITE:
            _flush_records(layer)
            flushed = done
    _flush_records(layer)


def _flush_records(layer: Any) -> None:
    """Pass what OpenSSL has encrypted on to the socket, ``TLS_READ_OUT`` at most a time."""
    while True:
        try:
            out = layer._tlsConnection.bio_read(TLS_READ_OUT)
        except SSL.WantReadError:  # nothing (more) to send
            return
        layer.transport.write(out)
        if len(out) < TLS_READ_OUT:
            return


def hang_up(transport: Any) -> None:
    """``loseConnection``, without waiting for the client's close_notify under TLS.

    Twisted's TLS layer sends our close_notify, then keeps the socket open until
    the client answers with its own; clients such as gnutls-cli never do, and the
    session would linger until it is cut. TLS does not require the closing side
    to wait (RFC 8446 section 6.1), so close TCP once the close_notify is flushed.
    """
    transport.loseConnection()
    layer = transport if isinstance(transport, TLSMemoryBIOProtocol) else getattr(
        transport, "protocol", None)
    if isinstance(layer, TLSMemoryBIOProtocol) and layer.transport is not None:
        layer.transport.loseConnection()


def describe_tls_failure(reason: Any) -> str:
    """Why a TLS handshake ended, in words for the operator's log.

    ``reason`` is the Failure (or exception) a connection was lost with; OpenSSL's
    errors are lists of (library, function, reason) tuples.
    """
    error = getattr(reason, "value", reason)
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list):
        reasons = [entry[-1] for entry in error.args[0] if entry]
        if reasons:
            return "; ".join(str(r) for r in reasons)
    text = str(error).strip()
    if not text or isinstance(error, ConnectionClosed):
        return "the connection closed during the handshake"
    return f"{type(error).__name__}: {text}"


def session_reused(connection: SSL.Connection) -> bool:
    """Did this TLS connection resume an earlier session (instead of a full handshake)?"""
    return bool(_openssl.SSL_session_reused(connection._ssl))


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text("ascii")
    except FileNotFoundError:
        raise TLSConfigError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TLSConfigError(f"{path}: cannot read {what} file: {e}") from None


def _pem_blocks(text: str, kind: str) -> list[bytes]:
    """The PEM blocks whose label ends with ``kind`` (so RSA/EC PRIVATE KEY count)."""
    blocks, current, label = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-----BEGIN ") and stripped.endswith("-----"):
            label, current = stripped[11:-5], [stripped]
        elif label is not None:
            current.append(stripped)
            if stripped == f"-----END {label}-----":
                if label.endswith(kind):
                    blocks.append(("\n".join(current) + "\n").encode("ascii"))
                label = None
    return blocks


def _load_key(pem: bytes, path: str) -> PrivateKeyTypes:
    # cryptography, unlike OpenSSL's loader, never stops to prompt for a pass phrase.
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise TLSConfigError(f"{path}: the private key is encrypted; "
                             "give the server an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TLSConfigError(f"{path}: cannot load the private key: {e}") from None
    return key


def _check_validity(cert: x509.Certificate, path: str, now: datetime.datetime | None) -> None:
    moment = now or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    if cert.not_valid_after_utc < moment:
        raise TLSConfigError(f"{path}: certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > moment:
        raise TLSConfigError(
            f"{path}: certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        )
