"""Several twisted-ftpd nodes behind HAProxy, all on loopback: what README "Running
several nodes" describes, and what tests/integration/test_multinode.py checks.

    python3 -m tests.multinode [--whole] [DIRECTORY]

starts node a on 127.0.0.2 and node b on 127.0.0.3, each with a passive range of
its own, sharing DIRECTORY/shared as their root (any shared filesystem will do),
behind HAProxy on 127.0.0.1 (the Debian package, run in the foreground), prints
where to connect and the HAProxy configuration, and stops everything on Ctrl-C.
Users are alice/secret and bob/bobpw. Each node says its name in its banner.

With ``--whole`` it first starts PostgreSQL and Redis (Debian's packages) and an S3
server (SeaweedFS, from the test extra) on loopback ports, and the nodes take their
users from PostgreSQL, share bans and counts through Redis and serve their files
from S3: the whole cluster of README "Running several nodes".
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import write_users
from tests.integration.backends import PostgresServer, RedisServer
from tests.integration.conftest import ANONYMOUS_PERMS, USERS
from tests.integration.haproxy import Balancer, Node, free_range, start_haproxy
from tests.integration.s3_server import seaweed_in_environment
from tests.integration.tls_helpers import SAFETY_TIMEOUT, start_logged, stop_process
from twisted_ftpd.auth.passwords import hash_password
from twisted_ftpd.auth.pgusers import PostgresUsers
from twisted_ftpd.auth.userdb import UserRecord

REPO = Path(__file__).resolve().parent.parent
BALANCER = "127.0.0.1"
NODES = {"a": "127.0.0.2", "b": "127.0.0.3"}
PASSIVE_PORTS = 10  # per node


@dataclass
class RunningNode:
    node: Node
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)  # its output, as it comes
    reader: threading.Thread | None = None

    def stop(self) -> None:
        """SIGTERM, as systemd stops it, and wait until it has exited and its whole
        log has been read (blocking)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=SAFETY_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.reader is not None:
            self.reader.join(timeout=SAFETY_TIMEOUT)


@dataclass
class Cluster:
    balancer: Balancer
    nodes: dict[str, RunningNode]
    shared: Path
    # A stopped node leaves the part of an upload it had (disk), or nothing (S3).
    keeps_partial_uploads: bool = True

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.balancer.stop()


def start_node(name: str, host: str, shared: Path, users: Path, low: int, high: int,
               *extra: str) -> RunningNode:
    command = [sys.executable, str(REPO / "server.py"),
               "--listen", f"haproxy:tcp:0:interface={host}", "--proxy-from", BALANCER,
               "--passive-ports", f"{low}-{high}", "--masquerade-address", BALANCER,
               "--root", str(shared), "--users", str(users),
               "--banner", f"twisted-ftpd node {name} ready.", *extra]
    process, started = start_logged(command, REPO)
    found = re.search(rf"{re.escape(host)}:(\d+)", started.splitlines()[-1])  # "serving"
    if found is None:
        stop_process(process)
        raise AssertionError(f"node {name} did not say its port:\n{started}")
    running = RunningNode(Node(name, host, int(found.group(1)), (low, high)), process,
                          started.splitlines())

    def drain() -> None:  # a full pipe would stop the node
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                running.log.append(line.rstrip("\n"))

    running.reader = threading.Thread(target=drain, daemon=True)
    running.reader.start()
    return running


def start_cluster(directory: Path, *node_options: str) -> Cluster:
    """Both nodes, then HAProxy in front of them (blocking; returns once all listen)."""
    shared = directory / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    users = directory / "users.db"
    write_users(users, USERS, ANONYMOUS_PERMS)
    nodes: dict[str, RunningNode] = {}
    passive = {}
    try:
        for name, host in NODES.items():
            held, low, high = free_range(PASSIVE_PORTS, (BALANCER, host))
            passive[name] = held
            nodes[name] = start_node(name, host, shared, users, low, high, *node_options)
        balancer = start_haproxy(directory, [n.node for n in nodes.values()], passive,
                                 BALANCER)
    except BaseException:
        for running in nodes.values():
            running.stop()
        raise
    return Cluster(balancer, nodes, shared)


def whole_cluster(database: str, redis_url: str, bucket: str, prefix: str) -> list[str]:
    """The node options of the whole cluster: users in the PostgreSQL ``database`` (alice
    and bob are added to it), bans and counts in Redis, files under ``bucket/prefix``
    of the S3 server the AWS variables name."""
    users = PostgresUsers(database)
    users.create_schema()
    for name, (password, perms) in USERS.items():
        users.upsert(UserRecord(name, hash_password(password), perms, ""))
    users.close()
    return ["--users", database, "--shared-state", redis_url,
            "--storage", f"s3://{bucket}/{prefix}"]


def start_services(stack: contextlib.ExitStack, directory: Path) -> list[str]:
    """PostgreSQL, Redis and SeaweedFS for ``--whole``, stopped with ``stack``."""
    # Its own directory under /tmp: as root, PostgreSQL runs as nobody, who must reach it.
    base = Path(tempfile.mkdtemp(prefix="twisted-ftpd-pg-"))
    stack.callback(shutil.rmtree, base, ignore_errors=True)
    postgres = PostgresServer(base)
    postgres.start()
    stack.callback(postgres.stop)
    redis = RedisServer(directory / "redis")
    redis.start()
    stack.callback(redis.stop)
    s3 = stack.enter_context(seaweed_in_environment(directory / "s3"))
    print(f"PostgreSQL {postgres.url()}, Redis {redis.url}, S3 {s3.endpoint}")
    return whole_cluster(postgres.database(), redis.url, s3.bucket, "homes")


def main() -> None:
    arguments = [a for a in sys.argv[1:] if a != "--whole"]
    directory = Path(arguments[0]) if arguments else Path(tempfile.mkdtemp())
    with contextlib.ExitStack() as stack:
        for part in ("redis", "s3"):
            (directory / part).mkdir(parents=True, exist_ok=True)
        options = start_services(stack, directory) if "--whole" in sys.argv else []
        run(start_cluster(directory, *options), options[-1] if options else None)


def run(cluster: Cluster, storage: str | None) -> None:
    """Say where everything is, then serve until Ctrl-C or SIGTERM."""
    print(f"HAProxy on {BALANCER}:{cluster.balancer.port}, files in "
          f"{storage or cluster.shared}")
    for name, running in cluster.nodes.items():
        node = running.node
        print(f"node {name}: {node.host}:{node.port}, passive {node.passive[0]}-"
              f"{node.passive[1]}")
    print(f"try: curl -u alice:secret ftp://{BALANCER}:{cluster.balancer.port}/")
    print("\nHAProxy configuration:\n" + cluster.balancer.config)
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait(timeout=None)
    cluster.stop()


if __name__ == "__main__":
    main()
