"""Storage URLs: checking them, turning them into homes, and a whole session served
from object storage (fsspec's memory store standing in for S3, no threads)."""

from __future__ import annotations

import itertools
from pathlib import Path

import fsspec
import pytest
from twisted.python import usage

from tests.harness import cheap_hash, logged_in
from twisted_ftpd import malloc
from twisted_ftpd.auth import userdb
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.realm import FTPRealm
from twisted_ftpd.auth.userdb import UserDB, UserRecord
from twisted_ftpd.config import Options
from twisted_ftpd.fs import storage
from twisted_ftpd.fs.object_files import PART_SIZE
from twisted_ftpd.fs.objects import ObjectShell
from twisted_ftpd.fs.storage import StorageError, Stores, parse_storage_url
from twisted_ftpd.protocol.errors import HomeUnavailable

_buckets = itertools.count()


def sync(f, *args):  # type: ignore[no-untyped-def]
    from twisted.internet.defer import maybeDeferred

    return maybeDeferred(f, *args)


@pytest.fixture
def bucket() -> str:
    name = f"bucket{next(_buckets)}"
    fs = fsspec.filesystem("memory")
    fs.makedirs(f"/{name}/homes", exist_ok=True)
    yield name
    fs.rm(f"/{name}", recursive=True)


# -- URLs -----------------------------------------------------------------------------------


def test_urls_that_can_be_served() -> None:
    for url in ("s3://bucket", "s3://bucket/prefix/deeper", "memory://m/x", "/srv/ftp",
                "file:///srv/ftp", "relative/dir"):
        assert parse_storage_url(url) == url
    assert storage.is_disk(None) and storage.is_disk("/srv/ftp")
    assert storage.is_disk("file:///srv") and not storage.is_disk("s3://b")


@pytest.mark.parametrize("url, words", [
    ("nosuch://bucket/x", "unknown storage scheme 'nosuch'"),
    ("s3://key:secret@bucket/x", "credentials do not belong in a storage URL"),
    ("s3:///prefix", "name the bucket"),
])
def test_urls_that_cannot(url: str, words: str) -> None:
    with pytest.raises(StorageError, match=words):
        parse_storage_url(url)


def test_a_missing_package_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(scheme: str) -> None:
        raise ImportError("Install s3fs to access S3", name="s3fs")

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    with pytest.raises(StorageError) as e:
        parse_storage_url("s3://bucket")
    assert str(e.value) == ("s3:// storage needs s3fs, which is not installed: "
                            "pip install 'twisted-ftpd[s3]'")
    with pytest.raises(usage.UsageError, match=r"^--storage s3:// storage needs s3fs"):
        Options().parseOptions(["--storage", "s3://bucket"])


def test_options_reach_the_config() -> None:
    options = Options()
    options.parseOptions(["--storage", "s3://b/p", "--storage-endpoint", "http://127.0.0.1:1",
                          "--storage-region", "eu-west-1", "--storage-threads", "4"])
    config = options.to_config()
    assert (config.storage, config.storage_endpoint, config.storage_region,
            config.storage_threads) == ("s3://b/p", "http://127.0.0.1:1", "eu-west-1", 4)
    with pytest.raises(usage.UsageError, match="unknown storage scheme"):
        Options().parseOptions(["--storage", "nosuch://b"])


def test_s3_clients_get_the_endpoint_region_and_no_listing_cache() -> None:
    stores = Stores(sync, storage.StoreOptions("http://127.0.0.1:9", "eu-west-1"))
    home = stores.locate("s3://b/p", "alice")
    assert home.root == "b/p/alice"
    assert home.fs.client_kwargs == {"region_name": "eu-west-1"}
    assert home.fs.endpoint_url == "http://127.0.0.1:9"
    assert home.fs.dircache.use_listings_cache is False
    assert stores.locate("s3://b/q", "").fs is home.fs  # one client per bucket


def test_homes_are_prefixes_below_the_url(bucket: str) -> None:
    stores = Stores(sync)
    assert stores.locate(f"memory://{bucket}/homes", "alice").root == f"{bucket}/homes/alice"
    assert stores.locate(f"memory://{bucket}/homes", "/srv/ftp/bob/").root == \
        f"{bucket}/homes/srv/ftp/bob"
    assert stores.locate(f"memory://{bucket}", "").root == bucket
    with pytest.raises(StorageError, match="'..'"):
        stores.locate(f"memory://{bucket}/homes", "../other")


def test_pinning_the_mmap_threshold_works_on_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    malloc.keep_big_blocks_mapped.cache_clear()
    assert malloc.keep_big_blocks_mapped() is True
    assert malloc.MMAP_THRESHOLD <= PART_SIZE  # the upload parts are mmapped


# -- users.db storage= -----------------------------------------------------------------------


