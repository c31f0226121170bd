"""Real command-line FTP clients (lftp, curl, wget) against the in-process server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import pytest_twisted

from tests.integration.conftest import (
    UTF8_NAME,
    file_sha256,
    in_thread,
    lftp_script,
    parse_list_line,
    require_binary,
    run_cli,
    sha256,
    snapshot,
)
from tests.integration.tls_helpers import ok

pytestmark = pytest.mark.integration


def make_tree(base: Path) -> None:
    (base / "a" / "b").mkdir(parents=True)
    (base / "empty").mkdir()
    (base / "one.txt").write_bytes(b"one\n")
    (base / "a" / "two.bin").write_bytes(os.urandom(70_000))
    (base / "a" / "b" / "three.bin").write_bytes(os.urandom(1_234_567))
    (base / "a" / "b" / "with space.txt").write_bytes(b"spaced\n")


# -- lftp -----------------------------------------------------------------------------------


async def lftp(server, tmp_path: Path, *commands: str, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    binary = require_binary("lftp")
    script = lftp_script(server, *commands)
    return await in_thread(run_cli, [binary, "-c", script], tmp_path / "home", cwd)


@pytest_twisted.ensureDeferred
async def test_lftp_file_operations(server, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(2_500_000))
    back = tmp_path / "back.bin"

    ok(await lftp(server, tmp_path, f'put "{local}" -o up.bin', "mkdir dir",
                  "mv up.bin dir/moved.bin", f'get dir/moved.bin -o "{back}"'))
    assert file_sha256(server.root / "dir" / "moved.bin") == file_sha256(local)
    assert file_sha256(back) == file_sha256(local)

    listing = ok(await lftp(server, tmp_path, "ls dir"))
    (line,) = listing.splitlines()
    assert parse_list_line(line)[1:] == (local.stat().st_size, "moved.bin")
    assert ok(await lftp(server, tmp_path, "cls -1")).splitlines() == ["dir/"]

    ok(await lftp(server, tmp_path, "rm dir/moved.bin", "rmdir dir"))
    assert os.listdir(server.root) == []


@pytest_twisted.ensureDeferred
async def test_lftp_utf8_name_with_spaces(server, tmp_path: Path) -> None:
    local = tmp_path / "src.bin"
    local.write_bytes(os.urandom(300_000))
    back = tmp_path / f"back {UTF8_NAME}"

    out = ok(await lftp(server, tmp_path, f'put "{local}" -o "{UTF8_NAME}"', "cls -1",
                        f'get "{UTF8_NAME}" -o "{back}"'))
    assert out.splitlines() == [UTF8_NAME]
    assert file_sha256(server.root / UTF8_NAME) == file_sha256(local)
    assert file_sha256(back) == file_sha256(local)
    ok(await lftp(server, tmp_path, f'rm "{UTF8_NAME}"'))
    assert os.listdir(server.root) == []


@pytest_twisted.ensureDeferred
async def test_lftp_mirror_up_and_down(server, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    down = tmp_path / "down"

    ok(await lftp(server, tmp_path, f'mirror -R "{tree}" up'))
    assert snapshot(server.root / "up") == snapshot(tree)
    ok(await lftp(server, tmp_path, f'mirror up "{down}"'))
    assert snapshot(down) == snapshot(tree)


@pytest_twisted.ensureDeferred
async def test_lftp_wrong_password_fails(server, tmp_path: Path) -> None:
    binary = require_binary("lftp")
    script = ("set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; "
              f"set ftp:ssl-allow no; open -u alice,wrong -p {server.port} {server.host}; ls")
    result = await in_thread(run_cli, [binary, "-c", script], tmp_path / "home")
    assert result.returncode != 0
    assert b"530" in result.stderr or b"Login" in result.stderr, result.stderr
    await server.still_serves()


# -- curl -----------------------------------------------------------------------------------


async def curl(server, tmp_path: Path, path: str, *args: str):  # type: ignore[no-untyped-def]
    binary = require_binary("curl")
    argv = [binary, "-sS", "--user", "alice:secret", *args, server.url(path)]
    return await in_thread(run_cli, argv, tmp_path / "home")


def sent_commands(result: subprocess.CompletedProcess) -> list[str]:
    """The FTP commands curl -v says it sent."""
    lines = result.stderr.decode("utf-8", "replace").splitlines()
    return [line[2:].split(" ")[0] for line in lines if line.startswith("> ")]


@pytest_twisted.ensureDeferred
async def test_curl_list_upload_download(server, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(1_500_000))
    out = tmp_path / "out.bin"

    up = await curl(server, tmp_path, "/c.bin", "-v", "-T", str(local))
    ok(up)
    assert "EPSV" in sent_commands(up)  # curl's default data connection
    assert file_sha256(server.root / "c.bin") == file_sha256(local)

    (line,) = ok(await curl(server, tmp_path, "/")).splitlines()
    assert parse_list_line(line)[1:] == (local.stat().st_size, "c.bin")

    ok(await curl(server, tmp_path, "/c.bin", "-o", str(out)))
    assert file_sha256(out) == file_sha256(local)


# The data connection modes (EPSV, PASV, EPRT, PORT) for curl's transfers and listings:
# test_interop_matrix.py's test_curl_data_connection_modes, over IPv4 and IPv6.


@pytest_twisted.ensureDeferred
async def test_curl_create_dirs(server, tmp_path: Path) -> None:
    local = tmp_path / "deep.bin"
    local.write_bytes(os.urandom(10_000))
    ok(await curl(server, tmp_path, "/x/y/z/deep.bin", "--ftp-create-dirs", "-T", str(local)))
    assert file_sha256(server.root / "x" / "y" / "z" / "deep.bin") == file_sha256(local)


@pytest_twisted.ensureDeferred
async def test_curl_quote_commands(server, tmp_path: Path) -> None:
    (server.root / "victim.bin").write_bytes(b"delete me")
    (server.root / "keeper.bin").write_bytes(b"keep me")
    listing = ok(await curl(server, tmp_path, "/", "-Q", "DELE victim.bin",
                            "-Q", "MKD made"))
    assert sorted(os.listdir(server.root)) == ["keeper.bin", "made"]
    assert sorted(parse_list_line(line)[2] for line in listing.splitlines()) == [
        "keeper.bin", "made"]
    # A failing quote command fails the transfer (curl exit 21: quote error).
    result = await curl(server, tmp_path, "/", "-Q", "DELE victim.bin")
    assert result.returncode == 21, result.stderr


# curl resuming a download (REST) and an upload (SIZE, APPE): test_interop_matrix.py's
# test_curl_resume_download_and_upload, over IPv4 and IPv6.


@pytest_twisted.ensureDeferred
async def test_curl_missing_file_is_exit_78(server, tmp_path: Path) -> None:
    out = tmp_path / "never.bin"
    result = await curl(server, tmp_path, "/missing.bin", "-o", str(out))
    assert result.returncode == 78, result.stderr
    assert not out.exists()
    await server.still_serves()


# -- wget -----------------------------------------------------------------------------------


async def wget(server, tmp_path: Path, path: str, *args: str, cwd: Path):  # type: ignore[no-untyped-def]
    binary = require_binary("wget")
    url = f"ftp://alice:secret@{server.url_host}:{server.port}{path}"
    return await in_thread(run_cli, [binary, "-q", *args, url], tmp_path / "home", cwd)


@pytest_twisted.ensureDeferred
async def test_wget_file(server, tmp_path: Path) -> None:
    data = os.urandom(1_100_000)
    (server.root / "w.bin").write_bytes(data)
    out = tmp_path / "out.bin"
    ok(await wget(server, tmp_path, "/w.bin", "-O", str(out), cwd=tmp_path))
    assert file_sha256(out) == sha256(data)


@pytest_twisted.ensureDeferred
async def test_wget_directory_listing_and_recursive_fetch(server, tmp_path: Path) -> None:
    make_tree(server.root / "dir")
    listing_dir = tmp_path / "listing"
    listing_dir.mkdir()

    ok(await wget(server, tmp_path, "/dir/", "--no-remove-listing", cwd=listing_dir))
    lines = (listing_dir / ".listing").read_text("utf-8").splitlines()
    entries = {parse_list_line(line)[2]: parse_list_line(line) for line in lines}
    assert sorted(entries) == ["a", "empty", "one.txt"]
    assert entries["a"][0].startswith("d")
    assert entries["one.txt"][1] == 4

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    ok(await wget(server, tmp_path, "/dir/", "-r", "-nH", "--no-remove-listing", cwd=mirror))
    fetched = {path: digest for path, digest in snapshot(mirror / "dir").items()
               if not path.endswith(".listing")}
    expected = {path: digest for path, digest in snapshot(server.root / "dir").items()
                if path != "empty"}  # wget does not create empty directories
    fetched.pop("empty", None)
    assert fetched == expected
