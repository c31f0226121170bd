"""The self-signed certificate maker: what it certifies, how it writes the key, its CLI."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.ssl import PrivateCertificate

from twisted_ftpd.cert import fingerprint, main, make_self_signed, write_pem
from twisted_ftpd.tls import TLSCredentials

Capsys = pytest.CaptureFixture[str]
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\n.*?-----END \1-----\n", re.S)


def _cert(cert_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_pem)


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _run(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "certs"
    return main(["--hostname", "ftp.example.com", "--out", str(out), *args]), out / "ftpd.pem"


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# make_self_signed


def test_ecdsa_p256_sha256_by_default() -> None:
    cert_pem, key_pem = make_self_signed("ftp.example.com")
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    cert = _cert(cert_pem)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert _public_bytes(cert.public_key()) == _public_bytes(key.public_key())
    cert.verify_directly_issued_by(cert)  # self-signed, and the signature checks


def test_rsa_option() -> None:
    cert_pem, key_pem = make_self_signed("ftp.example.com", rsa=True)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    cert = _cert(cert_pem)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert _public_bytes(cert.public_key()) == _public_bytes(key.public_key())
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment


def test_subject_and_issuer_are_the_host_name() -> None:
    cert = _cert(make_self_signed("ftp.example.com")[0])
    expected = [x509.NameAttribute(NameOID.COMMON_NAME, "ftp.example.com")]
    assert list(cert.subject) == expected
    assert list(cert.issuer) == expected


def test_san_is_dns_name_for_a_host_name() -> None:
    san = _san(_cert(make_self_signed("ftp.example.com")[0]))
    assert list(san) == [x509.DNSName("ftp.example.com")]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_san_is_ip_address_for_an_ip_literal(address: str) -> None:
    cert = _cert(make_self_signed(address)[0])
    assert list(_san(cert)) == [x509.IPAddress(ipaddress.ip_address(address))]
    assert _san(cert).get_values_for_type(x509.DNSName) == []
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == address


def test_only_the_names_asked_for() -> None:
    san = _san(_cert(make_self_signed("ftp.example.com")[0]))
    assert "localhost" not in san.get_values_for_type(x509.DNSName)
    assert san.get_values_for_type(x509.IPAddress) == []


def test_alt_names_added_in_order_without_duplicates() -> None:
    cert_pem, _ = make_self_signed(
        "ftp.example.com", alt_names=["files.example.com", "192.0.2.7", "::1", "ftp.example.com"]
    )
    assert list(_san(_cert(cert_pem))) == [
        x509.DNSName("ftp.example.com"),
        x509.DNSName("files.example.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]


def test_host_names_normalised() -> None:
    san = _san(_cert(make_self_signed("FTP.Example.COM.", alt_names=["bücher.example"])[0]))
    assert san.get_values_for_type(x509.DNSName) == ["ftp.example.com", "xn--bcher-kva.example"]


def test_not_a_ca_and_for_servers_only() -> None:
    cert = _cert(make_self_signed("ftp.example.com")[0])
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_encipherment  # meaningless for an EC key
    assert not usage.key_cert_sign


@pytest.mark.parametrize("days", [1, 825, 3650])
def test_validity_period(days: int) -> None:
    before = datetime.datetime.now(datetime.UTC)
    cert = _cert(make_self_signed("ftp.example.com", days=days)[0])
    after = datetime.datetime.now(datetime.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    assert end - start == datetime.timedelta(days=days, minutes=5)
    slack = datetime.timedelta(seconds=1)  # the certificate's times have whole seconds
    assert before - datetime.timedelta(minutes=5) - slack <= start <= after
    assert before - slack <= end - datetime.timedelta(days=days) <= after


def test_default_validity_is_825_days() -> None:
    cert = _cert(make_self_signed("ftp.example.com")[0])
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(
        days=825, minutes=5
    )


def test_serials_are_random_and_positive() -> None:
    serials = {_cert(make_self_signed("ftp.example.com")[0]).serial_number for _ in range(3)}
    assert len(serials) == 3
    assert all(s > 2**64 for s in serials)


@pytest.mark.parametrize(
    "name", ["", " ftp.example.com", "a..b", "bad_name.example", "-x.example", "1.2.3.999",
             "fe80::1%eth0", "x" * 64, "foo\nbar"]
)
def test_bad_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid host name"):
        make_self_signed(name)
    with pytest.raises(ValueError, match="invalid host name"):
        make_self_signed("ftp.example.com", alt_names=[name])


def test_name_too_long_for_common_name_suggests_alt() -> None:
    long_name = ".".join(["a" * 30] * 3)  # a valid DNS name of 92 characters
    with pytest.raises(ValueError, match="--alt"):
        make_self_signed(long_name)
    san = _san(_cert(make_self_signed("ftp.example.com", alt_names=[long_name])[0]))
    assert long_name in san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("days", [0, -1, 36501, True])
def test_bad_days_refused(days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        make_self_signed("ftp.example.com", days=days)


def test_alt_names_must_be_a_sequence_of_names() -> None:
    with pytest.raises(TypeError):
        make_self_signed("ftp.example.com", alt_names="files.example.com")


def test_fingerprint_format_and_value() -> None:
    cert_pem, _ = make_self_signed("ftp.example.com")
    text = fingerprint(cert_pem)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", text)
    assert bytes.fromhex(text.replace(":", "")) == _cert(cert_pem).fingerprint(hashes.SHA256())


# write_pem


def test_write_pem_certificate_then_key_mode_0600(tmp_path: Path) -> None:
    cert_pem, key_pem = make_self_signed("ftp.example.com")
    path = tmp_path / "new" / "dir" / "ftpd.pem"
    write_pem(path, cert_pem, key_pem)
    assert path.read_bytes() == cert_pem + key_pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_pem_mode_0600_despite_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_pem(tmp_path / "ftpd.pem", *make_self_signed("ftp.example.com"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ftpd.pem").stat().st_mode) == 0o600


def test_write_pem_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "ftpd.pem"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        write_pem(path, *make_self_signed("ftp.example.com"))
    assert path.read_bytes() == b"precious"


def test_write_pem_force_replaces_and_tightens_mode(tmp_path: Path) -> None:
    path = tmp_path / "ftpd.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    cert_pem, key_pem = make_self_signed("ftp.example.com")
    write_pem(path, cert_pem, key_pem, force=True)
    assert path.read_bytes() == cert_pem + key_pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ftpd.pem"]  # no temporary left


def test_write_pem_does_not_follow_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    link = tmp_path / "ftpd.pem"
    link.symlink_to(victim)
    pems = make_self_signed("ftp.example.com")
    with pytest.raises(FileExistsError):
        write_pem(link, *pems)
    write_pem(link, *pems, force=True)
    assert victim.read_bytes() == b"untouched"
    assert not link.is_symlink()


# the command line


def test_cli_writes_one_file_that_loads_everywhere(tmp_path: Path, capsys: Capsys) -> None:
    status, path = _run(tmp_path)
    assert status == 0
    data = path.read_bytes()
    blocks = [m.group(1) for m in PEM_BLOCK.finditer(data)]
    assert blocks == [b"CERTIFICATE", b"PRIVATE KEY"]
    cert = x509.load_pem_x509_certificate(data)
    key = serialization.load_pem_private_key(data, password=None)
    assert _public_bytes(cert.public_key()) == _public_bytes(key.public_key())
    with open(path) as f:
        private = PrivateCertificate.loadPEM(f.read())  # both parts from the one file
    assert private.original.to_cryptography() == cert
    assert private.privateKey.keyHash() == private.getPublicKey().keyHash()  # key matches
    TLSCredentials.load(str(path))  # and the server's --tls-cert accepts it alone


def test_cli_prints_path_and_fingerprint(tmp_path: Path, capsys: Capsys) -> None:
    status, path = _run(tmp_path)
    assert status == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert str(path) in out
    match = re.search(r"SHA-256 fingerprint: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$", out, re.M)
    assert match
    cert_pem = PEM_BLOCK.search(path.read_bytes()).group(0)  # type: ignore[union-attr]
    assert match.group(1) == fingerprint(cert_pem)


def test_cli_mode_0600(tmp_path: Path) -> None:
    status, path = _run(tmp_path)
    assert status == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_refuses_to_overwrite_then_force(tmp_path: Path, capsys: Capsys) -> None:
    status, path = _run(tmp_path)
    assert status == 0
    first = path.read_bytes()
    capsys.readouterr()
    status, path = _run(tmp_path)
    assert status == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err
    assert path.read_bytes() == first
    status, path = _run(tmp_path, "--force")
    assert status == 0
    assert path.read_bytes() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_alt_ip_and_rsa(tmp_path: Path) -> None:
    status, path = main(["--hostname", "127.0.0.1", "--out", str(tmp_path), "--alt", "::1",
                         "--alt", "ftp.example.com", "--rsa"]), tmp_path / "ftpd.pem"
    assert status == 0
    data = path.read_bytes()
    cert = x509.load_pem_x509_certificate(data)
    assert list(_san(cert)) == [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("ftp.example.com"),
    ]
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    PrivateCertificate.loadPEM(data.decode("ascii"))


def test_cli_days(tmp_path: Path) -> None:
    assert _run(tmp_path, "--days", "30")[0] == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "certs" / "ftpd.pem").read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(
        days=30, minutes=5
    )


@pytest.mark.parametrize("days", ["0", "-5", "ten", "36501"])
def test_cli_bad_days_is_a_usage_error(tmp_path: Path, capsys: Capsys, days: str) -> None:
    status, path = _run(tmp_path, "--days", days)
    assert status == 2
    err = capsys.readouterr().err
    assert "--days" in err and "Traceback" not in err
    assert not path.exists()


@pytest.mark.parametrize("name", ["", "bad_name!", "1.2.3.999"])
def test_cli_bad_hostname(tmp_path: Path, capsys: Capsys, name: str) -> None:
    status = main(["--hostname", name, "--out", str(tmp_path)])
    assert status in (1, 2)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "invalid host name" in err and "Traceback" not in err
    assert not (tmp_path / "ftpd.pem").exists()


def test_cli_missing_options_are_usage_errors(tmp_path: Path, capsys: Capsys) -> None:
    assert main(["--out", str(tmp_path)]) == 2
    assert main(["--hostname", "ftp.example.com"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_unwritable_directory_is_one_line(tmp_path: Path, capsys: Capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    status = main(["--hostname", "ftp.example.com", "--out", str(blocker / "sub")])
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "already exists" not in err


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twisted_ftpd.cert", "--hostname", "", "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("python -m twisted_ftpd.cert: error: invalid host name")
    assert "Traceback" not in result.stderr


def test_cli_prints_the_sha1_fingerprint_too(tmp_path: Path, capsys: Capsys) -> None:
    status, path = _run(tmp_path)
    assert status == 0
    out = capsys.readouterr().out
    match = re.search(r"^SHA-1 fingerprint: +((?:[0-9A-F]{2}:){19}[0-9A-F]{2})$", out, re.M)
    assert match  # what lftp shows; FileZilla shows both
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    assert bytes.fromhex(match.group(1).replace(":", "")) == cert.fingerprint(hashes.SHA1())
    assert "mode 0600" in out


def test_show_prints_names_expiry_and_both_fingerprints(tmp_path: Path, capsys: Capsys) -> None:
    status, path = _run(tmp_path, "--alt", "192.0.2.7")
    assert status == 0
    made = capsys.readouterr().out
    before = path.read_bytes()
    assert main(["--show", str(path)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"{path}: CN=ftp.example.com"
    assert shown[1] == "names: ftp.example.com, 192.0.2.7"
    assert shown[2].startswith("valid until ") and shown[2].endswith(" UTC")
    assert shown[3:] == [line for line in made.splitlines() if "fingerprint" in line]
    assert path.read_bytes() == before  # nothing written


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_show_of_a_missing_or_bad_file_is_one_line(tmp_path: Path, capsys: Capsys,
                                                   content: bytes | None) -> None:
    path = tmp_path / "x.pem"
    if content is not None:
        path.write_bytes(content)
    assert main(["--show", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_twisted_ftpd_cert_subcommand(tmp_path: Path) -> None:
    script = str(Path(sys.executable).with_name("twisted-ftpd"))
    result = subprocess.run([script, "cert", "--hostname", "ftp.example.com", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SHA-256 fingerprint" in result.stdout and "SHA-1 fingerprint" in result.stdout
    assert stat.S_IMODE((tmp_path / "ftpd.pem").stat().st_mode) == 0o600
    result = subprocess.run([script, "cert", "--hostname", "", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("twisted-ftpd cert: error: invalid host name")
