"""Helpers for the FTPS (RFC 4217) integration tests: certificates, TLS ftplib clients,
raw TLS sockets, the check that a client run succeeded, and a subprocess launcher.
Everything here is blocking: call it through ``in_thread`` from the tests, never on
the reactor thread."""

from __future__ import annotations

import contextlib
import datetime
import ftplib
import io
import os
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import FTP_TIMEOUT, close_quietly
from twisted_ftpd.cert import make_self_signed, write_pem

SAFETY_TIMEOUT = 30  # seconds; a safety net for sockets and subprocesses, never a wait


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate and key, and the PEM file (both in one) the server reads."""

    cert_pem: bytes
    key_pem: bytes
    path: Path


def make_tls_files(directory: Path) -> TLSFiles:
    # ::1 is certified too, so the IPv6 tests can keep hostname checking on.
    cert_pem, key_pem = make_self_signed("localhost", alt_names=["127.0.0.1", "::1"])
    path = directory / "server.pem"
    write_pem(path, cert_pem, key_pem)
    return TLSFiles(cert_pem, key_pem, path)


def expired_certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate (and its key) whose validity ended yesterday."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = x509.CertificateBuilder(
        issuer_name=name, subject_name=name, public_key=key.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=now - datetime.timedelta(days=30),
        not_valid_after=now - datetime.timedelta(days=1),
    ).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def client_context(cert_pem: bytes, check_hostname: bool = True) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate (a fresh one: no sessions)."""
    context = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    context.check_hostname = check_hostname
    return context


# -- ftplib ---------------------------------------------------------------------------------


class ReusingFTP_TLS(ftplib.FTP_TLS):  # noqa: N801 - mirrors ftplib's class name
    """FTP_TLS whose protected data connections resume the control connection's TLS
    session (ftplib's own does not, so a server that requires reuse refuses them)."""

    data_sessions_reused: list[bool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_sessions_reused = []

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(  # type: ignore[attr-defined]
                conn, server_hostname=self.host, session=self.sock.session)
            self.data_sessions_reused.append(conn.session_reused)
        return conn, size


def tls_connect(host: str, port: int, cert_pem: bytes, user: str | None = "alice",
                password: str = "secret", *, passive: bool = True, reuse: bool = True,
                prot_p: bool = True, check_hostname: bool = True) -> ftplib.FTP_TLS:
    """AUTH TLS, then (with ``user``) login and, with ``prot_p``, PBSZ 0 + PROT P."""
    cls = ReusingFTP_TLS if reuse else ftplib.FTP_TLS
    ftp = cls(context=client_context(cert_pem, check_hostname), timeout=FTP_TIMEOUT)
    try:
        ftp.connect(host, port)
        ftp.set_pasv(passive)
        ftp.auth()
        if user is not None:
            ftp.login(user, password)
            if prot_p:
                ftp.prot_p()
    except BaseException:
        ftp.close()
        raise
    return ftp


@contextlib.contextmanager
def tls_session(host: str, port: int, cert_pem: bytes, user: str | None = "alice",
                password: str = "secret", **kwargs: Any) -> Iterator[ftplib.FTP_TLS]:
    ftp = tls_connect(host, port, cert_pem, user, password, **kwargs)
    try:
        yield ftp
    finally:
        close_quietly(ftp)


def stor(ftp: ftplib.FTP, name: str, data: bytes) -> str:
    return ftp.storbinary(f"STOR {name}", io.BytesIO(data))


def outcome(ftp: ftplib.FTP, command: str) -> str:
    """The final reply to ``command`` (after any 1xx), whatever its code."""
    try:
        reply = ftp.sendcmd(command)
        if reply.startswith("1"):
            reply = ftp.getresp()
    except ftplib.Error as e:
        return str(e)
    return reply


def drain(sock: socket.socket) -> tuple[bytes, BaseException | None]:
    """Read until the peer closes; returns what came and the error that ended it, if any."""
    chunks: list[bytes] = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ssl.SSLError, ConnectionError) as e:
        return b"".join(chunks), e
    return b"".join(chunks), None


class RawLines:
    """A plain control connection, line by line, whose socket can later be wrapped."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=SAFETY_TIMEOUT)
        self._buffer = b""
        self.greeting = self.reply()

    def _line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def reply(self) -> str:
        first = self._line()
        lines = [first]
        if first[3:4] == b"-":
            while lines[-1] and not (lines[-1][:3] == first[:3] and lines[-1][3:4] == b" "):
                lines.append(self._line())
        return b"".join(lines).decode("utf-8")

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


# -- Twisted's FTPClient ----------------------------------------------------------------------


# -- client and server processes ---------------------------------------------------------------


def ok(result: subprocess.CompletedProcess) -> str:
    """stdout of a client run that must have succeeded."""
    assert result.returncode == 0, (
        f"{result.args[0]} exited {result.returncode}\n"
        f"stdout: {result.stdout.decode(errors='replace')}\n"
        f"stderr: {result.stderr.decode(errors='replace')}"
    )
    return result.stdout.decode("utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    """Start a server and wait (on its log, not a clock) until it is listening."""
    return start_logged(command, cwd)[0]


def start_logged(command: list[str], cwd: Path,
                 pass_fds: tuple[int, ...] = ()) -> tuple[subprocess.Popen[str], str]:
    """``start_process``, and what the server logged until it was listening; ``pass_fds``
    stay open in the server (sockets for it to inherit)."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env=_no_proxy_env(),
                            pass_fds=pass_fds)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "twisted-ftpd serving" in line:
            return proc, "".join(seen)
    proc.wait(timeout=SAFETY_TIMEOUT)
    raise AssertionError("server exited before listening:\n" + "".join(seen))


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SAFETY_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _no_proxy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
