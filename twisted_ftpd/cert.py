# -*- test-case-name: tests.test_cert -*-
"""Make a self-signed certificate so FTPS works on first use, without reaching for openssl."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PROG = "python -m twisted_ftpd.cert"
FILENAME = "ftpd.pem"
DEFAULT_DAYS = 825
MAX_DAYS = 36500
BACKDATE = datetime.timedelta(minutes=5)  # tolerate clients whose clock is a little behind
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CN_MAX = 64  # ub-common-name in RFC 5280

SubjectName = x509.DNSName | x509.IPAddress


def _subject_name(name: str) -> SubjectName:
    """``name`` as a SubjectAlternativeName entry; ValueError saying why it cannot be one."""
    if not name or name != name.strip():
        raise ValueError(f"invalid host name {name!r}: empty or surrounded by spaces")
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError(f"invalid host name {name!r}: IPv6 scope ids cannot be certified")
        return x509.IPAddress(address)
    host = name.removesuffix(".")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"invalid host name {name!r}: not a valid DNS name") from None
    labels = host.split(".")
    wildcard = labels[0] == "*" and len(labels) > 2
    if (
        len(host) > 253
        or not all(_LABEL.match(label) for label in labels[1 if wildcard else 0:])
        or labels[-1].isdigit()  # "1.2.3.999" is a mistyped address, not a name
    ):
        raise ValueError(f"invalid host name {name!r}: not a valid DNS name or IP address")
    return x509.DNSName(host)


def _name_text(entry: SubjectName) -> str:
    value = entry.value
    return value if isinstance(value, str) else str(value)


def make_self_signed(
    hostname: str,
    *,
    days: int = DEFAULT_DAYS,
    alt_names: Sequence[str] = (),
    rsa: bool = False,
) -> tuple[bytes, bytes]:
    """A self-signed server certificate for ``hostname`` (and ``alt_names``) and its key.

    Returns ``(certificate PEM, PKCS#8 private key PEM)``; the key is unencrypted.
    Raises ValueError for a bad host name or a day count outside 1..36500.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}, not {days!r}")
    if isinstance(alt_names, str):
        raise TypeError("alt_names must be a sequence of names, not one string")
    primary = _subject_name(hostname)
    common_name = _name_text(primary)
    if len(common_name) > _CN_MAX:
        raise ValueError(
            f"host name {hostname!r} is longer than {_CN_MAX} characters, too long for a "
            "certificate's common name; use a shorter --hostname and give this one with --alt"
        )
    entries: list[SubjectName] = []
    for entry in (primary, *(_subject_name(n) for n in alt_names)):
        if entry not in entries:
            entries.append(entry)

    key: ec.EllipticCurvePrivateKey | rsa_keys.RSAPrivateKey
    if rsa:
        key = rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def fingerprint(cert_pem: bytes, algorithm: hashes.HashAlgorithm | None = None) -> str:
    """The certificate's fingerprint (SHA-256 unless ``algorithm`` says otherwise) as
    colon-separated upper-case hex, as clients show it."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    return certificate.fingerprint(algorithm or hashes.SHA256()).hex(":").upper()


def fingerprint_lines(cert_pem: bytes) -> list[str]:
    """What to compare with a client's prompt: FileZilla shows SHA-256 and SHA-1, lftp
    and older clients SHA-1 only (SHA-1 is fine for recognising a certificate)."""
    return [f"SHA-256 fingerprint: {fingerprint(cert_pem)}",
            f"SHA-1 fingerprint:   {fingerprint(cert_pem, hashes.SHA1())}"]


def _show(path: str) -> list[str]:
    """The names, validity and fingerprints of the first certificate in a PEM file."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError(f"{path}: no PEM certificate in it") from None
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = ", ".join(_name_text(entry) for entry in san.value)  # type: ignore[arg-type]
    except x509.ExtensionNotFound:
        names = "(none)"
    return [f"{path}: {certificate.subject.rfc4514_string()}",
            f"names: {names}",
            f"valid until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            *fingerprint_lines(cert_pem)]


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (which must not exist) as 0600 and write ``data``; no partial file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise


def write_pem(
    path: str | os.PathLike[str], cert_pem: bytes, key_pem: bytes, force: bool = False
) -> None:
    """Write certificate then key to ``path`` with mode 0600, creating its directory.

    The file is never readable by others, not even while being written. Raises
    FileExistsError if ``path`` exists and ``force`` is false; with ``force`` the
    old file is replaced atomically (a symlink is replaced, not followed).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = cert_pem + key_pem
    if not force:
        _write_new(target, data)
        return
    for attempt in range(100):
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{attempt}.tmp")
        try:
            _write_new(temporary, data)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"{target.parent}: cannot create a temporary file")
    try:
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_DAYS}, not {value}")
    return value


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Write DIR/{FILENAME}: a self-signed certificate and its private key, "
        "for the server's --tls-cert.",
    )
    parser.add_argument("--hostname", metavar="NAME",
                        help="the DNS name or IP address clients connect to (required)")
    parser.add_argument("--out", metavar="DIR",
                        help=f"directory for {FILENAME}, created if missing (required)")
    parser.add_argument("--days", type=_days, default=DEFAULT_DAYS, metavar="N",
                        help=f"days of validity (default {DEFAULT_DAYS})")
    parser.add_argument("--alt", action="append", default=[], metavar="NAME",
                        help="another DNS name or IP address to certify (repeatable)")
    parser.add_argument("--rsa", action="store_true",
                        help="RSA 2048 key instead of ECDSA P-256 (for old clients)")
    parser.add_argument("--force", action="store_true",
                        help=f"replace an existing {FILENAME}")
    parser.add_argument("--show", metavar="FILE",
                        help="make nothing: print the names, expiry and fingerprints of the "
                        "certificate in FILE (any PEM certificate, a CA's too)")
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Make and write the certificate; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
        if args.show is None and (args.hostname is None or args.out is None):
            parser.error("the following arguments are required: --hostname, --out "
                         "(or --show FILE)")
    except SystemExit as e:  # usage errors and --help: argparse already printed
        return e.code if isinstance(e.code, int) else 2
    if args.show is not None:
        try:
            print("\n".join(_show(args.show)))
        except ValueError as e:
            return _error(prog, str(e))
        except OSError as e:
            return _error(prog, f"{args.show}: {e.strerror or e}")
        return 0
    path = Path(args.out) / FILENAME
    try:
        cert_pem, key_pem = make_self_signed(
            args.hostname, days=args.days, alt_names=args.alt, rsa=args.rsa
        )
        write_pem(path, cert_pem, key_pem, force=args.force)
    except ValueError as e:
        message = str(e)
    except OSError as e:
        if isinstance(e, FileExistsError) and e.filename is not None and Path(e.filename) == path:
            message = f"{path} already exists; use --force to replace it"
        else:
            message = f"{e.filename or path}: {e.strerror or e}"
    else:
        print(f"wrote {path} (mode 0600; start the server with --tls-cert {path})")
        print("\n".join(fingerprint_lines(cert_pem)))
        return 0
    return _error(prog, message)


def _error(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}".replace("\n", " "), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