def test_users_db_keeps_a_storage_url_whole(tmp_path: Path) -> None:
    record = UserRecord("alice", cheap_hash("pw"), "elr", "alice",
                        {"storage": "s3://bucket/homes", "max_sessions": "2"})
    line = userdb.format_record(record)
    assert line.endswith(":alice:storage=s3://bucket/homes:max_sessions=2")
    assert userdb.parse(line + "\n")["alice"] == record
    with pytest.raises(userdb.UserDBError, match="unknown storage scheme"):
        userdb.parse(line.replace("s3://", "nosuch://") + "\n")
    with pytest.raises(userdb.UserDBError, match="not key=value"):
        userdb.parse(line.replace("storage=", "other=") + "\n")  # only storage= holds a URL


# -- the realm ------------------------------------------------------------------------------


def realm_for(tmp_path: Path, line: str, **kwargs) -> FTPRealm:  # type: ignore[no-untyped-def]
    path = tmp_path / "users.db"
    path.write_text(line + "\n")
    return FTPRealm(UserDB(path), str(tmp_path / "root"), lambda home, perms: ("disk", home),
                    **kwargs)


def avatar(realm: FTPRealm, user: str = "alice"):  # type: ignore[no-untyped-def]
    from twisted_ftpd.interfaces import IFTPShell

    results: list = []
    realm.requestAvatar(user, None, IFTPShell).addBoth(results.append)
    return results[0]


def test_a_storage_user_gets_an_object_shell_without_a_home_on_disk(tmp_path: Path,
                                                                     bucket: str) -> None:
    h = hash_password("pw")
    realm = realm_for(tmp_path, f"alice:{h}:elr:alice:storage=memory://{bucket}/homes",
                      stores=Stores(sync))
    _, shell, logout = avatar(realm)
    assert isinstance(shell, ObjectShell)
    assert (shell.root, shell.permissions) == (f"/{bucket}/homes/alice", "elr")
    logout()


def test_server_storage_serves_every_user_and_users_db_wins(tmp_path: Path,
                                                            bucket: str) -> None:
    h = hash_password("pw")
    realm = realm_for(tmp_path, f"alice:{h}:elr:a\nbob:{h}:elr:b:storage=memory://{bucket}/x",
                      stores=Stores(sync), storage=f"memory://{bucket}/homes")
    assert avatar(realm, "alice")[1].root == f"/{bucket}/homes/a"
    assert avatar(realm, "bob")[1].root == f"/{bucket}/x/b"


def test_storage_without_stores_refuses_the_login(tmp_path: Path) -> None:
    realm = realm_for(tmp_path, f"alice:{hash_password('pw')}:elr:a:storage=s3://b/x")
    assert avatar(realm).check(HomeUnavailable)


# -- a whole session on object storage -------------------------------------------------------


def test_a_session_on_object_storage(tmp_path: Path, bucket: str) -> None:
    h, s = logged_in(tmp_path, storage=f"memory://{bucket}/homes")
    assert [line for line in s.send("FEAT") if "MFMT" in line] == []
    assert " REST STREAM" in s.send("FEAT")
    assert s.send("MKD d") == ['257 "/d" created.']
    assert s.upload("STOR d/f.txt", b"hello")[-1].startswith("226")
    replies, lines = s.listing("LIST d")
    assert len(lines) == 1 and lines[0].endswith(" f.txt") and " 5 " in lines[0]
    assert s.send("TYPE I")[0].startswith("200")
    assert s.send("SIZE d/f.txt") == ["213 5"]
    assert s.send("MFMT 20200101000000 d/f.txt") == [
        "550 /d/f.txt: not possible on object storage: objects keep the time the store "
        "gave them."]
    assert s.send("SITE CHMOD 600 d/f.txt") == [
        "550 /d/f.txt: not possible on object storage: objects have no permission bits."]
    assert s.send("CWD missing")[0].startswith("550")
    assert s.send("RNFR d")[0].startswith("350")
    assert "not empty would copy every object" in s.send("RNTO e")[0]
    fs = fsspec.filesystem("memory")
    assert fs.cat_file(f"/{bucket}/homes/d/f.txt") == b"hello"



def test_the_users_tool_adds_a_storage_user_without_a_home_on_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from twisted_ftpd import users

    db = tmp_path / "users.db"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert users.main(["--db", str(db), "--root", str(tmp_path / "root"), "add", "carol",
                       "--password-stdin", "--home", "carol", "--storage",
                       "s3://b/homes"]) == 0
    assert userdb.parse(db.read_text())["carol"].options == {"storage": "s3://b/homes"}
    assert not (tmp_path / "root").exists()  # a prefix, not a directory to make


def test_the_config_file_names_the_store(tmp_path: Path) -> None:
    toml = tmp_path / "ftpd.toml"
    toml.write_text('storage = "s3://bucket/homes"\nstorage-endpoint = "http://127.0.0.1:9"\n'
                    'storage-threads = 8\n')
    options = Options()
    options.parseOptions(["--config", str(toml)])
    config = options.to_config()
    assert (config.storage, config.storage_endpoint, config.storage_threads) == (
        "s3://bucket/homes", "http://127.0.0.1:9", 8)
