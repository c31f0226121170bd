"""The shell conformance suite against a real S3 server (SeaweedFS), with every case
that applies to objects; the cases object storage answers differently are replaced
by the object semantics (README "Object storage")."""

from __future__ import annotations

import itertools

import pytest
from twisted.internet.defer import maybeDeferred
from twisted.trial.unittest import SynchronousTestCase

from tests.integration.s3_server import shared_server
from tests.object_semantics import ObjectSemanticsMixin
from twisted_ftpd.fs.objects import ObjectShell
from twisted_ftpd.fs.storage import Stores
from twisted_ftpd.protocol.values import Segments

pytestmark = pytest.mark.integration

_homes = itertools.count()


def _run(f, *args):  # type: ignore[no-untyped-def]
    return maybeDeferred(f, *args)  # synchronous: the suite checks fired Deferreds


class S3ShellTests(ObjectSemanticsMixin, SynchronousTestCase):
    """Each test gets a fresh prefix in the bucket, as each user has their own (on the
    process's one SeaweedFS: no pytest fixture, since trial runs this class too)."""

    def setUp(self) -> None:
        self.home = Stores(_run).locate(f"s3://{shared_server().bucket}/conformance",
                                        f"t{next(_homes)}")
        self.fs = self.home.fs

    def make_shell(self, permissions: str) -> ObjectShell:
        return self.home.shell(permissions)

    def key(self, segments: Segments) -> str:
        return "/".join((self.home.root, *segments))

    def create_file(self, segments: Segments, data: bytes) -> None:
        self.fs.pipe_file(self.key(segments), data)

    def create_dir(self, segments: Segments) -> None:
        self.fs.pipe_file(self.key(segments) + "/", b"")

    def read_back(self, segments: Segments) -> bytes:
        return self.fs.cat_file(self.key(segments))

    def exists(self, segments: Segments) -> bool:
        return self.fs.exists(self.key(segments))

    def pending_uploads(self) -> list[str]:
        bucket, _, prefix = self.home.root.partition("/")
        found = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
        return [upload["Key"] for upload in found.get("Uploads", [])]
