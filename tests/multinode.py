"""Several twisted-ftpd nodes behind HAProxy, all on loopback: what README "Running
several nodes" describes, and what tests/integration/test_multinode.py checks.

    python3 -m tests.multinode [DIRECTORY]

starts node a on 127.0.0.2 and node b on 127.0.0.3, each with a passive range of
its own, sharing DIRECTORY/shared as their root (any shared filesystem will do),
behind HAProxy on 127.0.0.1 (the Debian package, run in the foreground), prints
where to connect and the HAProxy configuration, and stops everything on Ctrl-C.
Users are alice/secret and bob/bobpw. Each node says its name in its banner.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import write_users
from tests.integration.conftest import ANONYMOUS_PERMS, USERS
from tests.integration.haproxy import Balancer, Node, free_range, start_haproxy
from tests.integration.tls_helpers import SAFETY_TIMEOUT, start_logged, stop_process

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


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    cluster = start_cluster(directory)
    print(f"HAProxy on {BALANCER}:{cluster.balancer.port}, files in {cluster.shared}")
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
