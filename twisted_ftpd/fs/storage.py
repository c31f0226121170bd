# -*- test-case-name: tests.test_fs_storage -*-
"""Where users' files live: the local disk, or a store named by a URL (``--storage``,
users.db ``storage=``) such as ``s3://bucket/prefix``, served through fsspec.

Credentials never appear in a URL or in users.db: an S3 store finds them where
every AWS tool does (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``~/.aws/credentials``, instance roles), and its endpoint in ``--storage-endpoint``
or ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from twisted_ftpd.fs.objects import ObjectShell
from twisted_ftpd.malloc import keep_big_blocks_mapped

log = Logger()

#: Store calls running at once; more wait in the pool's queue.
DEFAULT_THREADS = 16
#: Schemes that mean the local disk (the default, as without --storage).
DISK_SCHEMES = frozenset({"", "file", "local"})
#: The optional packages a scheme needs, for the start-up error.
_EXTRAS = {"s3": "s3", "s3a": "s3"}


class StorageError(ValueError):
    """A storage URL that cannot be served; the message says why, in one line."""


def parse_storage_url(text: str) -> str:
    """``storage=``: the user's store, ``s3://BUCKET/PREFIX`` (the home is a prefix in it).

    Any fsspec URL whose implementation is installed (so a missing ``[s3]`` extra
    stops the server at start-up, not at the first login), or a disk path."""
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in DISK_SCHEMES:
        return text
    if "@" in urlsplit(text).netloc:
        raise StorageError("credentials do not belong in a storage URL: give them as "
                           "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile")
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:
        raise StorageError(_missing(scheme, "fsspec")) from None
    if scheme not in known_implementations:
        raise StorageError(f"{text!r}: unknown storage scheme {scheme!r}")
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as e:
        raise StorageError(_missing(scheme, str(e.name or e))) from None
    if not urlsplit(text).netloc and scheme in _EXTRAS:
        raise StorageError(f"{text!r}: name the bucket ({scheme}://BUCKET/PREFIX)")
    return text


def _missing(scheme: str, what: str) -> str:
    extra = _EXTRAS.get(scheme)
    hint = (f"pip install 'twisted-ftpd[{extra}]'" if extra
            else f"install the fsspec package for {scheme}://")
    return f"{scheme}:// storage needs {what}, which is not installed: {hint}"


def is_disk(url: str | None) -> bool:
    return url is None or (urlsplit(url).scheme if "://" in url else "") in DISK_SCHEMES


class StoragePool:
    """A bounded ThreadPool for store calls only, so a slow store fills its own queue,
    never the reactor's pool that the disk backend and users.db use. It starts at the
    first call and is stopped with the service (which waits for the requests under
    way: they end within the store client's timeouts); its threads are daemons, so a
    stuck request cannot keep the process alive."""

    def __init__(self, reactor: IReactorFromThreads, size: int = DEFAULT_THREADS) -> None:
        self._reactor = reactor
        self.size = size
        self._pool: ThreadPool | None = None

    def run(self, f: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        if self._pool is None:
            self._pool = ThreadPool(0, self.size, name="twisted-ftpd-storage")
            self._pool.threadFactory = functools.partial(threading.Thread, daemon=True)
            self._pool.start()
        return threads.deferToThreadPool(self._reactor, self._pool, f, *args)  # type: ignore[arg-type]

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()


@dataclass(frozen=True)
class StoreOptions:
    """``--storage-endpoint`` and ``--storage-region`` (None: the AWS defaults)."""

    endpoint: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ObjectHome:
    """A user's tree in a store: the filesystem and the key prefix of the home."""

    fs: Any
    root: str
    run: Callable[..., defer.Deferred[Any]]

    def shell(self, permissions: str) -> ObjectShell:
        return ObjectShell(self.fs, self.root, permissions, run=self.run)


class Stores:
    """Turns a storage URL and a users.db home into an ObjectHome; one fsspec filesystem
    per scheme and bucket is made, on first use, and shared by every session."""

    def __init__(self, run: Callable[..., defer.Deferred[Any]],
                 options: StoreOptions | None = None) -> None:
        self._run = run
        self._options = options or StoreOptions()
        self._filesystems: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()  # locate() runs in the realm's threads

    def locate(self, url: str, home: str) -> ObjectHome:
        """The home ``home`` (a users.db home field: a key prefix below the URL's path)
        in the store ``url``; blocking (it may import the store's client)."""
        parts = urlsplit(url)
        prefix = [p for p in (parts.path + "/" + home).split("/") if p]
        if any(p in (".", "..") or "\\" in p for p in prefix):
            raise StorageError(f"home {home!r} under {url!r} has a '.', '..' or '\\' segment")
        root = "/".join([parts.netloc, *prefix]) if parts.netloc else "/" + "/".join(prefix)
        return ObjectHome(self._filesystem(parts.scheme, parts.netloc), root, self._run)

    def probe(self, url: str) -> None:
        """Ask the store of ``url`` whether it serves the bucket (blocking); raises
        what the store answered (FileNotFoundError for a missing bucket...)."""
        home = self.locate(url, "")
        if hasattr(home.fs, "call_s3"):
            home.fs.call_s3("head_bucket", Bucket=urlsplit(url).netloc)
        else:
            home.fs.info(home.root)

    def _filesystem(self, scheme: str, bucket: str) -> Any:
        with self._lock:
            fs = self._filesystems.get((scheme, bucket))
            if fs is None:
                import fsspec

                fs = fsspec.filesystem(scheme, **self._kwargs(scheme))
                keep_big_blocks_mapped()  # the 8 MiB upload parts
                self._filesystems[(scheme, bucket)] = fs
            return fs

    def _kwargs(self, scheme: str) -> dict[str, Any]:
        if scheme not in _EXTRAS:
            return {"skip_instance_cache": True}
        kwargs: dict[str, Any] = {
            # Listings must show what is in the store now, not a cached page.
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }
        if not {"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} & set(os.environ):
            # Standard retries (throttling included) but few: a client should hear
            # "unreachable" within seconds, not after botocore's long default wait.
            kwargs["config_kwargs"] = {"retries": {"max_attempts": 3, "mode": "standard"},
                                       "connect_timeout": 10}
        if self._options.endpoint:
            kwargs["endpoint_url"] = self._options.endpoint
        if self._options.region:
            kwargs["client_kwargs"] = {"region_name": self._options.region}
        return kwargs
