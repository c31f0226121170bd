"""As root, on port 21, in a network namespace of its own (the host's port 21 may be
taken): both launchers bind the port while privileged, then serve as nobody/nogroup with
nobody's groups and no capabilities, and what uploads create gets the --umask.

Needs root and ``ip netns``; skipped with the reason otherwise, except under CI=true,
where these must run."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import write_users
from tests.helpers import SERVER_PY, TWISTD
from tests.integration.conftest import CLI_TIMEOUT, require_binary
from tests.integration.tls_helpers import make_tls_files, ok, start_logged, stop_process

pytestmark = pytest.mark.integration

UMASK = 0o027


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with only ``lo``, up; deleted afterwards."""
    if os.geteuid() != 0:
        unavailable("needs root: binds port 21 and switches to nobody")
    ip = require_binary("ip")
    name = f"ftpd-test-{os.getpid()}-{secrets.token_hex(3)}"
    added = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True,
                           timeout=CLI_TIMEOUT)
    if added.returncode != 0:
        unavailable(f"ip netns is not permitted here: {added.stderr.strip()}")
    try:
        subprocess.run([ip, "netns", "exec", name, ip, "link", "set", "lo", "up"],
                       check=True, timeout=CLI_TIMEOUT)
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], check=True, timeout=CLI_TIMEOUT)


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp_path is root's alone): a root owned by
    nobody and a users file only nobody can read, as the deployment guide says."""
    base = Path(tempfile.mkdtemp(prefix="twisted-ftpd-privileges-"))
    try:
        base.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        root = base / "root"
        root.mkdir()
        os.chown(root, nobody.pw_uid, grp.getgrnam("nogroup").gr_gid)
        users = base / "users.db"
        write_users(users, {"alice": ("secret", "elradfmwMT")}, None)
        users.chmod(0o600)
        os.chown(users, nobody.pw_uid, -1)
        yield base
    finally:
        shutil.rmtree(base)


def in_netns(netns: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *command]


def curl(netns: str, site: Path, *args: str) -> str:
    result = subprocess.run(in_netns(netns, require_binary("curl"), "-sS", "--noproxy", "*",
                                     "--user", "alice:secret", *args),
                            cwd=site, capture_output=True, timeout=CLI_TIMEOUT)
    return ok(result)


def ids(pid: int) -> dict[str, list[int]]:
    """Uid/Gid (real, effective, saved, filesystem), Groups, CapEff of a live process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
        elif key == "CapEff":
            fields[key] = [int(value.strip(), 16)]
    return fields


def check_serves_as_nobody(netns: str, site: Path, pid: int, log: str) -> None:
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup").gr_gid
    assert ids(pid) == {"Uid": [nobody.pw_uid] * 4, "Gid": [nogroup] * 4,
                        "Groups": sorted(set(os.getgrouplist("nobody", nogroup))),
                        "CapEff": [0]}
    assert f"as nobody (uid {nobody.pw_uid}, gid {nogroup})" in log
    (site / "upload.txt").write_bytes(b"uploaded over port 21\n")
    # No port in the URLs: curl's default, 21.
    curl(netns, site, "--ftp-create-dirs", "-T", "upload.txt", "ftp://127.0.0.1/made/up.txt")
    stored = site / "root" / "made" / "up.txt"
    assert stored.read_bytes() == b"uploaded over port 21\n"
    assert (stored.stat().st_uid, stored.stat().st_gid) == (nobody.pw_uid, nogroup)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o666 & ~UMASK
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o777 & ~UMASK
    assert curl(netns, site, "ftp://127.0.0.1/made/up.txt") == "uploaded over port 21\n"


@pytest.mark.parametrize("launcher", ["server.py --user", "twistd --uid"])
def test_port_21_as_nobody(netns: str, site: Path, launcher: str) -> None:
    options = ["--port", "21", "--root", str(site / "root"), "--users", str(site / "users.db"),
               "--umask", f"0{UMASK:o}"]
    if launcher == "server.py --user":
        command = [*SERVER_PY, "--user", "nobody", "--group", "nogroup", *options]
    else:
        command = [*TWISTD, "-n", "--pidfile=", "--logfile=-", "--uid", "nobody",
                   "--gid", "nogroup", "ftpd", *options]
    proc, log = start_logged(in_netns(netns, *command), site)
    try:
        check_serves_as_nobody(netns, site, proc.pid, log)
    finally:
        stop_process(proc)


def test_listen_descriptions_on_21_and_990_as_nobody(netns: str, site: Path) -> None:
    tls = make_tls_files(site)  # root's alone (0600): read before the switch
    command = [*SERVER_PY, "--user", "nobody", "--group", "nogroup",
               "--listen", r"tcp:21:interface=\:\:", "--implicit-tls-listen", "tcp:990",
               "--tls-cert", str(tls.path), "--root", str(site / "root"),
               "--users", str(site / "users.db"), "--umask", f"0{UMASK:o}"]
    proc, log = start_logged(in_netns(netns, *command), site)
    try:
        assert "on [::]:21; implicit FTPS on 0.0.0.0:990 as nobody" in log
        check_serves_as_nobody(netns, site, proc.pid, log)
        (site / "ca.pem").write_bytes(tls.cert_pem)
        listing = curl(netns, site, "--cacert", "ca.pem", "--list-only",
                       "ftps://127.0.0.1/made/")
        assert listing.split() == ["up.txt"]
    finally:
        stop_process(proc)
